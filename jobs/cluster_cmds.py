"""The cluster commands: `submit` (a pipeline command as a Ray job), `schedule` (submit on a cron
schedule, on new data, or on drift), `status` and `logs` of a submitted job.

`schedule`'s drift check reads the job config like the pipeline commands (`--config job.yaml`, `--set`):
its `drift:` section, `seed`, `data.text_field`, `weak_label.batch_size`, `data.labels`,
`tracking.drift_experiment`, and the MLflow it logs to by the pipeline's one rule
(`tracking.tracking_uri`, else $MLFLOW_TRACKING_URI, else a SQLite file beside `storage_path`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from jobs.options import say
from jobs.settings import UserError, apply_override, config_data, validate

if TYPE_CHECKING:
    from pipelines import DriftMonitor, PipelineConfig

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
SubmissionArg = Annotated[str, typer.Argument(help="the job's submission id")]
# schedule's drift check
DriftModelOpt = Annotated[
    Path | None,
    typer.Option(help="champion checkpoint folder: new data under --watch submits only when it drifts"),
]
DriftJobOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="YAML/JSON job config for the drift check: its drift: section, seed, data.text_field, "
        "data.labels, weak_label.batch_size, tracking (default: the local profile)",
    ),
]
DriftConfigOpt = Annotated[
    Path | None,
    typer.Option(help="deprecated: give the job config with --config (a file of drift settings alone)"),
]
DriftLabelsOpt = Annotated[
    str | None,
    typer.Option(
        help="comma-separated labels, when the checkpoint has no drift reference (default: the job's "
        "data.labels, if --config or --set names them)"
    ),
]
DriftSetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="override a key of it, e.g. -s drift.sample_size=500 (repeatable)"),
]
TrackingUriOpt = Annotated[
    str | None,
    typer.Option(
        help="MLflow for the drift checks (tracking.tracking_uri; default $MLFLOW_TRACKING_URI, else "
        "beside storage_path)"
    ),
]

DRIFT_CONFIG_DEPRECATED = (
    "warning: --drift-config is deprecated and will be removed in the next release: give the job config "
    "with --config (its drift: section; seed, data.text_field, weak_label.batch_size at their own places)"
)


def _spec(command: list[str] | None, working_dir: Path, pip: list[str] | None, key: str, cpus, gpus, allow):
    from jobs.submit import JobSpec

    return JobSpec.build(command or [], working_dir, pip or [], key, cpus, gpus, allow_missing_paths=allow)


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
        shown = {
            "submission_id": spec.submission_id(),
            "entrypoint": spec.entrypoint(),
            "runtime_env": spec.runtime_env(),
            "metadata": spec.metadata(),
        }
        say(json.dumps(shown, indent=2))
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
    drift_model: DriftModelOpt = None,
    config: DriftJobOpt = None,
    overrides: DriftSetOpt = None,
    drift_config: DriftConfigOpt = None,
    drift_labels: DriftLabelsOpt = None,
    tracking_uri: TrackingUriOpt = None,
) -> None:
    """Retrain periodically: submit the command on a cron schedule, when new data lands, or when it drifts.

    Example: gliner-selftrain schedule --cron '0 3 * * *' --watch /data/corpus -- self-train -c job.yaml
    With --drift-model, new data submits only when the champion sees it drift, judged with the settings
    of the job config given by --config (docs/operations.md).
    State (last tick, data seen, submissions, drift checks) survives restarts; runs never overlap.
    """
    from jobs.schedule import Scheduler, StateStore, check_cron, single_instance, utcnow
    from jobs.submit import ScheduledJobs, cluster_client

    if cron:
        check_cron(cron)  # before anything is created or contacted
    base = _spec(command, working_dir, pip, "", num_cpus, num_gpus, allow_missing_paths)
    drift = drift_monitor(drift_model, config, overrides or [], drift_config, drift_labels, tracking_uri)
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


def drift_job(
    config: Path | None,
    overrides: Sequence[str] = (),
    drift_config: Path | None = None,
    tracking_uri: str | None = None,
) -> tuple[PipelineConfig, dict[str, str]]:
    """(the job config of the drift check, its labels -> prompts when the user named them, else {}):
    `config` then `overrides` then `--tracking-uri`, as for a pipeline command. The deprecated
    `drift_config` file (a job config, or drift settings alone: `pipelines.load_drift_job`) stands in for
    `config`, with a deprecation message on stderr."""
    fields = {"tracking.tracking_uri": tracking_uri}
    if drift_config is None:
        data = config_data(config, overrides, fields)
        job = validate(data)
        named = isinstance(data.get("data"), dict) and "labels" in data["data"]
        return job, job.prompts() if named else {}
    typer.echo(DRIFT_CONFIG_DEPRECATED, err=True)
    if config is not None:
        raise UserError("give the job config with --config or with the deprecated --drift-config, not both")
    from pipelines import load_drift_job

    try:
        data = load_drift_job(drift_config).model_dump(mode="json")
    except (FileNotFoundError, ValueError) as error:
        raise UserError(str(error)) from None
    for assignment in overrides:
        apply_override(data, assignment)
    if tracking_uri:
        data["tracking"]["tracking_uri"] = tracking_uri
    return validate(data), {}


def drift_monitor(
    model: Path | None,
    config: Path | None = None,
    overrides: Sequence[str] = (),
    drift_config: Path | None = None,
    labels: str | None = None,
    tracking_uri: str | None = None,
) -> DriftMonitor | None:
    """The scheduler's drift check (`pipelines.DriftMonitor`) from the job config (`drift_job`), or None
    without a drift model. It logs to `tracking.drift_experiment` at the job's tracking URI."""
    if model is None:
        given = [
            name
            for name, value in (
                ("--config", config),
                ("--set", overrides),
                ("--drift-config", drift_config),
                ("--drift-labels", labels),
            )
            if value
        ]
        if given:
            listed = " and ".join([", ".join(given[:-1]), given[-1]] if len(given) > 1 else given)
            hint = (
                "; the job's own config goes after `--`, e.g. -- self-train --config job.yaml"
                if config or overrides
                else ""
            )
            verb = "needs" if len(given) == 1 else "need"
            raise UserError(f"{listed} {verb} --drift-model (the champion's checkpoint){hint}")
        return None
    from pipelines import DriftMonitor
    from pipelines import tracking_uri as one_tracking_uri

    job, known = drift_job(config, overrides, drift_config, tracking_uri)
    names = [label.strip() for label in (labels or "").split(",") if label.strip()]
    prompts = {name: known.get(name, name) for name in names} if names else known
    try:
        monitor = DriftMonitor(model, job, prompts or None)  # checks the model before any folder is made
        monitor.tracking = (
            one_tracking_uri(job.tracking.tracking_uri, job.storage_path),
            job.tracking.drift_experiment,
        )
        return monitor
    except (FileNotFoundError, ValueError) as error:
        raise UserError(str(error)) from None


def status(submission_id: SubmissionArg, address: AddressOpt = None) -> None:
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


def logs(
    submission_id: SubmissionArg,
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
