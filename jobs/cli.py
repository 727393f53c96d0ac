"""`gliner-selftrain`: the command line (also `python -m jobs`).

Pipeline commands (run here, or on a cluster through `submit`):
    synth, label, train, evaluate, self-train, predict, export, lineage
Cluster commands:
    submit, schedule, status, logs

Every pipeline command takes the same options (`pipeline_command`): the YAML config (`--config`,
default: the built-in local profile), `--set section.key=value` overrides, `--storage`,
`--ray-address` and `--dry-run` (prints the resolved config). A `--model` is a folder, `champion`
(the default: the registry's), `models:/NAME@ALIAS`, `models:/NAME/VERSION` or a hub id
(pipelines/registry/model_source.py). Usage mistakes get Click's usage message, other user mistakes one
`error: …` line, both exit code 2; heavy imports happen inside the commands so `--help` is fast.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from jobs.settings import UserError, load_config

if TYPE_CHECKING:
    from pipelines.config import PipelineConfig
    from pipelines.registry.model_source import ResolvedModel

app = typer.Typer(
    name="gliner-selftrain",
    help="Label a corpus with an LLM and GLiNER, fine-tune GLiNER on it with Ray, track it in MLflow.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

MODEL_FORMS = (
    "a checkpoint folder, champion (the registry's), models:/NAME@ALIAS, models:/NAME/VERSION or a hub id"
)


def say(message: str) -> None:
    typer.echo(message)


# -- options shared by the pipeline commands -------------------------------------------------------


@dataclass
class PipelineOptions:
    """The options every pipeline command takes: --config, --set, --storage, --ray-address, --dry-run,
    --verbose."""

    config: Path | None = None
    overrides: list[str] | None = None
    storage: str | None = None
    ray_address: str | None = None
    dry_run: bool = False
    verbose: bool = False

    def console(self, log_path: str):
        """The command's console: stage lines here, everything else (Ray's output) in `log_path`."""
        from pipelines.console import Console

        return Console.capture(log_path, verbose=self.verbose)

    def resolve(self, **fields: Any) -> PipelineConfig:
        """The config file, then --set, then flags (`fields`, e.g. `{"loop.iterations": 3}`), validated;
        printed (credentials in URIs hidden) with --dry-run."""
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        resolved = load_config(
            self.config,
            list(self.overrides or []),
            {"storage_path": self.storage, "ray_address": self.ray_address, **fields},
        )
        if self.dry_run:
            from pipelines.data.storage import redact_config

            say(json.dumps(redact_config(resolved.model_dump(mode="json")), indent=2))
        return resolved


_KW = inspect.Parameter.KEYWORD_ONLY
SHARED_OPTIONS = [
    inspect.Parameter(
        "config",
        _KW,
        default=None,
        annotation=Annotated[
            Path | None,
            typer.Option("--config", "-c", help="YAML/JSON pipeline config (default: the local profile)"),
        ],
    ),
    inspect.Parameter(
        "overrides",
        _KW,
        default=None,
        annotation=Annotated[
            list[str] | None,
            typer.Option("--set", "-s", help="override a config key, e.g. -s train.epochs=3 (repeatable)"),
        ],
    ),
    inspect.Parameter(
        "storage",
        _KW,
        default=None,
        annotation=Annotated[
            str | None,
            typer.Option("--storage", help="storage_path: where data, checkpoints and mlflow.db go"),
        ],
    ),
    inspect.Parameter(
        "ray_address",
        _KW,
        default=None,
        annotation=Annotated[
            str | None, typer.Option("--ray-address", help="Ray cluster address (default: local Ray)")
        ],
    ),
    inspect.Parameter(
        "dry_run",
        _KW,
        default=False,
        annotation=Annotated[bool, typer.Option("--dry-run", help="print the resolved config and exit")],
    ),
    inspect.Parameter(
        "verbose",
        _KW,
        default=False,
        annotation=Annotated[
            bool, typer.Option("--verbose", "-v", help="show Ray's worker output and progress bars too")
        ],
    ),
]


def pipeline_command(name: str | None = None, *, uses_ray: bool = True) -> Callable[[Callable], Callable]:
    """Register a pipeline command. Its first parameter receives a `PipelineOptions`; the shared
    options are appended to the command's own (`--ray-address` only for commands that use Ray)."""

    def register(func: Callable) -> Callable:
        own = list(inspect.signature(func, eval_str=True).parameters.values())[1:]
        shared = [p for p in SHARED_OPTIONS if uses_ray or p.name != "ray_address"]
        names = [p.name for p in shared]

        @functools.wraps(func)
        def command(**kwargs: Any) -> Any:
            options = PipelineOptions(**{n: kwargs.pop(n) for n in names})
            return func(options, **kwargs)

        parameters = [p.replace(kind=_KW) for p in own] + shared
        command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in parameters}
        return app.command(name)(command)

    return register


ModelOpt = Annotated[str, typer.Option("--model", "-m", help=f"the model: {MODEL_FORMS}")]


def use_model(config: PipelineConfig, reference: str) -> ResolvedModel:
    """The checked local checkpoint for a --model value (see pipelines/registry/model_source.py)."""
    from pipelines.registry.model_source import ModelSourceError, resolve_model

    try:
        return resolve_model(reference, config)
    except ModelSourceError as error:
        raise UserError(str(error)) from error


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


# -- pipeline commands -----------------------------------------------------------------------------


@pipeline_command("self-train")
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
    from pipelines.loop.self_training import run

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
    from pipelines.loop.stages import default_output, read_corpus, synthesize_corpus
    from pipelines.runtime import ensure_ray

    folder = output or default_output(cfg, "synth")
    with options.console(f"{folder}.log") as console, console.stage("synth") as line:
        ensure_ray(cfg.ray_address, verbose=options.verbose)
        report = synthesize_corpus(cfg, read_corpus(cfg), str(synth_config), folder)
        line.done(f"{report.rows} synth rows -> {report.output}")
    say(report.table())


@pipeline_command()
def label(
    options: PipelineOptions,
    model: ModelOpt = "champion",
    output: Annotated[str | None, typer.Option(help="output folder (weak_labels/ and train_rows/)")] = None,
    synth_rows: Annotated[str | None, typer.Option(help="synth rows (Parquet) to merge with")] = None,
) -> None:
    """Weak-label the corpus with a GLiNER model and merge the spans into training rows (Parquet)."""
    cfg = options.resolve()
    if options.dry_run:
        return
    source = use_model(cfg, model)
    from pipelines.loop.stages import default_output, label_corpus
    from pipelines.runtime import ensure_ray

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
    """Fine-tune GLiNER on training rows with Ray Train; keeps the best epoch by dev F1 (data.dev_gold)."""
    cfg = options.resolve()
    if options.dry_run:
        return
    start = use_model(cfg, model).path if model is not None else None
    from pipelines.loop.stages import default_output, train_on_rows
    from pipelines.runtime import ensure_ray

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
    model: ModelOpt = "champion",
    gold: Annotated[str | None, typer.Option(help="gold JSONL (default: data.dev_gold)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the metrics as JSON")] = False,
) -> None:
    """Span-level precision, recall and F1 per label of a model on gold rows."""
    cfg = options.resolve()
    if options.dry_run:
        return
    source = use_model(cfg, model)
    from pipelines.loop.stages import evaluate_model

    typer.echo(f"model: {source.description}", err=True)
    report = evaluate_model(cfg, source.path, gold)
    say(json.dumps(report.scores.to_dict(), indent=2) if as_json else report.scores.format_table())


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


@pipeline_command(uses_ray=False)
def predict(
    options: PipelineOptions,
    model: ModelOpt = "champion",
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
        from pipelines.selection.evaluate import model_threshold

        fallback = source.threshold if source.threshold is not None else cfg.eval.threshold
        threshold = model_threshold(gliner, fallback)
    shown = threshold if threshold is not None else _calibrated(gliner)

    if file is None:
        entities = gliner.predict_entities(texts[0], label_prompts, threshold=threshold)
        say(f"text: {texts[0]}")
        say(f"labels: {', '.join(label_prompts)}  threshold: {shown}")
        say(format_table(entities) if entities else f"(no entities above threshold {shown})")
        return

    from tqdm import tqdm

    sink = output.open("w", encoding="utf-8") if output else None
    found = 0
    try:
        with tqdm(total=len(texts), unit="text", desc="predict", disable=None, file=sys.stderr) as bar:
            for start in range(0, len(texts), batch_size):
                chunk = texts[start : start + batch_size]
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
    typer.echo(f"{len(texts)} texts, {found} entities" + (f" -> {output}" if output else ""), err=True)


@pipeline_command(uses_ray=False)
def export(
    options: PipelineOptions,
    model: ModelOpt = "champion",
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
    from pipelines.ops.serving import FORMATS, QUANTIZATIONS

    if format not in FORMATS:
        raise UserError(f"--format {format!r} is not supported: use {', '.join(FORMATS)}")
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise UserError(f"--quantize {quantize!r} is not supported: use {', '.join(QUANTIZATIONS)}")
    if gold is not None and quantize is None:
        raise UserError("--gold is for the int8 check: add --quantize int8, or leave --gold out")
    cfg = options.resolve()
    if options.dry_run:
        return
    from pipelines.ops.serving import Int8Refused, NotLogged, default_folder, export_for_serving

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
    from pipelines.registry.model_source import ModelSourceError, parse_reference

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

    from pipelines.data.storage import redact_uri
    from pipelines.registry.model_source import ModelSourceError, registry_uri
    from pipelines.registry.tracking import format_lineage
    from pipelines.registry.tracking import lineage as read_lineage

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


# -- cluster commands ------------------------------------------------------------------------------

CommandArg = Annotated[
    list[str] | None,
    typer.Argument(help="the pipeline command to run on the cluster, after `--`", show_default=False),
]
AddressOpt = Annotated[
    str | None,
    typer.Option("--address", envvar="RAY_ADDRESS", help="the cluster's dashboard, e.g. http://head:8265"),
]
WorkingDirOpt = Annotated[Path, typer.Option(help="uploaded as the job's working directory")]
PipOpt = Annotated[list[str] | None, typer.Option("--pip", help="pip requirement for the job (repeatable)")]
CpusOpt = Annotated[
    float | None,
    typer.Option(
        help="CPUs reserved for the job's driver (default 0: it only coordinates; a CPU reserved here "
        "is one less for the stages' actors and tasks)"
    ),
]
GpusOpt = Annotated[float | None, typer.Option(help="GPUs reserved for the job's driver")]
AllowMissingOpt = Annotated[
    bool,
    typer.Option(
        "--allow-missing-paths",
        help="do not require absolute input paths to exist here (paths that exist only on the cluster)",
    ),
]


def _spec(command: list[str] | None, working_dir: Path, pip: list[str] | None, key: str, cpus, gpus, allow):
    from jobs.submit import JobSpec

    return JobSpec.build(command or [], working_dir, pip or [], key, cpus, gpus, allow_missing_paths=allow)


@app.command(context_settings={"allow_interspersed_args": False})
def submit(
    command: CommandArg = None,
    address: AddressOpt = None,
    working_dir: WorkingDirOpt = Path("."),
    pip: PipOpt = None,
    key: Annotated[str, typer.Option(help="run an otherwise identical job again (e.g. a date)")] = "",
    num_cpus: CpusOpt = None,
    num_gpus: GpusOpt = None,
    allow_missing_paths: AllowMissingOpt = False,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="follow the logs until the job ends")] = True,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="print what would be submitted and exit")
    ] = False,
) -> None:
    """Run a pipeline command on a Ray cluster (Ray Jobs API). Resubmitting the same job finds it instead.

    Example: gliner-selftrain submit --address http://head:8265 -- self-train --config job.yaml
    The token for a cluster with token authentication is read from RAY_AUTH_TOKEN.
    """
    from jobs.submit import cluster_client, follow_logs
    from jobs.submit import submit as submit_job

    spec = _spec(command, working_dir, pip, key, num_cpus, num_gpus, allow_missing_paths)
    if dry_run:
        say(
            json.dumps(
                {
                    "submission_id": spec.submission_id(),
                    "entrypoint": spec.entrypoint(),
                    "runtime_env": spec.runtime_env(),
                    "metadata": spec.metadata(),
                },
                indent=2,
            )
        )
        return
    client = cluster_client(address)
    result = submit_job(client, spec)
    if result.existing:
        say(f"job {result.submission_id} is already on the cluster ({result.status}); not submitted again")
    else:
        say(f"submitted job {result.submission_id}")
    if not wait:
        say(f"follow it with: gliner-selftrain logs --follow {result.submission_id}")
        return
    status = follow_logs(client, result.submission_id)
    say(f"job {result.submission_id}: {status}")
    if status != "SUCCEEDED":
        raise typer.Exit(1)


@app.command(context_settings={"allow_interspersed_args": False})
def schedule(
    command: CommandArg = None,
    address: AddressOpt = None,
    cron: Annotated[str | None, typer.Option(help="cron expression, e.g. '0 3 * * *' (UTC)")] = None,
    watch: Annotated[str | None, typer.Option(help="submit when files under this corpus path change")] = None,
    state: Annotated[Path, typer.Option(help="SQLite file keeping the schedule's state")] = Path(
        "schedule-state.db"
    ),
    interval: Annotated[float, typer.Option(min=0.1, help="seconds between checks")] = 30.0,
    once: Annotated[bool, typer.Option("--once", help="check once and exit (for an external cron)")] = False,
    max_polls: Annotated[int | None, typer.Option(hidden=True)] = None,
    working_dir: WorkingDirOpt = Path("."),
    pip: PipOpt = None,
    num_cpus: CpusOpt = None,
    num_gpus: GpusOpt = None,
    allow_missing_paths: AllowMissingOpt = False,
    drift_model: Annotated[
        Path | None,
        typer.Option(help="champion checkpoint folder: new data under --watch submits only when it drifts"),
    ] = None,
    drift_config: Annotated[
        Path | None,
        typer.Option(help="YAML/JSON drift settings (a pipeline config's drift: section)"),
    ] = None,
    drift_labels: Annotated[
        str | None,
        typer.Option(help="comma-separated labels (when the checkpoint has no drift reference)"),
    ] = None,
    tracking_uri: Annotated[
        str | None,
        typer.Option(help="MLflow for the drift checks (default $MLFLOW_TRACKING_URI, else next to --state)"),
    ] = None,
) -> None:
    """Retrain periodically: submit the command on a cron schedule, when new data lands, or when it drifts.

    Example: gliner-selftrain schedule --cron '0 3 * * *' --watch /data/corpus -- self-train -c job.yaml
    With --drift-model, new data submits only when the champion sees it drift (docs/operations.md).
    State (last tick, data seen, submissions, drift checks) survives restarts; runs never overlap.
    """
    from jobs.schedule import Scheduler, StateStore, check_cron, single_instance, utcnow
    from jobs.submit import ScheduledJobs, cluster_client

    if cron:
        check_cron(cron)  # before anything is created or contacted
    base = _spec(command, working_dir, pip, "", num_cpus, num_gpus, allow_missing_paths)
    drift = _drift_monitor(drift_model, drift_config, drift_labels, tracking_uri, state)
    client = cluster_client(address)

    def spec_for(tick_key: str):
        spec = _spec(command, working_dir, pip, tick_key, num_cpus, num_gpus, allow_missing_paths)
        spec.code_in_id = False
        return spec

    with single_instance(state):
        scheduler = Scheduler(
            ScheduledJobs(client, spec_for),
            StateStore(state),
            cron=cron,
            watch=watch,
            drift=drift,
            say=lambda m: say(f"[schedule {utcnow().isoformat(timespec='seconds')}] {m}"),
        )
        say(f"scheduling `{base.entrypoint()}` (cron: {cron or '-'}, watch: {watch or '-'}, state: {state})")
        scheduler.run_forever(interval, 1 if once else max_polls)


def _calibrated(gliner) -> str:
    """The checkpoint's per-label thresholds, for display."""
    thresholds = gliner.config.label_thresholds or {}
    return "calibrated (" + ", ".join(f"{k} {v:.2f}" for k, v in thresholds.items()) + ")"


def _drift_monitor(
    model: Path | None, config: Path | None, labels: str | None, tracking_uri: str | None, state: Path
):
    """The scheduler's drift check (`pipelines.ops.drift.DriftMonitor`), or None without --drift-model."""
    if model is None:
        if config or labels:
            raise UserError(
                "--drift-config and --drift-labels need --drift-model (the champion's checkpoint)"
            )
        return None
    import os

    from pipelines.ops.drift import DriftMonitor, load_drift_config

    try:
        settings = load_drift_config(config)
        names = [label.strip() for label in (labels or "").split(",") if label.strip()]
        uri = (
            tracking_uri
            or os.environ.get("MLFLOW_TRACKING_URI")
            or f"sqlite:///{state.resolve().parent}/mlflow.db"
        )
        return DriftMonitor(model, settings, {n: n for n in names} or None, tracking=(uri, "gliner-drift"))
    except (FileNotFoundError, ValueError) as error:
        raise UserError(str(error)) from None


@app.command()
def status(
    submission_id: Annotated[str, typer.Argument(help="the job's submission id")],
    address: AddressOpt = None,
) -> None:
    """Status and metadata of a submitted job."""
    from jobs.submit import cluster_client

    client = cluster_client(address)
    try:
        info = client.get_job_info(submission_id)
    except RuntimeError as error:
        raise UserError(f"no job {submission_id} on the cluster ({str(error).splitlines()[0]})") from error
    say(f"{submission_id}: {info.status.value}")
    if info.message:
        say(f"message: {info.message}")
    for k, v in sorted((info.metadata or {}).items()):
        say(f"{k}: {v}")


@app.command()
def logs(
    submission_id: Annotated[str, typer.Argument(help="the job's submission id")],
    address: AddressOpt = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="stream until the job ends")] = False,
) -> None:
    """The logs of a submitted job."""
    from jobs.submit import cluster_client, follow_logs

    client = cluster_client(address)
    try:
        if follow:
            follow_logs(client, submission_id)
        else:
            sys.stdout.write(client.get_job_logs(submission_id))
    except RuntimeError as error:
        raise UserError(f"no logs for job {submission_id} ({str(error).splitlines()[0]})") from error


# -- entry point -----------------------------------------------------------------------------------


class _RayDataCpuSnapshot(logging.Filter):
    """Drops Ray Data's "The Ray cluster currently does not have any available CPUs. The Dataset job
    will hang…" warning. `Dataset.materialize()` (every `write_parquet`) checks
    `ray.available_resources()` again right after its stage has finished, while the cluster still
    counts that stage's actor pool and last tasks as busy: on a small cluster (2 CPUs: one labeling
    actor + one write task) the snapshot reads 0 and the warning fires although nothing waits."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "does not have any available CPUs" not in record.getMessage()


def quiet_known_noise() -> None:
    logging.getLogger("ray.data.dataset").addFilter(_RayDataCpuSnapshot())


def _usage_context(argv: Sequence[str]) -> typer.Context:
    """The context of the command named in `argv` (for its usage line), else the app's."""
    group = typer.main.get_command(app)
    root = typer.Context(group, info_name="gliner-selftrain")
    name = next((arg for arg in argv if not arg.startswith("-")), None)
    command = group.get_command(root, name) if name and hasattr(group, "get_command") else None
    return typer.Context(command, info_name=name, parent=root) if command else root


def main(argv: Sequence[str] | None = None) -> int:
    """Run the app. Usage mistakes (a missing argument, an option without its value) get Click's usage
    message and exit code 2; other user mistakes one `error:` line and exit code 2."""
    quiet_known_noise()
    try:
        result = app(
            args=list(argv) if argv is not None else None, prog_name="gliner-selftrain", standalone_mode=False
        )
    except UserError as error:
        typer.echo(f"error: {error}", err=True)
        return 2
    except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as error:
        typer.echo(f"error: {error}", err=True)
        return 2
    except typer.TyperException as error:  # Click's exceptions (typer vendors Click): usage errors
        show = getattr(error, "show", None)
        if show is None:
            typer.echo(f"error: {error.format_message()}", err=True)
        else:
            if getattr(error, "ctx", False) is None:  # e.g. "--model" without a value: no usage line
                error.ctx = _usage_context(sys.argv[1:] if argv is None else list(argv))  # type: ignore[attr-defined]
            show()
        return error.exit_code
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    # without standalone mode, `typer.Exit(code)` (and Ctrl-C, 130) comes back as the return value
    return result if isinstance(result, int) else 0


from jobs.review_cmd import review_app  # noqa: E402  (registered after the app's own commands)

app.add_typer(review_app, name="review")


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
