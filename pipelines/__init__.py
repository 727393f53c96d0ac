"""The self-training pipeline on Ray: its public surface. `jobs/` and `bench/` import from here.

    from pipelines import PipelineConfig, run, weak_label_corpus, train_on_rows

Rooms (sub-packages), each with one concern; dependencies run one way, down this list:

    loop/        the self-training loop, the stages the command line runs (`stages`, `run_stage`) and the
                 Ray instance a job joins (`runtime`)
    ops/         serving exports, drift checks, the review queue in Label Studio
    registry/    MLflow: runs, the model registry, provenance, resolving what a user calls a model
    training/    Ray Train: the epoch plan, the worker loop, the driver, the step-metric sender
    weak/        weak supervision: GLiNER prompt views, labeling functions, label model, merge
    selection/   span-level evaluation, weight interpolation, the promotion decision
    data/        documents, gold rows, the span column, storage (local or object storage)
    config/, reports.py, console.py   shared by all: typed settings, typed stage reports, what a person
                 sees while a job runs

Model math lives in `gliner_core`, LLM labels in `synth`. Names are imported on first use, so
`import pipelines` (and `gliner-selftrain --help`) stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> the module that defines it
_EXPORTS = {
    # configuration (every section: pipelines.config)
    "PipelineConfig": "pipelines.config",
    "DataConfig": "pipelines.config",
    "GoldSource": "pipelines.config",
    "ModelConfig": "pipelines.config",
    "WeakLabelConfig": "pipelines.config",
    "MergeConfig": "pipelines.config",
    "LabelModelConfig": "pipelines.config",
    "SourceConfig": "pipelines.config",
    "GazetteerConfig": "pipelines.config",
    "RegexConfig": "pipelines.config",
    "LabelingFunctionsConfig": "pipelines.config",
    "PromptViewsConfig": "pipelines.config",
    "TrainConfig": "pipelines.config",
    "EvalConfig": "pipelines.config",
    "LoopConfig": "pipelines.config",
    "TrackingConfig": "pipelines.config",
    "DriftConfig": "pipelines.config",
    "ReviewConfig": "pipelines.config",
    "SAMPLE_DIR": "pipelines.config",
    # the stages (each returns a typed report) and the loop that composes them
    "read_corpus": "pipelines.loop.stages",
    "synthesize_corpus": "pipelines.loop.stages",
    "weak_label_corpus": "pipelines.loop.stages",
    "merge_training_rows": "pipelines.loop.stages",
    "label_corpus": "pipelines.loop.stages",
    "new_model": "pipelines.loop.stages",
    "write_seed_rows": "pipelines.loop.stages",
    "train_on_rows": "pipelines.loop.stages",
    "evaluate_model": "pipelines.loop.stages",
    "calibrate_model": "pipelines.loop.stages",
    "default_output": "pipelines.loop.stages",
    "NothingToTrain": "pipelines.loop.stages",
    "run_stage": "pipelines.loop.tracked",
    "run": "pipelines.loop.self_training",
    "SelfTraining": "pipelines.loop.self_training",
    "RunSummary": "pipelines.loop.self_training",
    # reports
    "WeakLabelReport": "pipelines.reports",
    "MergeReport": "pipelines.reports",
    "TrainReport": "pipelines.reports",
    "EvalReport": "pipelines.reports",
    "CalibrationReport": "pipelines.reports",
    "InterpolationReport": "pipelines.reports",
    "SynthStageReport": "pipelines.reports",
    # what a job runs on, reads and writes
    "Console": "pipelines.console",
    "ensure_ray": "pipelines.loop.runtime",
    "backbone_path": "pipelines.loop.runtime",
    "read_documents": "pipelines.data.read",
    "read_gold": "pipelines.data.read",
    "write_parquet": "pipelines.data.storage",
    "redact_uri": "pipelines.data.storage",
    "redact_config": "pipelines.data.storage",
    # pieces of the stages, for benchmarks and notebooks
    "weak_label": "pipelines.weak.weak_label",
    "configured_views": "pipelines.weak.prompt_views",
    "MAIN_VIEW": "pipelines.weak.prompt_views",
    "Gazetteer": "pipelines.weak.labeling_functions",
    "fit_label_model": "pipelines.weak.label_model",
    "TrainSpec": "pipelines.training.train_worker",
    "TrainingRows": "pipelines.training.train_worker",
    "WorkerState": "pipelines.training.train_worker",
    "warmup_schedule": "pipelines.training.train_worker",
    "train_step": "pipelines.training.train_worker",
    "train_model": "pipelines.training.trainer",
    "epoch_plan": "pipelines.training.batching",
    "predict_gold": "pipelines.selection.evaluate",
    "score": "pipelines.selection.evaluate",
    "evaluate_rows": "pipelines.selection.evaluate",
    "calibrate": "pipelines.selection.evaluate",
    "model_threshold": "pipelines.selection.evaluate",
    "interpolate_state": "pipelines.selection.interpolation",
    "choose_weight": "pipelines.selection.interpolation",
    "decide_on_scores": "pipelines.selection.promotion",
    "guard_losses": "pipelines.selection.promotion",
    # the registry
    "use_experiment": "pipelines.registry.tracking",
    "lineage": "pipelines.registry.lineage",
    "format_lineage": "pipelines.registry.lineage",
    "tracking_uri": "pipelines.registry.tracking",
    "git_commit": "pipelines.registry.provenance",
    "resolve_model": "pipelines.registry.model_source",
    "parse_reference": "pipelines.registry.model_source",
    "registry_uri": "pipelines.registry.model_source",
    "ResolvedModel": "pipelines.registry.model_source",
    "ModelSourceError": "pipelines.registry.model_source",
    # operations
    "export_for_serving": "pipelines.ops.serving",
    "default_folder": "pipelines.ops.serving",
    "Int8Refused": "pipelines.ops.serving",
    "NotLogged": "pipelines.ops.serving",
    "FORMATS": "pipelines.ops.serving",
    "QUANTIZATIONS": "pipelines.ops.serving",
    "DriftMonitor": "pipelines.ops.drift",
    "write_reference": "pipelines.ops.drift",
    "load_drift_job": "pipelines.ops.drift",
    "read_review_documents": "pipelines.ops.review",
    "select_for_review": "pipelines.ops.review",
    "gold_doc_ids": "pipelines.ops.review",
    "merge_gold": "pipelines.ops.review",
    "connect_label_studio": "pipelines.ops.review",
    "push_for_review": "pipelines.ops.review",
    "pull_annotations": "pipelines.ops.review",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pipelines' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next access is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # the same names, for type checkers and editors
    from pipelines.config import (
        SAMPLE_DIR,
        DataConfig,
        DriftConfig,
        EvalConfig,
        GazetteerConfig,
        GoldSource,
        LabelingFunctionsConfig,
        LabelModelConfig,
        LoopConfig,
        MergeConfig,
        ModelConfig,
        PipelineConfig,
        PromptViewsConfig,
        RegexConfig,
        ReviewConfig,
        SourceConfig,
        TrackingConfig,
        TrainConfig,
        WeakLabelConfig,
    )
    from pipelines.console import Console
    from pipelines.data.read import read_documents, read_gold
    from pipelines.data.storage import redact_config, redact_uri, write_parquet
    from pipelines.loop.runtime import backbone_path, ensure_ray
    from pipelines.loop.self_training import RunSummary, SelfTraining, run
    from pipelines.loop.stages import (
        NothingToTrain,
        calibrate_model,
        default_output,
        evaluate_model,
        label_corpus,
        merge_training_rows,
        new_model,
        read_corpus,
        synthesize_corpus,
        train_on_rows,
        weak_label_corpus,
        write_seed_rows,
    )
    from pipelines.loop.tracked import run_stage
    from pipelines.ops.drift import DriftMonitor, load_drift_job, write_reference
    from pipelines.ops.review import (
        connect_label_studio,
        gold_doc_ids,
        merge_gold,
        pull_annotations,
        push_for_review,
        read_review_documents,
        select_for_review,
    )
    from pipelines.ops.serving import (
        FORMATS,
        QUANTIZATIONS,
        Int8Refused,
        NotLogged,
        default_folder,
        export_for_serving,
    )
    from pipelines.registry.lineage import format_lineage, lineage
    from pipelines.registry.model_source import (
        ModelSourceError,
        ResolvedModel,
        parse_reference,
        registry_uri,
        resolve_model,
    )
    from pipelines.registry.provenance import git_commit
    from pipelines.registry.tracking import tracking_uri, use_experiment
    from pipelines.reports import (
        CalibrationReport,
        EvalReport,
        InterpolationReport,
        MergeReport,
        SynthStageReport,
        TrainReport,
        WeakLabelReport,
    )
    from pipelines.selection.evaluate import calibrate, evaluate_rows, model_threshold, predict_gold, score
    from pipelines.selection.interpolation import choose_weight, interpolate_state
    from pipelines.selection.promotion import decide_on_scores, guard_losses
    from pipelines.training.batching import epoch_plan
    from pipelines.training.train_worker import (
        TrainingRows,
        TrainSpec,
        WorkerState,
        train_step,
        warmup_schedule,
    )
    from pipelines.training.trainer import train_model
    from pipelines.weak.label_model import fit_label_model
    from pipelines.weak.labeling_functions import Gazetteer
    from pipelines.weak.prompt_views import MAIN_VIEW, configured_views
    from pipelines.weak.weak_label import weak_label
