"""A real `mlflow server` for tests (SQLite store, local artifacts, 127.0.0.1) that a test can stop and
start again on the same port and store, like a tracking server that goes down and comes back. One runs
per session (`mlflow_server` in tests/conftest.py); tests keep to their own experiments."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
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

    def ensure_running(self) -> MlflowServer:
        """Running again if a test stopped it and failed before starting it again."""
        if not self.healthy():
            if self.process is not None and self.process.poll() is None:
                self.stop()
            self.process = None
            self.start()
        return self
