"""The loop's stages, each a function from files to files that returns a typed report.

The command line runs them one by one (`synth`, `label`, `train`, `evaluate`); the self-training
loop (`pipelines.self_training`) composes the same functions:

    read_corpus          corpus                 -> documents (lazy Ray Dataset)
    synthesize_corpus    documents              -> synth rows (Parquet)             SynthReport
    weak_label_corpus    documents + model      -> weak labels (Parquet)            WeakLabelReport
    merge_training_rows  weak labels (+ synth)  -> training rows (Parquet)          MergeReport
    train_on_rows        training rows + model  -> best checkpoint by dev F1        TrainReport
    evaluate_model       model + gold rows      -> span P/R/F1 per label            EvalReport
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import ray
import ray.data

from gliner_core import GLiNER
from pipelines.config import PipelineConfig, TrainConfig
from pipelines.evaluate import evaluate_rows
from pipelines.merge import label_statistics, merge, score_quantile
from pipelines.read import read_documents, read_gold
from pipelines.reports import EvalReport, MergeReport, TrainReport, WeakLabelReport
from pipelines.runtime import backbone_path, ensure_ray
from pipelines.storage import check_writable, is_dir, is_uri, local_copy, resolve, save_model, write_parquet
from pipelines.train_worker import StepHook, TrainSpec
from pipelines.trainer import train_model
from pipelines.weak_label import weak_label


def default_output(config: PipelineConfig, stage: str) -> str:
    """`<storage_path>/<name>-<stage>-<timestamp>`: a new folder per call, never an overwrite."""
    return f"{resolve(config.storage_path)}/{config.name}-{stage}-{time.strftime('%Y%m%d-%H%M%S')}"


def check_model(path: str) -> str:
    if not is_dir(path):
        raise FileNotFoundError(f"model not found: {path} (a GLiNER checkpoint folder, local or a URI)")
    return path


def read_corpus(config: PipelineConfig) -> ray.data.Dataset:
    """The corpus as documents `doc_id, text, source` (lazy: read when a stage runs)."""
    data = config.data
    return read_documents(data.corpus, data.corpus_format, data.text_field, data.max_documents)


def new_model(config: PipelineConfig, path: str) -> str:
    """A GLiNER on the configured backbone with untrained heads, saved at `path`."""
    model = GLiNER.from_backbone(backbone_path(config.model.backbone), **config.model.settings)
    return save_model(model, path)


def gold_training_rows(gold: Sequence[Mapping], labels: Sequence[str]) -> list[dict]:
    """Gold rows (`text`, `spans`) as training rows: every label offered, spans with score 1."""
    return [
        {
            "doc_id": str(i),
            "text": row["text"],
            "labels": list(labels),
            "spans": [{**s, "score": 1.0, "origin": "gold"} for s in row["spans"]],
            "weight": 1.0,
        }
        for i, row in enumerate(gold)
    ]


def synthesize_corpus(
    config: PipelineConfig,
    documents: ray.data.Dataset,
    synth_config_path: str,
    output: str,
    run_id: str | None = None,
):
    """LLM labels for the corpus (tasks and engine from a synth config file) -> synth rows under `output`.

    NER tasks without labels take `data.labels`; a task naming other labels is refused here."""
    from synth.config import load_config
    from synth.stage import run_synth

    synth_config = load_config(synth_config_path).with_labels(
        config.data.labels, config.data.label_descriptions
    )
    check_writable(output)
    return run_synth(documents, synth_config, output, run_id=run_id)


def weak_label_corpus(
    config: PipelineConfig, documents: ray.data.Dataset, model_path: str, output: str
) -> WeakLabelReport:
    """GLiNER (`model_path`) labels every document -> Parquet under `output`."""
    check_model(model_path)
    started = time.perf_counter()
    path = write_parquet(weak_label(documents, model_path, config.prompts(), config.weak_label), output)
    stats = label_statistics(ray.data.read_parquet(path).select_columns(["spans"]).iter_rows())
    histogram = stats["score_histogram"]
    return WeakLabelReport(
        path=path,
        documents=stats["rows"],
        spans=stats["spans"],
        per_label=dict(stats["per_label"]),
        score_quantiles={f"p{q}": score_quantile(histogram, q / 100) for q in (10, 50, 90)},
        statistics=stats,
        seconds=time.perf_counter() - started,
    )


def merge_training_rows(
    config: PipelineConfig, weak_labels: str, output: str, synth_rows: str | None = None
) -> MergeReport:
    """Weak labels (+ the LLM's NER rows) -> training rows (Parquet under `output`)."""
    started = time.perf_counter()
    synth = ray.data.read_parquet(synth_rows) if synth_rows else None
    rows = merge(
        ray.data.read_parquet(weak_labels), config.data.labels, config.merge, synth, seed=config.seed
    )
    path = write_parquet(rows, output)
    stats = label_statistics(ray.data.read_parquet(path).select_columns(["spans"]).iter_rows())
    return MergeReport(
        path=path,
        rows=stats["rows"],
        spans=stats["spans"],
        per_label=dict(stats["per_label"]),
        statistics=stats,
        seconds=time.perf_counter() - started,
    )


def label_corpus(
    config: PipelineConfig, model_path: str, output: str, synth_rows: str | None = None
) -> tuple[WeakLabelReport, MergeReport]:
    """The `label` command: weak-label the corpus with `model_path`, then merge into training rows."""
    check_model(model_path)
    check_writable(output)
    ensure_ray(config.ray_address)
    weak = weak_label_corpus(config, read_corpus(config), model_path, f"{output}/weak_labels")
    return weak, merge_training_rows(config, weak.path, f"{output}/train_rows", synth_rows)


def write_gold_training_rows(config: PipelineConfig, gold_path: str, output: str) -> str:
    """Gold rows from JSONL as training-row Parquet under `output` (the seed model trains on them)."""
    rows = gold_training_rows(read_gold(gold_path), config.data.labels)
    return write_parquet(ray.data.from_items(rows), output)


def train_on_rows(
    config: PipelineConfig,
    rows_path: str,
    output: str,
    start_model: str | None = None,
    *,
    settings: TrainConfig | None = None,
    tracking: tuple[str, str] | None = None,
    step_hook: StepHook | None = None,
) -> TrainReport:
    """Fine-tune `start_model` (default: a new model on the backbone) on training rows (Parquet) with
    `settings` (default `config.train`); the best checkpoint by dev F1 lands in `output/best`.

    `tracking` = (MLflow URI, run id) receives the step metrics."""
    if not is_uri(rows_path) and not Path(rows_path).exists():
        raise FileNotFoundError(f"training rows not found: {rows_path} (Parquet from `label`)")
    if start_model is not None:
        check_model(start_model)
    check_writable(output)
    ensure_ray(config.ray_address)
    rows = ray.data.read_parquet(rows_path)
    n_rows = rows.count()
    if n_rows == 0:
        raise ValueError(f"no training rows in {rows_path}")
    spec = TrainSpec(
        config=settings or config.train,
        start_model=start_model or new_model(config, f"{output}/base"),
        labels=config.prompts(),
        dev=read_gold(config.data.dev_gold),
        eval_threshold=config.eval.threshold,
        num_rows=n_rows,
        seed=config.seed,
        tracking_uri=tracking[0] if tracking else None,
        run_id=tracking[1] if tracking else None,
    )
    return train_model(
        rows,
        spec,
        run_name=f"{Path(output).name}-train",
        storage_path=f"{output}/ray_train",
        output_dir=f"{output}/best",
        step_hook=step_hook,
    )


def evaluate_model(
    config: PipelineConfig,
    model_path: str,
    gold: str | Sequence[Mapping] | None = None,
    name: str = "dev",
    sample_rows: int = 0,
) -> EvalReport:
    """Strict span-level P/R/F1 of `model_path` on gold rows (a JSONL path or rows; default:
    `data.dev_gold`), at `eval.threshold`."""
    check_model(model_path)
    rows = read_gold(gold or config.data.dev_gold) if gold is None or isinstance(gold, str) else gold
    model = GLiNER.from_pretrained(local_copy(model_path))
    return evaluate_rows(model, rows, config.prompts(), config.eval.threshold, name, sample_rows)
