"""A real Label Studio server for tests: `label-studio start` on 127.0.0.1, SQLite in a temporary data dir.

The server runs from its own virtual environment: `label-studio` pins numpy, pyarrow and pytz to versions
that would downgrade the project's (see docs/operations.md). It is found, in order, at
`$LABEL_STUDIO_BIN`, in `.venv-label-studio/` (what `make label-studio` builds), next to this
interpreter, or on PATH; tests using the `label_studio` fixture (tests/conftest.py, one server per
session) skip when there is none. The client side (`label-studio-sdk`) is in the project's environment.

API tokens: Label Studio 1.23 turns legacy tokens off by default and issues personal access tokens (a
JWT refresh token; the SDK exchanges it for short-lived access tokens). A user gets one by logging in
(a Django session) and `POST /api/token/`, which is what the Account page does; `personal_access_token`
below does the same over HTTP. An annotator joins the organization through its invite link
(`GET /api/invite` → `/user/signup/?token=…`), as a person invited by the admin would.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
ADMIN = ("admin@example.com", "admin-Passw0rd-review")
ANNOTATOR = ("annotator@example.com", "annotator-Passw0rd-review")
STARTUP_TIMEOUT = 420  # first start runs ~200 Django migrations: 60-180 s on 2 busy cores


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def label_studio_binary() -> str | None:
    candidates = [
        os.environ.get("LABEL_STUDIO_BIN"),
        str(ROOT / ".venv-label-studio" / "bin" / "label-studio"),
        str(Path(sys.executable).parent / "label-studio"),
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("label-studio")


def session_for(url: str, email: str, password: str) -> requests.Session:
    """A logged-in browser-like session (CSRF cookie + session cookie)."""
    session = requests.Session()
    session.get(f"{url}/user/login/", timeout=30).raise_for_status()
    response = session.post(
        f"{url}/user/login/",
        data={"email": email, "password": password, "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        headers={"Referer": f"{url}/user/login/"},
        allow_redirects=False,
        timeout=30,
    )
    if response.status_code != 302 or "sessionid" not in session.cookies:
        raise RuntimeError(f"login as {email} failed: HTTP {response.status_code}")
    return session


def personal_access_token(url: str, email: str, password: str) -> str:
    """A new personal access token for the user (what Account & Settings → Personal Access Token does)."""
    session = session_for(url, email, password)
    response = session.post(
        f"{url}/api/token/",
        headers={"X-CSRFToken": session.cookies["csrftoken"], "Referer": f"{url}/"},
        timeout=30,
    )
    response.raise_for_status()
    return response.json()["token"]


def sign_up_invited(url: str, admin_session: requests.Session, email: str, password: str) -> None:
    """A new member of the admin's organization, through the organization's invite link."""
    invite = admin_session.get(f"{url}/api/invite", timeout=30)
    invite.raise_for_status()
    signup_url = f"{url}{invite.json()['invite_url']}"
    person = requests.Session()
    person.get(signup_url, timeout=30).raise_for_status()
    response = person.post(
        signup_url,
        data={"email": email, "password": password, "csrfmiddlewaretoken": person.cookies["csrftoken"]},
        headers={"Referer": signup_url},
        allow_redirects=False,
        timeout=30,
    )
    if response.status_code != 302:
        raise RuntimeError(f"sign-up of {email} failed: HTTP {response.status_code}")


@dataclass
class LabelStudioServer:
    url: str  # http://127.0.0.1:PORT
    admin_token: str  # personal access tokens
    annotator_token: str
    annotator_email: str
    data_dir: Path


def _wait_healthy(url: str, process: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"label-studio exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{url}/health", timeout=5).status_code == 200:
                return
        time.sleep(2)
    raise RuntimeError(f"Label Studio at {url} not healthy after {timeout} s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def running_label_studio(data_dir: Path, binary: str) -> Iterator[LabelStudioServer]:
    """Start a fresh server in `data_dir`, make both users and their tokens; stop it on exit."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        # offline and quiet: no PyPI version check, no Sentry, no analytics
        "LATEST_VERSION_CHECK": "false",
        "SENTRY_DSN": "",
        "FRONTEND_SENTRY_DSN": "",
        "COLLECT_ANALYTICS": "false",
        "DISABLE_SIGNUP_WITHOUT_LINK": "true",  # only invited people join
    }
    command = [
        binary, "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port),
        "--data-dir", str(data_dir), "--username", ADMIN[0], "--password", ADMIN[1],
    ]  # fmt: skip
    log_path = data_dir.parent / f"{data_dir.name}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=data_dir
        )
        try:
            _wait_healthy(url, process, log_path, STARTUP_TIMEOUT)
            admin_token = personal_access_token(url, *ADMIN)
            sign_up_invited(url, session_for(url, *ADMIN), *ANNOTATOR)
            annotator_token = personal_access_token(url, *ANNOTATOR)
            yield LabelStudioServer(url, admin_token, annotator_token, ANNOTATOR[0], data_dir)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
