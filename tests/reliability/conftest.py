"""Fixtures of the reliability suite: a tiny GLiNER checkpoint and a restartable `mlflow server`."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, minilm_path: str) -> str:
    """A small GLiNER checkpoint (MiniLM encoder, random 64-wide heads) on disk."""
    from gliner_core import GLiNER

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny-gliner")
    GLiNER.from_backbone(minilm_path, hidden_size=64, max_len=64).save_pretrained(path)
    return str(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    """A real `mlflow server` (SQLite store, local artifacts) that a test can stop and start again
    on the same port and store, like a tracking server that goes down and comes back."""

    def __init__(self, root: Path):
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.log = root / "server.log"

    def start(self, timeout: float = 240) -> None:  # ~5 s normally; minutes on a crowded machine
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--backend-store-uri",
                f"sqlite:///{self.root / 'mlflow.db'}",
                "--artifacts-destination",
                str(self.root / "artifacts"),
                "--workers",
                "1",
            ],
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() kills the server and its workers
        )
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.healthy():
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {self.log.read_text()[-2000:]}")
            time.sleep(0.3)
        self.stop()
        raise RuntimeError("mlflow server did not start")

    def healthy(self) -> bool:
        try:
            urllib.request.urlopen(f"{self.url}/health", timeout=2)
            return True
        except OSError:
            return False

    def stop(self) -> None:
        """Kill the server (and its worker processes) at once, as a crash would."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.process = None
        deadline = time.time() + 10
        while self.healthy() and time.time() < deadline:
            time.sleep(0.2)


@pytest.fixture(scope="session")
def _mlflow_server_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    server = MlflowServer(tmp_path_factory.mktemp("mlflow"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mlflow_server(_mlflow_server_session: MlflowServer) -> MlflowServer:
    """The session's server (tests use their own experiments), running: a test that stopped it and
    failed before starting it again does not take the next test down with it."""
    server = _mlflow_server_session
    if not server.healthy():
        if server.process is not None and server.process.poll() is None:
            server.stop()
        server.process = None
        server.start()
    return server
