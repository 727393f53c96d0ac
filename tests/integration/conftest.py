"""Servers for the integration suite, started once per session, all on 127.0.0.1:

- `s3`: an S3-compatible server (moto's, a separate process) with the buckets the tests use;
- `postgres`: a local PostgreSQL (pgserver), databases `mlflow` and `mlflow_auth`;
- `mlflow_deployed`: `mlflow server` as `infra/mlflow` deploys it: PostgreSQL store, artifacts in S3
  served through the server, `--app-name basic-auth`, a jobs user;
- `ray_cluster`: two Ray nodes started with `ray start` (a head and a worker, 3 CPUs each, their own
  temp dirs, `--node-ip-address=127.0.0.1`), the nodes' environment holding what a cluster's nodes
  get from their image and secrets: the project on PYTHONPATH, S3 endpoint and keys, MLflow user.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
S3_KEYS = {"AWS_ACCESS_KEY_ID": "gliner-test-key", "AWS_SECRET_ACCESS_KEY": "gliner-test-secret"}
BUCKETS = ("gliner-runs", "mlflow")
MLFLOW_ADMIN = ("admin", "admin-password-for-tests-only")
MLFLOW_JOBS = ("gliner-jobs", "jobs-password-for-tests-only")


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A free port not handed out before in this session: the kernel may offer a port again once
    its socket is closed, and a Ray node refuses to start when two of its components share one."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def wait_until(check, what: str, process: subprocess.Popen | None, log: Path | None, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            tail = log.read_text()[-3000:] if log else ""
            raise RuntimeError(f"{what} exited:\n{tail}")
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(1)
    tail = log.read_text()[-3000:] if log else ""
    raise RuntimeError(f"{what} not up after {timeout} s:\n{tail}")


def stop(process: subprocess.Popen, marker: str | None = None) -> None:
    """SIGTERM, then kill; with `marker`, also every process whose command line holds it (a Ray node's
    own temp dir: other Ray instances on the machine are left alone)."""
    process.send_signal(signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)
    if marker:
        import psutil

        for proc in psutil.process_iter(["cmdline"]):
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                if any(marker in part for part in proc.info["cmdline"] or []):
                    proc.kill()
    if process.poll() is None:
        process.kill()


@dataclass
class S3:
    endpoint: str
    env: dict[str, str]  # what a client needs: endpoint, keys, region

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1", **_boto_keys())

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Object keys under `prefix`, without pyarrow's empty "folder/" marker objects."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", []) if not o["Key"].endswith("/")]

    def put(self, uri: str, data: bytes) -> None:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        self.client().put_object(Bucket=bucket, Key=key, Body=data)

    def upload_folder(self, folder: Path, uri: str) -> str:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                self.put(f"{uri.rstrip('/')}/{path.relative_to(folder)}", path.read_bytes())
        return uri


def _boto_keys() -> dict[str, str]:
    return {
        "aws_access_key_id": S3_KEYS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": S3_KEYS["AWS_SECRET_ACCESS_KEY"],
    }


@pytest.fixture(scope="session")
def s3(tmp_path_factory) -> Iterator[S3]:
    """moto's S3 server as its own process (`moto_server`), the buckets created."""
    folder = tmp_path_factory.mktemp("s3")
    port = free_port()
    log = folder / "moto.log"
    process = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{port}"
    wait_until(lambda: urllib.request.urlopen(endpoint, timeout=2), "moto_server", process, log, 120)
    env = {**S3_KEYS, "AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": "us-east-1"}
    server = S3(endpoint, env)
    for bucket in BUCKETS:
        server.client().create_bucket(Bucket=bucket)
    try:
        yield server
    finally:
        stop(process)


@pytest.fixture
def s3_env(s3, monkeypatch) -> S3:
    """This process talks to the S3 server (pyarrow and boto3 read the AWS_* variables)."""
    for key, value in s3.env.items():
        monkeypatch.setenv(key, value)
    return s3


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """A local PostgreSQL (pgserver); yields a SQLAlchemy URI template with `{db}` for the database.

    Its data dir is not under pytest's temp root: running as root, pgserver runs PostgreSQL as its
    own user, and any pytest session that starts meanwhile resets that root to mode 0700, which
    locks the server out of its files (it stops with "Permission denied")."""
    import pgserver

    folder = tempfile.mkdtemp(prefix="gliner-pg-")
    server = pgserver.get_server(folder, cleanup_mode="stop")
    try:
        for database in ("mlflow", "mlflow_auth"):
            server.psql(f"CREATE DATABASE {database};")
        yield server.get_uri("{db}").replace("postgresql://", "postgresql+psycopg2://", 1)
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class MlflowServer:
    url: str
    jobs_env: dict[str, str]  # the jobs' user, as a client sets it


@pytest.fixture(scope="session")
def mlflow_deployed(tmp_path_factory, s3, postgres) -> Iterator[MlflowServer]:
    """`mlflow server` with PostgreSQL, S3 artifacts and basic-auth (as in infra/mlflow), a jobs user."""
    folder = tmp_path_factory.mktemp("mlflow-deployed")
    auth = folder / "basic_auth.ini"
    infra = (ROOT / "infra" / "mlflow" / "basic_auth.ini").read_text()
    # the user store in PostgreSQL too (infra keeps it in SQLite on a volume: either works)
    auth.write_text(
        infra.replace("sqlite:////var/lib/mlflow-auth/basic_auth.db", postgres.format(db="mlflow_auth"))
    )
    port = free_port()
    env = {
        **os.environ,
        **s3.env,
        "MLFLOW_S3_ENDPOINT_URL": s3.endpoint,
        "MLFLOW_AUTH_CONFIG_PATH": str(auth),
        "MLFLOW_AUTH_ADMIN_PASSWORD": MLFLOW_ADMIN[1],
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "flask-secret-for-tests-only",
    }
    log = folder / "server.log"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            postgres.format(db="mlflow"),
            "--serve-artifacts",
            "--artifacts-destination",
            "s3://mlflow/artifacts",
            "--app-name",
            "basic-auth",
            "--workers",
            "1",
        ],  # fmt: skip
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        cwd=folder,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        health = f"{url}/health"
        wait_until(lambda: urllib.request.urlopen(health, timeout=5), "mlflow server", process, log, 300)
        _create_user(url, *MLFLOW_JOBS)
        yield MlflowServer(
            url,
            {"MLFLOW_TRACKING_USERNAME": MLFLOW_JOBS[0], "MLFLOW_TRACKING_PASSWORD": MLFLOW_JOBS[1]},
        )
    finally:
        stop(process)


def _create_user(url: str, username: str, password: str) -> None:
    """The admin creates the jobs' user (what `infra/README.md` asks an operator to do once)."""
    credentials = base64.b64encode(f"{MLFLOW_ADMIN[0]}:{MLFLOW_ADMIN[1]}".encode()).decode()
    request = urllib.request.Request(
        f"{url}/api/2.0/mlflow/users/create",
        data=json.dumps({"username": username, "password": password}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Basic {credentials}"},
        method="POST",
    )
    urllib.request.urlopen(request, timeout=60).read()


@dataclass
class RayCluster:
    address: str  # the head's dashboard / Jobs API, e.g. http://127.0.0.1:8265
    gcs: str  # 127.0.0.1:port, for `ray start --address`
    node_env: dict[str, str]


def _ray_ports(*flags: str) -> list[str]:
    return [f"{flag}={free_port()}" for flag in flags]


NODE_PORTS = (
    "--node-manager-port",
    "--object-manager-port",
    "--dashboard-agent-listen-port",
    "--dashboard-agent-grpc-port",
    "--runtime-env-agent-port",
    "--metrics-export-port",
)


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory, s3, mlflow_deployed) -> Iterator[RayCluster]:
    """A head and a worker node (`ray start`), 3 CPUs each, each with its own temp dir."""
    node_env = {
        **os.environ,
        **s3.env,
        **mlflow_deployed.jobs_env,
        "RAY_AUTH_MODE": "disabled",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONPATH": str(ROOT),  # the project, as a cluster image has it installed
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        # a fixed-size actor pool starts its work once all its actors are up (Ray Data's own knob): 24
        # documents are labeled in a second, before the worker node's actor has loaded its model
        "RAY_DATA_DEFAULT_WAIT_FOR_MIN_ACTORS_S": "300",
    }
    for key in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI"):
        node_env.pop(key, None)
    gcs_port, dashboard = free_port(), free_port()
    started: list[tuple[subprocess.Popen, str]] = []
    try:
        head_dir = tmp_path_factory.mktemp("ray-head")
        head = _start_node(
            [
                "--head",
                f"--port={gcs_port}",
                f"--dashboard-port={dashboard}",
                "--dashboard-host=127.0.0.1",
                *_ray_ports("--ray-client-server-port"),
            ],  # fmt: skip
            head_dir,
            node_env,
        )
        started.append((head, str(head_dir)))
        address = f"http://127.0.0.1:{dashboard}"
        wait_until(lambda: _nodes_alive(address) >= 1, "ray head", head, head_dir / "node.log", 180)
        worker_dir = tmp_path_factory.mktemp("ray-worker")
        worker = _start_node([f"--address=127.0.0.1:{gcs_port}"], worker_dir, node_env)
        started.append((worker, str(worker_dir)))
        wait_until(
            lambda: _nodes_alive(address) == 2, "ray worker node", worker, worker_dir / "node.log", 180
        )
        yield RayCluster(address, f"127.0.0.1:{gcs_port}", node_env)
    finally:
        for process, marker in reversed(started):
            stop(process, marker)


def _start_node(args: list[str], temp_dir: Path, env: dict[str, str]) -> subprocess.Popen:
    command = [
        str(BIN / "ray"), "start", "--block", "--num-cpus=3", "--node-ip-address=127.0.0.1",
        f"--temp-dir={temp_dir}", "--disable-usage-stats", *_ray_ports(*NODE_PORTS), *args,
    ]  # fmt: skip
    log = (temp_dir / "node.log").open("w")
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _nodes_alive(address: str) -> int:
    from ray.util.state import list_nodes

    return sum(1 for node in list_nodes(address=address) if node.state == "ALIVE")
