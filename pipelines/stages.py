"""The loop's stages as standalone steps, for the `synth`, `label`, `train` and `evaluate` commands.

Each step reads its inputs from files, writes its outputs under a folder, and returns a small
report; together they do by hand what `self_training.run` does in one job:

    synth    corpus            -> synth rows (Parquet)
    label    corpus + model    -> weak labels + training rows (Parquet), merged with synth rows if given
    train    training rows     -> checkpoint (best by dev F1)
    evaluate model + gold rows -> span-level P/R/F1 per label
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import ray
import ray.data

from gliner_core import GLiNER
from gliner_core.metrics import SpanReport
from pipelines.config import PipelineConfig
from pipelines.evaluate import evaluate
from pipelines.merge import label_statistics, merge
from pipelines.read import read_documents, read_gold
from pipelines.self_training import backbone_path, ensure_ray
from pipelines.storage import check_writable, resolve, write_parquet
from pipelines.train import TrainResult, train_model
from pipelines.weak_label import weak_label


def default_output(config: PipelineConfig, stage: str) -> str:
    """`<storage_path>/<name>-<stage>-<timestamp>`: a new folder per call, never an overwrite."""
    return f"{resolve(config.storage_path)}/{config.name}-{stage}-{time.strftime('%Y%m%d-%H%M%S')}"


def _documents(config: PipelineConfig) -> ray.data.Dataset:
    data = config.data
    return read_documents(data.corpus, data.corpus_format, data.text_field, data.max_documents)


@dataclass
class LabelReport:
    weak_labels: str  # folder of Parquet shards: documents + GLiNER spans
    train_rows: str  # folder of Parquet shards: training rows (merged, filtered)
    documents: int
    rows: int
    spans: int
    per_label: dict[str, int]
    seconds: float


def label_corpus(
    config: PipelineConfig, model_path: str, output: str, synth_rows: str | None = None
) -> LabelReport:
    """Weak-label the corpus with `model_path`, merge (with LLM rows when given) into training rows."""
    if not Path(model_path).is_dir():
        raise FileNotFoundError(f"model not found: {model_path} (a GLiNER checkpoint folder)")
    check_writable(output)
    ensure_ray(config.ray_address)
    started = time.perf_counter()
    labels = config.prompts()
    weak_path = write_parquet(
        weak_label(_documents(config), model_path, labels, config.weak_label), f"{output}/weak_labels"
    )
    synth = ray.data.read_parquet(synth_rows) if synth_rows else None
    rows_path = write_parquet(
        merge(ray.data.read_parquet(weak_path), list(labels), config.merge, synth), f"{output}/train_rows"
    )
    weak_docs = ray.data.read_parquet(weak_path).count()
    stats = label_statistics(ray.data.read_parquet(rows_path).iter_rows())
    return LabelReport(
        weak_path,
        rows_path,
        weak_docs,
        stats["rows"],
        stats["spans"],
        dict(stats["per_label"]),
        time.perf_counter() - started,
    )


def fresh_model(config: PipelineConfig, path: str) -> str:
    """A GLiNER on the configured backbone with untrained heads, saved at `path`."""
    m = config.model
    model = GLiNER.from_backbone(
        backbone_path(m.backbone),
        hidden_size=m.hidden_size,
        max_len=m.max_len,
        max_width=m.max_width,
        dropout=m.dropout,
    )
    model.save_pretrained(path)
    return path


def train_on_rows(
    config: PipelineConfig, rows_path: str, output: str, start_model: str | None = None, seed: bool = False
) -> TrainResult:
    """Fine-tune `start_model` (default: a fresh model on the backbone) on training rows (Parquet)
    with `config.train` (or `config.seed_train` when `seed`); best-by-dev checkpoint under `output`."""
    if not Path(rows_path).exists() and "://" not in rows_path:
        raise FileNotFoundError(f"training rows not found: {rows_path} (Parquet from `label`)")
    if start_model is not None and not Path(start_model).is_dir():
        raise FileNotFoundError(f"model not found: {start_model} (a GLiNER checkpoint folder)")
    check_writable(output)
    ensure_ray(config.ray_address)
    start = start_model or fresh_model(config, f"{output}/base")
    rows = ray.data.read_parquet(rows_path)
    n_rows = rows.count()
    if n_rows == 0:
        raise ValueError(f"no training rows in {rows_path}")
    dev = read_gold(config.data.dev_gold)
    return train_model(
        rows,
        n_rows,
        start,
        config.prompts(),
        dev,
        config.seed_train if seed else config.train,
        run_name=f"{Path(output).name}-train",
        storage_path=f"{output}/ray_train",
        output_dir=f"{output}/best",
    )


def evaluate_model(config: PipelineConfig, model_path: str, gold_path: str | None = None) -> SpanReport:
    """Strict span-level P/R/F1 of `model_path` on gold rows (default: `data.dev_gold`)."""
    if not Path(model_path).is_dir():
        raise FileNotFoundError(f"model not found: {model_path} (a GLiNER checkpoint folder)")
    gold = read_gold(gold_path or config.data.dev_gold)
    model = GLiNER.from_pretrained(model_path)
    return evaluate(model, gold, config.prompts(), config.train.eval_threshold)


def synthesize_corpus(config: PipelineConfig, synth_config_path: str, output: str):
    """LLM labels for the corpus (tasks and engine from a synth config file) -> synth rows under `output`."""
    from synth.config import load_config
    from synth.stage import run_synth

    synth_config = load_config(synth_config_path)
    check_writable(output)
    ensure_ray(config.ray_address)
    return run_synth(_documents(config), synth_config, output)
