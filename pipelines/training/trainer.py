"""The fine-tuning stage's driver side: a Ray Train `TorchTrainer` over training-row Parquet shards.

    report = train_model(rows, spec, run_name=..., storage_path=..., output_dir=...)

The workers run `pipelines.training.train_worker.train_loop`; this module sizes the worker group, keeps the
best checkpoint by dev micro F1 (and the latest, for resuming), copies the best model to
`output_dir` (a local folder or a URI) and returns a `TrainReport`.

The training rows are not split by Ray Data: every worker reads all of them, in order, and takes its
part of each global batch from the shared plan (`pipelines.training.batching`). Splitting with
`streaming_split(equal=True)`, Ray Train's default, drops up to `world - 1` rows an epoch and gives
no say over which rank sees which row; the plan covers every row once and keeps the ranks in step.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time

import ray.data
from ray.train import Checkpoint, CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from pipelines.data.storage import copy_tree, is_uri, redact_uri
from pipelines.reports import TrainReport
from pipelines.training.metrics_sink import file_exists
from pipelines.training.train_worker import MODEL_DIR, RecordHook, StepHook, TrainSpec, train_loop

log = logging.getLogger(__name__)


def train_model(
    rows: ray.data.Dataset,
    spec: TrainSpec,
    *,
    run_name: str,
    storage_path: str,
    output_dir: str,
    step_hook: StepHook | None = None,
    record_hook: RecordHook | None = None,
) -> TrainReport:
    """Fine-tune `spec.start_model` on `rows` until its dev score stops improving; the best checkpoint
    (by dev score) is copied to `output_dir`."""
    started = time.perf_counter()
    if spec.tracking_uri and spec.metrics_spool is None:
        spec.metrics_spool = f"{storage_path.rstrip('/')}/{run_name}/unsent_mlflow_metrics.jsonl"
    hooks = {"step_hook": step_hook, "record_hook": record_hook}
    result = torch_trainer(rows, spec, hooks, run_name, storage_path).fit()
    if result.error:
        raise RuntimeError(f"training failed: {result.error}") from result.error
    # the kept checkpoints' reports (Ray keeps the best), by step: Ray lists them in its own order
    history = sorted(
        result.metrics_dataframe.to_dict("records") if result.metrics_dataframe is not None else [],
        key=lambda report: report.get("step", 0),
    )
    best, best_metrics = best_checkpoint(result, bool(spec.dev))
    copy_checkpoint(best, output_dir)
    last = dict(result.metrics or {})
    return TrainReport(
        model_path=f"{output_dir.rstrip('/')}/{MODEL_DIR}",
        metrics={k: v for k, v in best_metrics.items() if isinstance(v, (int, float))},
        dev_threshold=spec.eval_threshold,
        steps=int(last.get("step", 0)),
        stopped=str(last.get("stopped", "")),
        history=history,
        seconds=time.perf_counter() - started,
        rows=spec.num_rows,
        unsent_metrics=unsent_metrics(spec),
    )


def torch_trainer(
    rows: ray.data.Dataset, spec: TrainSpec, hooks: dict, run_name: str, storage_path: str
) -> TorchTrainer:
    """The Ray Train group for `spec`: its workers, failure handling and checkpoints to keep."""
    config = spec.config
    resources = {"CPU": config.cpus_per_worker}
    if config.gpus_per_worker:
        resources["GPU"] = config.gpus_per_worker
    # keeps the best checkpoint by dev score and the latest (Ray never deletes the latest)
    checkpoints = (
        CheckpointConfig(num_to_keep=1, checkpoint_score_attribute="dev_score", checkpoint_score_order="max")
        if spec.dev
        else CheckpointConfig(num_to_keep=1)
    )
    return TorchTrainer(
        train_loop,
        train_loop_config={"spec": spec, **hooks},
        scaling_config=ScalingConfig(
            num_workers=config.num_workers,
            use_gpu=config.gpus_per_worker > 0,
            resources_per_worker=resources,
        ),
        run_config=RunConfig(
            name=run_name,
            storage_path=storage_path,
            failure_config=FailureConfig(max_failures=config.max_failures),
            checkpoint_config=checkpoints,
        ),
        datasets={"train": rows},
        # every worker reads every row, in the same order (see the module docstring)
        dataset_config=DataConfig(datasets_to_split=[], execution_options=ingest_options()),
    )


def best_checkpoint(result, scored_on_dev: bool) -> tuple[Checkpoint, dict]:
    """The checkpoint with the best dev score (else the latest) and its metrics."""
    best, metrics = result.checkpoint, dict(result.metrics or {})
    if scored_on_dev and result.best_checkpoints:
        scored = [(c, m) for c, m in result.best_checkpoints if m.get("dev_score", -1) >= 0]
        if scored:
            best, metrics = max(scored, key=lambda cm: cm[1]["dev_score"])
    if best is None:
        raise RuntimeError("training produced no checkpoint")
    return best, metrics


def copy_checkpoint(checkpoint: Checkpoint, output_dir: str) -> None:
    if is_uri(output_dir):
        with tempfile.TemporaryDirectory() as directory:
            copy_tree(checkpoint.to_directory(directory), output_dir)
    else:
        os.makedirs(output_dir, exist_ok=True)
        checkpoint.to_directory(output_dir)


def unsent_metrics(spec: TrainSpec) -> str | None:
    """The spool of step metrics MLflow did not receive (logged as an error), or None."""
    spool = spec.metrics_spool
    unsent = spool if spool and spec.tracking_uri and file_exists(spool) else None
    if unsent:
        uri = redact_uri(spec.tracking_uri or "")
        log.error(
            "training finished, but MLflow (%s) did not receive every step metric: the rest are in %s; "
            "send them with pipelines.training.metrics_sink.replay_metrics(%r, %r)",
            uri,
            unsent,
            unsent,
            uri,
        )
    return unsent


def ingest_options():
    """Ray Data options for the training rows: Train's defaults, with the rows in a fixed order."""
    options = DataConfig.default_ingest_options()
    options.preserve_order = True
    return options
