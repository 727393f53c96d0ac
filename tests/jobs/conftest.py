"""A real Ray head (`ray start --head`, dashboard + Jobs API, token authentication) for the jobs tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "test-ray-token-5d1f0c2e"  # planted: the head requires it, and it must never show up in a job


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RayHead:
    address: str  # the dashboard / Jobs API, e.g. http://127.0.0.1:8265
    token: str


def _stop(process: subprocess.Popen, temp_dir: Path) -> None:
    """SIGTERM the `ray start --block` process, then kill whatever of this head is left (its processes
    carry the head's own temp dir on their command line; other Ray instances are left alone)."""
    import psutil

    process.send_signal(signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(str(temp_dir) in part for part in proc.info["cmdline"] or []):
                proc.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    if process.poll() is None:
        process.kill()


@pytest.fixture(scope="session")
def ray_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayHead]:
    """`ray start --head` on localhost with free ports (a machine may run other Ray instances) and its
    own temp dir (so `ray.init()` elsewhere never attaches to it), token authentication on."""
    temp_dir = tmp_path_factory.mktemp("rayhead")
    dashboard = free_port()
    ports = {
        "--port": free_port(),
        "--dashboard-port": dashboard,
        "--dashboard-agent-listen-port": free_port(),
        "--dashboard-agent-grpc-port": free_port(),
        "--runtime-env-agent-port": free_port(),
        "--metrics-export-port": free_port(),
        "--ray-client-server-port": free_port(),
    }
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": TOKEN,
        "HF_HUB_OFFLINE": "1",
        # jobs run `python -m jobs …`: on a cluster node the image's python has the project; here it is
        # this interpreter (CI calls .venv/bin/python without activating the venv)
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    command = [
        str(Path(sys.executable).parent / "ray"),
        "start",
        "--head",
        "--block",
        "--num-cpus=2",
        "--dashboard-host=127.0.0.1",
        f"--temp-dir={temp_dir}",
        "--disable-usage-stats",
        *(f"{flag}={port}" for flag, port in ports.items()),
    ]
    log = (temp_dir / "head.log").open("w")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"http://127.0.0.1:{dashboard}"
    try:
        _wait_for_jobs_api(address, process, temp_dir / "head.log")
        yield RayHead(address, TOKEN)
    finally:
        _stop(process, temp_dir)
        log.close()


def _wait_for_jobs_api(address: str, process: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    from ray.job_submission import JobSubmissionClient

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"ray start --head exited:\n{log.read_text()[-3000:]}")
        try:
            JobSubmissionClient(address, headers={"Authorization": f"Bearer {TOKEN}"}).list_jobs()
            return
        except Exception:
            time.sleep(1)
    raise RuntimeError(f"Jobs API at {address} not up after {timeout} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def fresh_model(tmp_path_factory: pytest.TempPathFactory, minilm_path: str) -> str:
    """A MiniLM GLiNER with random heads, saved once (jobs only need something to load)."""
    from gliner_core import GLiNER

    path = tmp_path_factory.mktemp("model") / "gliner"
    GLiNER.from_backbone(minilm_path).save_pretrained(str(path))
    return str(path)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: str) -> str:
    """A GLiNER on the tiny test encoder, random heads: for commands whose output is not judged on
    quality (seconds instead of minutes per stage)."""
    from gliner_core import GLiNER

    path = tmp_path_factory.mktemp("tiny-model") / "gliner"
    GLiNER.from_backbone(tiny_backbone, hidden_size=32, max_len=48).save_pretrained(str(path))
    return str(path)


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m jobs ARGS` in the repository root (as a user runs it)."""
    return subprocess.run(
        [sys.executable, "-m", "jobs", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
    )


REGISTERED_LABELS = {"person": "person", "organisation": "company, agency or institution"}
REGISTERED_THRESHOLD = 0.4


@dataclass
class Registry:
    storage: str  # storage_path whose default SQLite store (mlflow.db) holds the registry
    model: str  # the registered checkpoint folder (version 1, alias `champion`)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory, fresh_model: str) -> Registry:
    """What `make run` leaves behind, in small: the default tracking store under a storage folder with
    one registered version of `fresh_model` carrying the `champion` alias. Logged in a subprocess so
    this process's MLflow tracking URI stays untouched."""
    storage = tmp_path_factory.mktemp("storage") / "runs"
    script = f"""
import mlflow
from mlflow.tracking import MlflowClient
from pipelines.registry.tracking import tracking_uri, use_experiment
from pipelines.registry.models import log_model, promote
uri = tracking_uri(None, {str(storage)!r})
use_experiment("test-registry", uri, {str(storage)!r})
with mlflow.start_run():
    version = log_model({fresh_model!r}, {REGISTERED_LABELS!r}, {REGISTERED_THRESHOLD!r}, "gliner-selftrain")
promote(MlflowClient(uri), "gliner-selftrain", version, "champion", 0.5)
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**{k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}, "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return Registry(str(storage), fresh_model)
