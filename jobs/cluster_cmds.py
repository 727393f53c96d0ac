"""The cluster commands: `submit` (a pipeline command as a Ray job), `schedule` (submit on a cron
schedule, on new data, or on drift), `status` and `logs` of a submitted job.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from jobs.options import say
from jobs.settings import UserError

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
DriftConfigOpt = Annotated[
    Path | None,
    typer.Option(help="YAML/JSON drift settings (a pipeline config's drift: section)"),
]
DriftLabelsOpt = Annotated[
    str | None,
    typer.Option(help="comma-separated labels (when the checkpoint has no drift reference)"),
]
TrackingUriOpt = Annotated[
    str | None,
    typer.Option(help="MLflow for the drift checks (default $MLFLOW_TRACKING_URI, else next to --state)"),
]


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
    drift_config: DriftConfigOpt = None,
    drift_labels: DriftLabelsOpt = None,
    tracking_uri: TrackingUriOpt = None,
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


def _drift_monitor(
    model: Path | None, config: Path | None, labels: str | None, tracking_uri: str | None, state: Path
):
    """The scheduler's drift check (`pipelines.DriftMonitor`), or None without --drift-model."""
    if model is None:
        if config or labels:
            raise UserError(
                "--drift-config and --drift-labels need --drift-model (the champion's checkpoint)"
            )
        return None
    import os

    from pipelines import DriftMonitor, load_drift_job

    try:
        job = load_drift_job(config) if config else None
        names = [label.strip() for label in (labels or "").split(",") if label.strip()]
        uri = (
            tracking_uri
            or os.environ.get("MLFLOW_TRACKING_URI")
            or f"sqlite:///{state.resolve().parent}/mlflow.db"
        )
        experiment = job.tracking.drift_experiment if job else "gliner-drift"
        return DriftMonitor(model, job, {n: n for n in names} or None, tracking=(uri, experiment))
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
