"""Send a pipeline command to a Ray cluster through the Ray Jobs API.

    spec = JobSpec.build(["self-train", "--config", "job.yaml"], working_dir=".", key="")
    outcome = submit(cluster_client(address), spec)     # submits, or finds the same job already there

The submission id is a hash of what the job will do — the command, the *contents* of its config
file, the project's git commit, the runtime environment and an optional `key` (the scheduler uses the
cron tick) — so submitting the same thing twice (a retry after a timeout, a restarted scheduler)
finds the first job instead of starting a second one. Credentials come from the environment:
`RAY_AUTH_TOKEN` becomes the `Authorization` header and is never put into the job's runtime
environment or metadata (the cluster's nodes get their own secrets, see infra/).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from jobs.settings import UserError, config_data, validate
from jobs.upload import EXCLUDES, check_paths, option_value, option_values
from pipelines import git_commit

# Commands that may run on a cluster (everything but the cluster commands themselves).
PIPELINE_COMMANDS = ("synth", "label", "train", "evaluate", "self-train", "predict")
FINISHED = ("SUCCEEDED", "FAILED", "STOPPED")


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class JobSpec:
    """Everything that defines one submission."""

    args: list[str]  # the pipeline command and its options, e.g. ["self-train", "--config", "job.yaml"]
    working_dir: str
    pip: list[str] = field(default_factory=list)
    key: str = ""  # makes an otherwise identical job a new one (e.g. the cron tick)
    num_cpus: float | None = None
    num_gpus: float | None = None
    config_hash: str = ""
    commit: str = "unknown"
    digest_of_files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256
    # False for scheduled runs: a tick is one job whatever code is deployed when it is (re)submitted
    code_in_id: bool = True

    @classmethod
    def build(
        cls,
        args: Sequence[str],
        working_dir: str | Path = ".",
        pip: Sequence[str] = (),
        key: str = "",
        num_cpus: float | None = None,
        num_gpus: float | None = None,
        allow_missing_paths: bool = False,
    ) -> JobSpec:
        """Check the command locally before anything is sent: a known command, a valid config file
        inside the working directory, and every path the job will read or write (see `check_paths`)."""
        args = list(args)
        if not args:
            raise UserError(
                "no command to submit; give one after `--`, e.g. `-- self-train --config job.yaml`"
            )
        if args[0] not in PIPELINE_COMMANDS:
            raise UserError(f"cannot submit {args[0]!r}; submit one of: {', '.join(PIPELINE_COMMANDS)}")
        folder = Path(working_dir).resolve()
        if not folder.is_dir():
            raise UserError(f"working directory not found: {working_dir}")
        spec = cls(args, str(folder), list(pip), key, num_cpus, num_gpus, commit=git_commit(folder))
        config = option_value(args, "--config", "-c")
        if config is not None:
            path = (folder / config).resolve()
            if not path.is_relative_to(folder):
                raise UserError(
                    f"--config {config} is outside the working directory {folder}: "
                    "the job runs there on the cluster; move the file inside or pass --working-dir"
                )
            if not path.is_file():
                raise UserError(f"config file not found: {path}")
            spec.digest_of_files[str(path.relative_to(folder))] = file_digest(path)
        # what the user set (file, --set, flags), validated as the job will validate it
        data = config_data(
            folder / config if config else None,
            option_values(args, "--set", "-s"),
            {"storage_path": option_value(args, "--storage")},
        )
        resolved = validate(data)
        spec.config_hash = resolved.fingerprint()
        problem = check_paths(args, data, resolved, folder, allow_missing_paths)
        if problem:
            raise UserError(problem)
        return spec

    def entrypoint(self) -> str:
        return " ".join(["python", "-m", "jobs", *(_quote(a) for a in self.args)])

    def runtime_env(self) -> dict[str, Any]:
        env: dict[str, Any] = {"working_dir": self.working_dir, "excludes": EXCLUDES}
        if self.pip:
            env["pip"] = list(self.pip)
        return env

    def submission_id(self) -> str:
        identity = {
            "args": self.args,
            "files": self.digest_of_files,
            "commit": self.commit if self.code_in_id else None,
            "pip": self.pip,
            "key": self.key,
            "resources": [self.num_cpus, self.num_gpus],
        }
        digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
        return f"gliner-{self.args[0]}-{digest}"

    def metadata(self) -> dict[str, str]:
        """Shown by `ray job list` and the dashboard (strings only; no secrets)."""
        return {
            "app": "gliner-selftrain",
            "command": self.args[0],
            "config_hash": self.config_hash,
            "git_commit": self.commit,
            "key": self.key,
        }


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


def auth_headers() -> dict[str, str]:
    """`Authorization: Bearer $RAY_AUTH_TOKEN` when the token is set (Ray's token authentication)."""
    token = os.environ.get("RAY_AUTH_TOKEN", "").strip()
    return {"Authorization": f"Bearer {token}"} if token else {}


def cluster_client(address: str | None):
    """A Jobs API client for the cluster's dashboard address (`http://head:8265`), or a UserError."""
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    address = address or os.environ.get("RAY_ADDRESS")
    if not address:
        raise UserError("no cluster address: pass --address http://HEAD:8265 or set RAY_ADDRESS")
    logging.getLogger("ray.dashboard").setLevel(logging.WARNING)  # not a line per file uploaded
    logging.getLogger("ray._private.runtime_env.packaging").setLevel(logging.WARNING)
    # "Directory '.git' is now ignored by default…" on every upload: our excludes name it anyway
    logging.getLogger("ray._private.runtime_env.working_dir").addFilter(
        lambda record: "is now ignored by default" not in record.getMessage()
    )
    try:
        return JobSubmissionClient(address, headers=auth_headers())
    except AuthenticationError as error:
        raise UserError(
            f"the Ray cluster at {address} refused the credentials: set RAY_AUTH_TOKEN to its token, or "
            "RAY_AUTH_MODE=token to send the one in ~/.ray/auth_token (a local `ray start` writes it) "
            f"({str(error).splitlines()[0]})"
        ) from error
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise UserError(
            f"cannot reach the Ray cluster at {address} (is the head running with its dashboard?): "
            f"{str(error).splitlines()[0] if str(error) else type(error).__name__}"
        ) from error


def job_status(client, submission_id: str) -> str | None:
    """The job's status name, or None when no job has this id."""
    try:
        return str(client.get_job_info(submission_id).status.value)
    except RuntimeError as error:
        if "404" in str(error) or "does not exist" in str(error).lower():
            return None
        raise


@dataclass
class Submission:
    submission_id: str
    status: str
    existing: bool  # True: the same job was already on the cluster and was not submitted again


def _transient(error: BaseException) -> bool:
    """A refusal worth retrying: a 5xx from the dashboard, or an agent that asks to try again."""
    text = str(error)
    return isinstance(error, (RuntimeError, ValueError)) and ("status code 5" in text or "try again" in text)


def submit(client, spec: JobSpec, attempts: int = 5, backoff: float = 2.0) -> Submission:
    """Submit once: a job with the same submission id already on the cluster is returned instead.
    Transient refusals (5xx) are retried with exponential backoff (`backoff`, 2x, 4x, … seconds):
    the deterministic id makes a retry safe."""
    submission_id = spec.submission_id()

    def attempt() -> Submission:
        status = job_status(client, submission_id)
        if status is not None:  # submitted before (by us, a retry, or a scheduler before its restart)
            return Submission(submission_id, status, existing=True)
        try:
            client.submit_job(
                entrypoint=spec.entrypoint(),
                submission_id=submission_id,
                runtime_env=spec.runtime_env(),
                metadata=spec.metadata(),
                entrypoint_num_cpus=spec.num_cpus,
                entrypoint_num_gpus=spec.num_gpus,
            )
        except (RuntimeError, ValueError) as error:
            if "already exists" not in str(error):
                raise
            # a concurrent submitter won the race: the same job
            return Submission(submission_id, job_status(client, submission_id) or "PENDING", existing=True)
        return Submission(submission_id, job_status(client, submission_id) or "PENDING", existing=False)

    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=backoff, exp_base=2),
        retry=retry_if_exception(_transient),
        reraise=True,
    )
    try:
        return retrying(attempt)
    except (RuntimeError, ValueError) as error:
        raise UserError(f"the cluster refused job {submission_id}: {str(error).splitlines()[0]}") from error


class ScheduledJobs:
    """The cluster as `jobs.schedule.Scheduler` sees it: one job spec per schedule key."""

    def __init__(self, client, spec_for: Callable[[str], JobSpec]):
        self.client, self.spec_for = client, spec_for
        self._last: tuple[str, JobSpec] | None = None

    def spec(self, key: str) -> JobSpec:
        """The spec for `key`, built once per key in a row: the id written down before submitting is the
        id submitted (and the config is read and hashed once)."""
        if self._last is None or self._last[0] != key:
            self._last = (key, self.spec_for(key))
        return self._last[1]

    def submission_id(self, key: str) -> str:
        return self.spec(key).submission_id()

    def submit(self, key: str) -> tuple[str, bool]:
        result = submit(self.client, self.spec(key))
        return result.submission_id, result.existing

    def status(self, submission_id: str) -> str | None:
        return job_status(self.client, submission_id)


def follow_logs(client, submission_id: str, write: Callable[[str], Any] | None = None) -> str:
    """Stream the job's logs until it ends (to `write`, by default this process's stdout as it is
    when called); returns its final status."""
    write = write or (lambda text: sys.stdout.write(text))

    async def tail() -> None:
        async for lines in client.tail_job_logs(submission_id):
            write(lines)

    asyncio.run(tail())
    return wait(client, submission_id, timeout=60.0)


def wait(client, submission_id: str, timeout: float, poll: float = 1.0) -> str:
    """Poll until the job has finished (or `timeout` seconds); returns the last status seen."""
    deadline = time.monotonic() + timeout
    status = job_status(client, submission_id) or "UNKNOWN"
    while status not in FINISHED and time.monotonic() < deadline:
        time.sleep(poll)
        status = job_status(client, submission_id) or "UNKNOWN"
    return status
