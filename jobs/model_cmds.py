"""The commands about one model: `predict` (entities in a text or a file of texts), `export` (for
serving) and `lineage` (what a registered version was trained on)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from jobs.options import MODEL_DEFAULTS, ModelOpt, PipelineOptions, pipeline_command, say, use_model
from jobs.settings import UserError

if TYPE_CHECKING:
    from pipelines import PipelineConfig, ResolvedModel


def sample_text() -> str:
    """The shipped sample paragraph (`jobs/sample_text.txt`)."""
    return resources.files("jobs").joinpath("sample_text.txt").read_text(encoding="utf-8").strip()


def parse_labels(raw: str) -> list[str]:
    return [label.strip() for label in raw.split(",") if label.strip()]


def read_texts(path: Path, text_field: str) -> list[str]:
    """Texts from a .jsonl file (one object per line with `text_field`) or a text file (one per line)."""
    if not path.is_file():
        raise UserError(f"input file not found: {path}")
    texts = []
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            if path.suffix == ".jsonl":
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as error:
                    raise UserError(f"{path}:{number}: not JSON ({error.msg})") from error
                if not isinstance(row, dict) or not isinstance(row.get(text_field), str):
                    raise UserError(f"{path}:{number}: no string field {text_field!r}")
                texts.append(row[text_field])
            else:
                texts.append(line.rstrip("\n"))
    return texts


def format_table(entities: Sequence[dict]) -> str:
    header = ("start", "end", "label", "score", "text")
    rows = [
        (str(e["start"]), str(e["end"]), str(e["label"]), f"{float(e['score']):.3f}", str(e["text"]))
        for e in entities
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    head = "  ".join(cell.ljust(width) for cell, width in zip(header, widths, strict=True))
    rule = "  ".join("-" * width for width in widths)
    return "\n".join(line.rstrip() for line in [head, rule, *lines])


def load_gliner(source: ResolvedModel):
    """The GLiNER model of a resolved checkpoint; a checkpoint that does not load is one error line."""
    from safetensors import SafetensorError

    from gliner_core import GLiNER

    try:
        return GLiNER.from_pretrained(source.path)
    except (SafetensorError, ValueError, OSError, RuntimeError, KeyError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"cannot load model {source.description} from {source.path}: {first}") from error


def _calibrated(gliner) -> str:
    """The checkpoint's per-label thresholds, for display."""
    thresholds = gliner.config.label_thresholds or {}
    return "calibrated (" + ", ".join(f"{k} {v:.2f}" for k, v in thresholds.items()) + ")"


def predict_rows(
    gliner,
    texts: Sequence[str],
    label_prompts: dict[str, str],
    threshold: float | None,
    batch_size: int,
    output: Path | None,
) -> int:
    """Label `texts` `batch_size` at a time: one JSON row per text (`index`, `text`, `entities`) into
    `output`, else to stdout, with a progress bar on stderr. Returns the entities found."""
    from tqdm import tqdm

    sink = output.open("w", encoding="utf-8") if output else None
    found = 0
    try:
        with tqdm(total=len(texts), unit="text", desc="predict", disable=None, file=sys.stderr) as bar:
            for start in range(0, len(texts), batch_size):
                chunk = list(texts[start : start + batch_size])
                results = gliner.batch_predict_entities(chunk, label_prompts, threshold=threshold)
                for offset, (t, entities) in enumerate(zip(chunk, results, strict=True)):
                    found += len(entities)
                    row = {"index": start + offset, "text": t, "entities": entities}
                    if sink:
                        sink.write(json.dumps(row, ensure_ascii=False) + "\n")
                    else:
                        say(json.dumps(row, ensure_ascii=False))
                bar.update(len(chunk))
    finally:
        if sink:
            sink.close()
    return found


@pipeline_command(uses_ray=False)
def predict(
    options: PipelineOptions,
    model: ModelOpt = MODEL_DEFAULTS["predict"],
    text: Annotated[str | None, typer.Option(help="text to label (default: jobs/sample_text.txt)")] = None,
    file: Annotated[
        Path | None, typer.Option(help="texts to label: .jsonl (with --text-field) or one text per line")
    ] = None,
    text_field: Annotated[str, typer.Option(help="field holding the text in a .jsonl file")] = "text",
    labels: Annotated[
        str | None,
        typer.Option(help="comma-separated labels (default: the registered model's, else data.labels)"),
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="score threshold (default: the registered model's, else 0.5)"),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="texts per model call")] = 16,
    output: Annotated[Path | None, typer.Option(help="write JSONL predictions here (with --file)")] = None,
) -> None:
    """Print (or write) the entities a GLiNER model finds in a text or a file of texts.

    Without --model it uses the registry's champion (what `make run` / `self-train` registered).
    """
    cfg = options.resolve()
    if labels is not None and not parse_labels(labels):
        raise UserError("--labels is empty")
    if text is not None and file is not None:
        raise UserError("give --text or --file, not both")
    if options.dry_run:
        return
    texts = (
        read_texts(file, text_field) if file is not None else [text if text is not None else sample_text()]
    )
    source = use_model(cfg, model)
    known = source.labels or cfg.prompts()  # label -> prompt
    label_prompts = {name: known.get(name, name) for name in parse_labels(labels)} if labels else known
    gliner = load_gliner(source)
    typer.echo(f"model: {source.description}", err=True)
    if threshold is None:  # the checkpoint's calibrated per-label thresholds, else the registered one
        from pipelines import model_threshold

        fallback = source.threshold if source.threshold is not None else cfg.eval.threshold
        threshold = model_threshold(gliner, fallback)
    shown = threshold if threshold is not None else _calibrated(gliner)

    if file is None:
        entities = gliner.predict_entities(texts[0], label_prompts, threshold=threshold)
        say(f"text: {texts[0]}")
        say(f"labels: {', '.join(label_prompts)}  threshold: {shown}")
        say(format_table(entities) if entities else f"(no entities above threshold {shown})")
        return

    found = predict_rows(gliner, texts, label_prompts, threshold, batch_size, output)
    typer.echo(f"{len(texts)} texts, {found} entities" + (f" -> {output}" if output else ""), err=True)


@pipeline_command(uses_ray=False)
def export(
    options: PipelineOptions,
    model: ModelOpt = MODEL_DEFAULTS["export"],
    format: Annotated[str, typer.Option("--format", help="serving format: onnx")] = "onnx",
    quantize: Annotated[
        str | None, typer.Option(help="int8: also a quantized graph, checked on --gold (default: none)")
    ] = None,
    gold: Annotated[
        str | None, typer.Option(help="gold JSONL for the int8 F1 check (default: data.dev_gold)")
    ] = None,
    output: Annotated[str | None, typer.Option(help="export folder (default: under storage_path)")] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="replace an existing --output folder")
    ] = False,
) -> None:
    """Export a model for serving (ONNX, optionally int8); a registered model's version records it.

    An int8 graph that loses more dev micro F1 than export.int8_max_f1_drop is refused (exit code 1).
    """
    from pipelines import FORMATS, QUANTIZATIONS

    if format not in FORMATS:
        raise UserError(f"--format {format!r} is not supported: use {', '.join(FORMATS)}")
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise UserError(f"--quantize {quantize!r} is not supported: use {', '.join(QUANTIZATIONS)}")
    if gold is not None and quantize is None:
        raise UserError("--gold is for the int8 check: add --quantize int8, or leave --gold out")
    cfg = options.resolve()
    if options.dry_run:
        return
    from pipelines import Int8Refused, NotLogged, default_folder, export_for_serving

    if gold is not None and not Path(gold).is_file():
        raise UserError(f"gold file not found: {gold}")
    if output is None:
        try:
            output = default_folder(cfg)
        except ValueError as error:
            raise UserError(str(error)) from error
    if Path(output).exists() and not overwrite:
        raise UserError(f"{output} already exists: choose another --output or pass --overwrite")
    source = use_model(cfg, model)
    typer.echo(f"model: {source.description}", err=True)
    try:
        result = export_for_serving(cfg, source, output, quantize, gold, overwrite)
    except Int8Refused as refused:
        typer.echo(f"error: {refused}", err=True)
        raise typer.Exit(1) from refused
    except ValueError as error:  # a gold file that is not gold rows, labels it lacks
        raise UserError(str(error).splitlines()[0]) from error
    except NotLogged as error:  # the registry refused or is out of reach
        raise UserError(str(error)) from error
    say(result.summary())
    if result.artifact_uri:
        say(f"logged with {source.description}: serving/onnx = {result.artifact_uri}")


def parse_version_reference(reference: str, config: PipelineConfig) -> tuple[str, str]:
    """(registered model, version number or alias) of NAME@VERSION, NAME@ALIAS, @VERSION, @ALIAS,
    champion, a bare version number, models:/NAME/VERSION or models:/NAME@ALIAS."""
    from pipelines import ModelSourceError, parse_reference

    text = reference.strip()
    name = config.tracking.registered_model
    if text.startswith("models:"):
        try:
            parsed = parse_reference(text)
        except ModelSourceError as error:
            raise UserError(str(error)) from error
        assert parsed.name is not None
        return parsed.name, parsed.version or parsed.alias or config.tracking.champion_alias
    if text in ("champion", config.tracking.champion_alias):
        return name, config.tracking.champion_alias
    if text.isdigit():
        return name, text
    given, at, which = text.rpartition("@")
    if not at or not which:
        raise UserError(
            f"bad model version {reference!r}: give NAME@VERSION or NAME@ALIAS "
            f"(e.g. {name}@3, {name}@champion)"
        )
    return given or name, which


@pipeline_command(uses_ray=False)
def lineage(
    options: PipelineOptions,
    version: Annotated[
        str, typer.Argument(help="MODEL@VERSION or MODEL@ALIAS, e.g. gliner-selftrain@3 or @champion")
    ],
    tracking_uri: Annotated[
        str | None, typer.Option(help="MLflow tracking URI (default: tracking.tracking_uri, env, storage)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print it as JSON")] = False,
) -> None:
    """What a registered model version was trained on, who labeled it and with which settings."""
    cfg = options.resolve(**{"tracking.tracking_uri": tracking_uri})
    if options.dry_run:
        return
    name, which = parse_version_reference(version, cfg)
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from pipelines import ModelSourceError, format_lineage, redact_uri, registry_uri
    from pipelines import lineage as read_lineage

    try:
        uri = registry_uri(cfg)
    except ModelSourceError as error:
        raise UserError(str(error)) from error
    try:
        data = read_lineage(MlflowClient(tracking_uri=uri, registry_uri=uri), name, which)
    except MlflowException as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"no {name}@{which} in the registry at {redact_uri(uri)}: {first}") from error
    say(json.dumps(data, indent=2) if as_json else format_lineage(data))
