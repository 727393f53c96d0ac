"""The loop's stages, each a function from files to files that returns a typed report.

The command line runs them one by one (`synth`, `label`, `train`, `evaluate`); the self-training
loop (`pipelines.loop.self_training`) composes the same functions:

    read_corpus          corpus                 -> documents (lazy Ray Dataset)
    synthesize_corpus    documents              -> synth rows (Parquet)             SynthStageReport
    weak_label_corpus    documents + model      -> weak labels (Parquet)            WeakLabelReport
    merge_training_rows  weak labels (+ synth)  -> training rows (Parquet)          MergeReport
    train_on_rows        training rows + model  -> best checkpoint by dev F1        TrainReport
    evaluate_model       model + gold rows      -> span P/R/F1 per label            EvalReport
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path

import pyarrow as pa
import ray
import ray.data

from gliner_core import GLiNER
from pipelines.config import PipelineConfig, SourceConfig, TrainConfig
from pipelines.data.gold import replay_sample
from pipelines.data.read import read_documents, read_gold
from pipelines.data.storage import (
    check_writable,
    is_dir,
    is_uri,
    local_copy,
    read_text,
    resolve,
    save_model,
    write_parquet,
)
from pipelines.loop.runtime import backbone_path, ensure_ray
from pipelines.reports import (
    CalibrationReport,
    EvalReport,
    MergeReport,
    SynthStageReport,
    TrainReport,
    WeakLabelReport,
)
from pipelines.selection.evaluate import calibrate, evaluate_rows, label_order_spread, model_threshold
from pipelines.training.train_worker import StepHook, TrainSpec
from pipelines.training.trainer import train_model
from pipelines.weak.label_model import fit_label_model
from pipelines.weak.merge import (
    TRAINING_SCHEMA,
    balance_batch,
    balance_rates,
    collect,
    label_model_rows,
    label_statistics,
    merge,
    score_quantile,
)
from pipelines.weak.prompt_views import configured_views
from pipelines.weak.quality import weak_label_quality
from pipelines.weak.weak_label import weak_label


class NothingToTrain(ValueError):
    """The training rows cannot teach the model anything (none, or none with a usable span): the train
    stage refuses before starting Ray Train."""


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
    """A GLiNER on the configured backbone with heads initialised from `config.seed`, saved at `path`."""
    import torch

    torch.manual_seed(config.seed)
    model = GLiNER.from_backbone(backbone_path(config.model.backbone), **config.model.settings)
    return save_model(model, path)


def synthesize_corpus(
    config: PipelineConfig,
    documents: ray.data.Dataset,
    synth_config_path: str,
    output: str,
    run_id: str | None = None,
) -> SynthStageReport:
    """LLM labels for the corpus (tasks and engine from a synth config file) -> synth rows under `output`.

    NER tasks without labels take `data.labels`; a task naming other labels is refused here."""
    from synth.config import load_config
    from synth.stage import run_synth

    synth_config = load_config(synth_config_path).with_labels(
        config.data.labels, config.data.label_descriptions
    )
    check_writable(output)
    return SynthStageReport(run_synth(documents, synth_config, output, run_id=run_id))


def weak_label_corpus(
    config: PipelineConfig, documents: ray.data.Dataset, model_path: str, output: str
) -> WeakLabelReport:
    """GLiNER (`model_path`) labels every document -> Parquet under `output`."""
    check_model(model_path)
    started = time.perf_counter()
    views = configured_views(config.weak_label.views, config.prompts(), config.data.label_synonyms)
    labeled = weak_label(documents, model_path, views, config.weak_label, config.eval.threshold)
    path = write_parquet(labeled, output)
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


def weak_sources(config: PipelineConfig) -> dict[str, list[str]]:
    """The weak-label stage's sources (GLiNER views, NER models, labeling functions) -> the labels each
    can give."""
    views = configured_views(config.weak_label.views, config.prompts(), config.data.label_synonyms)
    scopes = {name: list(view) for name, view in views.items()}
    scopes.update({model.origin: model.scope() for model in config.weak_label.ner_models})
    if config.weak_label.labeling_functions.enabled:
        from pipelines.weak.labeling_functions import LabelingFunctions

        scopes.update(LabelingFunctions(config.weak_label.labeling_functions).scopes)
    return scopes


def merge_training_rows(
    config: PipelineConfig,
    weak_labels: str,
    output: str,
    synth_rows: str | None = None,
    gold: Sequence[Mapping] = (),
    iteration: int = 0,
) -> MergeReport:
    """Weak labels (+ the LLM's NER and open-NER rows) -> training rows (Parquet under `output`).

    With `merge.label_model` the collected votes are written beside (`<output>_votes`), the label
    model is fitted on them and labels every document; then class balance; then `loop.replay` x the
    rows' count of `gold` training rows (a fresh seeded draw per `iteration`)."""
    merge_config, labels, seed = config.merge, config.data.labels, config.seed
    started = time.perf_counter()
    synth = ray.data.read_parquet(synth_rows) if synth_rows else None
    weak = ray.data.read_parquet(weak_labels)
    label_model_report = None
    if merge_config.label_model is None:
        rows = merge(weak, labels, merge_config, synth, seed=seed)
    else:
        scopes = weak_sources(config)
        votes_path = write_parquet(collect(weak, labels, list(scopes), synth), f"{output}_votes")
        votes = ray.data.read_parquet(votes_path)
        lm_config = merge_config.label_model
        given = dict(lm_config.sources)
        for source, scope in scopes.items():  # each weak source's scope, unless the config gives one
            given.setdefault(source, SourceConfig(labels=scope))
        model, label_model_report = fit_label_model(
            votes.iter_batches(batch_format="pyarrow"),
            labels,
            lm_config.model_copy(update={"sources": given}),
            seed=seed,
        )
        rows = votes.map_batches(
            partial(label_model_rows, model=model, labels=labels, config=merge_config, seed=seed),
            batch_format="pyarrow",
        )
    path = write_parquet(rows, output)
    stats = label_statistics(ray.data.read_parquet(path).select_columns(["spans"]).iter_rows())
    before = dict(stats["per_label"])
    keep = balance_rates(before, merge_config.max_label_share)
    if keep:
        balanced = ray.data.read_parquet(path).map_batches(
            partial(balance_batch, keep=keep, seed=seed), batch_format="pyarrow"
        )
        path = write_parquet(balanced.materialize(), output)
    replay = replay_sample(gold, round(config.loop.replay * stats["rows"]), seed, iteration)
    if replay:
        table = pa.Table.from_pylist([dict(r) for r in replay], schema=TRAINING_SCHEMA)
        path = write_parquet(
            ray.data.read_parquet(path).union(ray.data.from_arrow(table)).materialize(), output
        )
    if keep or replay:
        stats = label_statistics(ray.data.read_parquet(path).select_columns(["spans"]).iter_rows())
    quality = None
    if config.data.corpus_gold:
        floor = merge_config.score_floor(merge_config.label_model is not None)
        quality = weak_label_quality(weak_labels, path, read_gold(config.data.corpus_gold), labels, floor)
    return MergeReport(
        path=path,
        rows=stats["rows"],
        spans=stats["spans"],
        per_label=dict(stats["per_label"]),
        statistics=stats,
        seconds=time.perf_counter() - started,
        per_label_before_balance=before if keep else None,
        replay_rows=len(replay),
        label_model=label_model_report,
        label_model_params=model.model_dump() if label_model_report is not None else None,
        quality=quality,
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


def write_seed_rows(config: PipelineConfig, rows: Sequence[Mapping], output: str) -> str:
    """The seed's gold training rows (`data.gold.seed_training_rows` of `data.seed_gold`) as
    training-row Parquet under `output`; returns the path."""
    if not rows:
        raise ValueError(f"data.seed_gold holds no rows: {[s.path for s in config.data.seed_gold]}")
    return write_parquet(ray.data.from_items(list(rows)), output)


def train_on_rows(
    config: PipelineConfig,
    rows_path: str,
    output: str,
    start_model: str | None = None,
    *,
    settings: TrainConfig | None = None,
    label_pool: Sequence[str] = (),
    tracking: tuple[str, str] | None = None,
    step_hook: StepHook | None = None,
) -> TrainReport:
    """Fine-tune `start_model` (default: a new model on the backbone) on training rows (Parquet) with
    `settings` (default `config.train`); the best checkpoint by dev F1 lands in `output/best`.

    Rows without a label set offer labels sampled from `data.labels` and `label_pool`; `tracking` =
    (MLflow URI, run id) receives the step metrics."""
    if not is_uri(rows_path) and not Path(rows_path).exists():
        raise FileNotFoundError(f"training rows not found: {rows_path} (Parquet from `label`)")
    if start_model is not None:
        check_model(start_model)
    check_writable(output)
    ensure_ray(config.ray_address)
    rows = ray.data.read_parquet(rows_path)
    n_rows = rows.count()
    if n_rows == 0:
        raise NothingToTrain(f"no training rows in {rows_path}")
    start = start_model or new_model(config, f"{output}/base")
    check_rows(rows, rows_path, start)
    spec = TrainSpec(
        config=settings or config.train,
        start_model=start,
        labels=config.prompts(),
        label_pool=list(dict.fromkeys([*config.data.labels, *label_pool])),
        soft_targets=config.merge.soft_targets,
        dev=read_gold(config.data.dev_gold),
        eval_threshold=config.eval.threshold,
        threshold_floor=config.eval.threshold_floor,
        calibration_min_support=config.eval.calibration_min_support,
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


CHECKED_ROWS = 5000  # training rows looked at before training starts


def check_rows(rows: ray.data.Dataset, rows_path: str, model_path: str) -> None:
    """Fail before training, with the cause, when the rows cannot teach the model anything: no positive
    span, most spans not on word boundaries, no row with a word (`gliner_core.check_training_rows`)."""
    from gliner_core.config import CONFIG_FILE, GLiNERConfig
    from gliner_core.training import check_training_rows

    sample = rows.limit(CHECKED_ROWS).take_all()
    settings_path = f"{model_path.rstrip('/')}/{CONFIG_FILE}"  # local or in object storage
    settings = GLiNERConfig.from_json_text(read_text(settings_path), settings_path)
    problems = check_training_rows(sample, settings).problems()
    if problems:
        where = f"the first {len(sample)} rows of {rows_path}" if len(sample) == CHECKED_ROWS else rows_path
        raise NothingToTrain(f"not training on {where}: " + "; ".join(problems))


def evaluate_model(
    config: PipelineConfig,
    model_path: str,
    gold: str | Sequence[Mapping] | None = None,
    name: str = "dev",
    sample_rows: int = 0,
) -> EvalReport:
    """Strict span-level P/R/F1 of `model_path` on gold rows (a JSONL path or rows; default:
    `data.dev_gold`), at its calibrated thresholds (else `eval.threshold`), with the label-permutation
    check: the same rows with the labels' prompt order rotated (`EvalReport.converged`)."""
    check_model(model_path)
    rows = read_gold(gold or config.data.dev_gold) if gold is None or isinstance(gold, str) else gold
    model = GLiNER.from_pretrained(local_copy(model_path))
    threshold = model_threshold(model, config.eval.threshold)
    report = evaluate_rows(model, rows, config.prompts(), threshold, name, sample_rows)
    report.order_spread = label_order_spread(model, rows, config.prompts(), threshold, report.scores)
    report.order_tolerance = config.eval.order_tolerance
    report.order_min_support = config.loop.guard_min_support
    return report


def calibrate_model(config: PipelineConfig, model_path: str) -> CalibrationReport:
    """Per-label thresholds of `model_path` that maximise each label's F1 on `eval.calibration_gold`
    (default: `data.dev_gold`), saved into the checkpoint (`gliner_config.json`)."""
    check_model(model_path)
    started = time.perf_counter()
    rows = read_gold(config.eval.calibration_gold or config.data.dev_gold)
    model = GLiNER.from_pretrained(local_copy(model_path))
    result = calibrate(config, model, rows)
    result.apply(model)
    save_model(model, model_path)
    return CalibrationReport(result, len(rows), time.perf_counter() - started)
