"""The stages as commands: `self-train` (the whole loop), `synth`, `label`, `train`, `evaluate`.

Each resolves the job config from the shared options (`jobs.options.pipeline_command`), checks what it
can before any work, and stops there with `--dry-run`; the pipeline is imported only then.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from jobs.options import (
    MODEL_DEFAULTS,
    MODEL_FORMS,
    ModelOpt,
    PipelineOptions,
    pipeline_command,
    say,
    use_model,
)
from jobs.settings import UserError


def check_synth_config(path: str | Path, labels: list[str]) -> None:
    """Fail before any work when the synth config (tasks + LLM engine) is missing or invalid, or
    names labels the pipeline does not have."""
    if not Path(path).is_file():
        raise UserError(f"synth config not found: {path}")
    from pydantic import ValidationError

    from jobs.settings import describe_validation_error
    from synth.config import load_config as load_synth

    try:
        load_synth(path).with_labels(labels)
    except ValidationError as error:
        raise UserError(f"bad synth config {path}: {describe_validation_error(error)}") from error
    except ValueError as error:
        raise UserError(f"bad synth config {path}: {str(error).splitlines()[0]}") from error


@pipeline_command()
def self_train(
    options: PipelineOptions,
    iterations: Annotated[int | None, typer.Option(help="override loop.iterations")] = None,
) -> None:
    """The whole loop: weak-label, merge, train, evaluate, register; repeat (MLflow tracks each iteration)."""
    cfg = options.resolve(**{"loop.iterations": iterations})
    if cfg.synth.mode == "generate":
        check_synth_config(cfg.synth.config, cfg.data.labels)
    if options.dry_run:
        return
    from pipelines import run

    run(cfg, verbose=options.verbose)


@pipeline_command()
def synth(
    options: PipelineOptions,
    synth_config: Annotated[
        Path, typer.Option("--synth-config", help="synth config: tasks and LLM engine (YAML/JSON)")
    ],
    output: Annotated[str | None, typer.Option(help="folder for the synth rows (Parquet)")] = None,
) -> None:
    """LLM labels for the corpus (data.corpus): one synth row per document and task, grounded in the text."""
    cfg = options.resolve()
    check_synth_config(synth_config, cfg.data.labels)
    if options.dry_run:
        return
    from pipelines import default_output, ensure_ray, read_corpus, synthesize_corpus

    folder = output or default_output(cfg, "synth")
    with options.console(f"{folder}.log") as console, console.stage("synth") as line:
        ensure_ray(cfg.ray_address, verbose=options.verbose)
        report = synthesize_corpus(cfg, read_corpus(cfg), str(synth_config), folder)
        line.done(f"{report.rows} synth rows -> {report.output}")
    say(report.table())


@pipeline_command()
def label(
    options: PipelineOptions,
    model: ModelOpt = MODEL_DEFAULTS["label"],
    output: Annotated[str | None, typer.Option(help="output folder (weak_labels/ and train_rows/)")] = None,
    synth_rows: Annotated[str | None, typer.Option(help="synth rows (Parquet) to merge with")] = None,
) -> None:
    """Weak-label the corpus with a GLiNER model and merge the spans into training rows (Parquet)."""
    cfg = options.resolve()
    if options.dry_run:
        return
    source = use_model(cfg, model)
    from pipelines import default_output, ensure_ray, label_corpus

    say(f"model: {source.description}")
    folder = output or default_output(cfg, "label")
    with options.console(f"{folder}.log") as console, console.stage("label") as line:
        ensure_ray(cfg.ray_address, verbose=options.verbose)
        weak, merged = label_corpus(cfg, source.path, folder, synth_rows)
        line.done(f"weak-label: {weak.summary()}; merge: {merged.summary()}")
    say(f"weak labels -> {weak.path}")
    say(f"training rows -> {merged.path}")


@pipeline_command()
def train(
    options: PipelineOptions,
    rows: Annotated[str, typer.Option(help="training rows (Parquet folder from `label`)")],
    model: Annotated[
        str | None, typer.Option("--model", "-m", help=f"start from {MODEL_FORMS} (default: fresh heads)")
    ] = None,
    seed: Annotated[bool, typer.Option("--seed", help="use the seed_train settings (gold rows)")] = False,
    output: Annotated[str | None, typer.Option(help="output folder (best/ holds the checkpoint)")] = None,
) -> None:
    """Fine-tune GLiNER on training rows with Ray Train until its dev score (calibrated micro F1 on
    data.dev_gold) stops improving, within train.max_steps; keeps the best checkpoint."""
    cfg = options.resolve()
    if options.dry_run:
        return
    start = use_model(cfg, model).path if model is not None else None
    from pipelines import default_output, ensure_ray, train_on_rows

    settings = cfg.seed_train if seed else cfg.train
    folder = output or default_output(cfg, "train")
    with options.console(f"{folder}.log") as console, console.stage("train") as line:
        ensure_ray(cfg.ray_address, verbose=options.verbose)
        result = train_on_rows(cfg, rows, folder, start, settings=settings)
        line.done(result.summary())
    metrics = ", ".join(
        f"{k} {v:.4f}" for k, v in sorted(result.metrics.items()) if k.startswith("dev_micro")
    )
    say(f"trained in {result.seconds:.1f} s ({metrics or 'no dev metrics'}) -> {result.model_path}")


@pipeline_command(uses_ray=False)
def evaluate(
    options: PipelineOptions,
    model: ModelOpt = MODEL_DEFAULTS["evaluate"],
    gold: Annotated[str | None, typer.Option(help="gold JSONL (default: data.dev_gold)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the metrics as JSON")] = False,
) -> None:
    """Span-level precision, recall and F1 per label of a model on gold rows."""
    cfg = options.resolve()
    if options.dry_run:
        return
    source = use_model(cfg, model)
    from pipelines import evaluate_model

    typer.echo(f"model: {source.description}", err=True)
    report = evaluate_model(cfg, source.path, gold)
    say(json.dumps(report.scores.to_dict(), indent=2) if as_json else report.scores.format_table())
