"""Periodic retraining: submit a Ray job on a cron expression, when new data lands, or when it drifts.

    scheduler = Scheduler(jobs, StateStore("state.db"), cron="0 3 * * *", watch="corpus/")
    scheduler.poll()          # one decision: submit, defer, or nothing
    scheduler.run_forever()   # poll every N seconds until stopped

With `drift=check` (e.g. `pipelines.ops.drift.DriftMonitor`), new data in `watch` no longer submits by
itself: the files added or rewritten since the last batch are handed to `check(files)`, which runs the
champion on a sample and compares it with the champion's reference; only a drifted batch submits. Every
check (figures, decision, reason) is kept in the state's `drift_checks` table, and a batch is checked
once: a drifted batch that waits for a running job is not checked again.

Rules that make a restart safe:
- The state (last cron tick handled, the corpus signature last submitted for, every submission) lives in
  a SQLite file, written right after each submission.
- A tick is submitted with `key = "cron:<tick time>"`, so its submission id is deterministic; the
  submission about to be made (id, reason) is written down first (`pending`). If the process dies
  between that and recording, the next poll (after a restart) looks for that id on the cluster: found,
  it is recorded; not there, the intent is dropped and what is due is decided afresh. No job is left
  unrecorded and none goes twice, even when later ticks passed while the scheduler was down. A tick
  that passed while it was down is submitted at the next poll (no miss; only the latest missed tick,
  not a backlog).
- SIGTERM / SIGINT stop the scheduler after the poll in progress (a second one stops it at once), so
  a stop never lands between submitting and recording.
- Overlap: while the last submitted job is still pending or running, nothing new is submitted; the due
  tick / new data stays due and goes at the first poll after the job has finished.
- One scheduler per state file (a lock file next to it).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol

from croniter import croniter
from filelock import FileLock, Timeout

from jobs.settings import UserError

ACTIVE = ("PENDING", "RUNNING")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def check_cron(expression: str) -> str:
    """The expression when croniter accepts it (5 fields, or 6 with seconds last), else a UserError."""
    if not croniter.is_valid(expression):
        raise UserError(f"not a valid cron expression: {expression!r} (e.g. '0 3 * * *' for 03:00 daily)")
    return expression


def latest_tick(expression: str, now: datetime) -> datetime:
    """The most recent time ≤ now the expression fires."""
    return croniter(expression, now + timedelta(microseconds=1)).get_prev(datetime)


def corpus_files(path: str | Path) -> dict[str, list[int]]:
    """Relative path -> [size, modification time] of every visible file under `path` (or of the file)."""
    root = Path(path)
    if not root.exists():
        raise UserError(f"watched corpus not found: {path}")
    base = root.parent if root.is_file() else root
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    entries: dict[str, list[int]] = {}
    for file in files:
        relative = file.relative_to(base)
        if any(part.startswith(".") for part in relative.parts):
            continue  # hidden files: partial uploads, lock files
        stat = file.stat()
        entries[str(relative)] = [stat.st_size, stat.st_mtime_ns]
    return entries


def signature_of(files: dict[str, list[int]]) -> str:
    entries = [[name, *entry] for name, entry in files.items()]
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()[:16]


def corpus_signature(path: str | Path) -> str:
    """A hash of every file's relative path, size and modification time under `path` (or of the file):
    it changes when a file is added, removed or rewritten."""
    return signature_of(corpus_files(path))


def changed_files(path: str | Path, files: dict[str, list[int]], before: dict[str, list[int]]) -> list[Path]:
    """The files of `files` that are new or rewritten since `before` (absolute paths)."""
    root = Path(path)
    base = root.parent if root.is_file() else root
    return [base / name for name, entry in files.items() if before.get(name) != entry]


class StateStore:
    """The scheduler's durable state: a small SQLite file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.execute("CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            db.execute(
                "CREATE TABLE IF NOT EXISTS submissions (submission_id TEXT PRIMARY KEY,"
                " reason TEXT NOT NULL, submitted_at TEXT NOT NULL, existing INTEGER NOT NULL)"
            )
            # added with the drift trigger; state files from before simply gain the table
            db.execute(
                "CREATE TABLE IF NOT EXISTS drift_checks (signature TEXT PRIMARY KEY,"
                " checked_at TEXT NOT NULL, files INTEGER NOT NULL, drifted INTEGER NOT NULL,"
                " reason TEXT NOT NULL, figures TEXT NOT NULL)"
            )

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30)
        try:
            with db:  # one transaction: committed on success, rolled back on error
                yield db
        finally:
            db.close()

    def get(self, key: str) -> str | None:
        with self._db() as db:
            row = db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def record(self, submission_id: str, reason: str, existing: bool, updates: dict[str, str]) -> None:
        """The submission and the state it settles, in one transaction."""
        with self._db() as db:
            db.execute(
                "INSERT OR IGNORE INTO submissions VALUES (?, ?, ?, ?)",
                (submission_id, reason, utcnow().isoformat(), int(existing)),
            )
            for key, value in {**updates, "last_submission": submission_id}.items():
                db.execute("INSERT OR REPLACE INTO state VALUES (?, ?)", (key, value))
            db.execute("DELETE FROM state WHERE key = 'pending'")  # the intent is settled

    def set(self, key: str, value: str) -> None:
        with self._db() as db:
            db.execute("INSERT OR REPLACE INTO state VALUES (?, ?)", (key, value))

    def update(self, updates: dict[str, str]) -> None:
        with self._db() as db:
            for key, value in updates.items():
                db.execute("INSERT OR REPLACE INTO state VALUES (?, ?)", (key, value))

    def forget(self, key: str) -> None:
        with self._db() as db:
            db.execute("DELETE FROM state WHERE key = ?", (key,))

    def record_drift(self, signature: str, files: int, drifted: bool, reason: str, figures: dict) -> None:
        with self._db() as db:
            db.execute(
                "INSERT OR REPLACE INTO drift_checks VALUES (?, ?, ?, ?, ?, ?)",
                (signature, utcnow().isoformat(), files, int(drifted), reason, json.dumps(figures)),
            )

    def drift_check(self, signature: str) -> dict[str, object] | None:
        checks = [c for c in self.drift_checks() if c["signature"] == signature]
        return checks[0] if checks else None

    def drift_checks(self) -> list[dict[str, object]]:
        with self._db() as db:
            rows = db.execute("SELECT * FROM drift_checks ORDER BY checked_at").fetchall()
        names = ("signature", "checked_at", "files", "drifted", "reason", "figures")
        return [
            {**dict(zip(names, r, strict=True)), "drifted": bool(r[3]), "figures": json.loads(r[5])}
            for r in rows
        ]

    def submissions(self) -> list[dict[str, object]]:
        with self._db() as db:
            rows = db.execute("SELECT * FROM submissions ORDER BY submitted_at").fetchall()
        return [
            dict(zip(("submission_id", "reason", "submitted_at", "existing"), r, strict=True)) for r in rows
        ]


@dataclass
class Decision:
    action: str  # "submitted", "found" (same job already on the cluster), "deferred", "idle"
    reason: str = ""
    submission_id: str | None = None


class DriftResult(Protocol):
    drifted: bool
    reason: str
    figures: dict[str, float]


class Jobs(Protocol):
    """The cluster as the scheduler sees it (`jobs.submit.ScheduledJobs` wraps Ray Jobs; tests fake it)."""

    def submission_id(self, key: str) -> str:
        """The deterministic id the job for `key` gets."""

    def submit(self, key: str) -> tuple[str, bool]:
        """Submit the job for `key`: (submission id, whether it was already on the cluster)."""

    def status(self, submission_id: str) -> str | None:
        """The job's status name, or None when the cluster has no such job."""


# drift_fn(files added or rewritten since the last batch) -> a result with drifted, reason, figures
DriftFn = Callable[[list[Path]], DriftResult]


class Scheduler:
    def __init__(
        self,
        jobs: Jobs,
        state: StateStore,
        cron: str | None = None,
        watch: str | None = None,
        clock: Callable[[], datetime] = utcnow,
        say: Callable[[str], None] = print,
        drift: DriftFn | None = None,
    ):
        if not cron and not watch:
            raise UserError("nothing to schedule on: give --cron and/or --watch")
        if drift is not None and not watch:
            raise UserError("the drift trigger checks new data: give --watch with the folder it lands in")
        self.jobs, self.state = jobs, state
        self.cron = check_cron(cron) if cron else None
        self.watch = watch
        self.drift = drift
        self.clock, self.say = clock, say
        if self.cron and state.get("cron_anchor") is None:
            # first start ever: ticks before now are not a backlog to replay
            state.set("cron_anchor", latest_tick(self.cron, clock()).isoformat())
        if self.watch and state.get("corpus_signature") is None:
            state.set("corpus_signature", "")  # the data present at first start counts as new

    def due(self) -> tuple[str, str, dict[str, str]] | None:
        """(key, reason, state updates) of the work due now, or None."""
        if self.cron:
            tick = latest_tick(self.cron, self.clock())
            anchor = datetime.fromisoformat(self.state.get("cron_anchor") or tick.isoformat())
            if tick > anchor:
                return (
                    f"cron:{tick.isoformat()}",
                    f"cron tick {tick.isoformat()}",
                    {"cron_anchor": tick.isoformat()},
                )
        if self.watch:
            files = corpus_files(self.watch)
            signature = signature_of(files)
            if signature != self.state.get("corpus_signature"):
                updates = {"corpus_signature": signature, "corpus_files": json.dumps(files)}
                if self.drift is None:
                    return f"data:{signature}", f"new data in {self.watch}", updates
                return self.drift_due(signature, files, updates)
        return None

    def drift_due(
        self, signature: str, files: dict[str, list[int]], updates: dict[str, str]
    ) -> tuple[str, str, dict[str, str]] | None:
        """Check the new batch once (the result is kept by corpus signature); a drifted batch is due,
        any other is consumed without a submission."""
        assert self.drift is not None and self.watch is not None
        check = self.state.drift_check(signature)
        if check is None:
            before = json.loads(self.state.get("corpus_files") or "{}")
            batch = changed_files(self.watch, files, before)
            try:
                result = self.drift(batch)
            except ValueError as error:  # a bad reference or config: reported each poll, nothing recorded
                raise UserError(f"drift check of {len(batch)} new file(s) failed: {error}") from error
            self.state.record_drift(
                signature, len(batch), result.drifted, result.reason, dict(result.figures)
            )
            check = {"drifted": result.drifted, "reason": result.reason}
            self.say(f"new data in {self.watch} ({len(batch)} file(s)): {result.reason}")
        if not check["drifted"]:
            self.state.update(updates)
            return None
        return f"drift:{signature}", f"drift in new data in {self.watch}: {check['reason']}", updates

    def poll(self) -> Decision:
        pending = self.state.get("pending")
        if pending is not None:  # a submission cut off before it was recorded (process killed)
            intent = json.loads(pending)
            if self.jobs.status(intent["submission_id"]) is not None:  # it reached the cluster
                self.state.record(intent["submission_id"], intent["reason"], True, intent["updates"])
                self.say(f"{intent['reason']}: found {intent['submission_id']} (submitted before a stop)")
                return Decision("found", intent["reason"], intent["submission_id"])
            self.state.forget("pending")  # it never did: decide afresh below
        work = self.due()
        if work is None:
            return Decision("idle")
        key, reason, updates = work
        last = self.state.get("last_submission")
        if last is not None:
            status = self.jobs.status(last)
            if status in ACTIVE:
                self.say(f"{reason}: deferred, {last} is still {status}")
                return Decision("deferred", reason, last)
        intent = {"submission_id": self.jobs.submission_id(key), "reason": reason, "updates": updates}
        self.state.set("pending", json.dumps(intent))  # written before submitting
        submission_id, existing = self.jobs.submit(key)
        self.state.record(submission_id, reason, existing, updates)
        action = "found" if existing else "submitted"
        self.say(f"{reason}: {action} {submission_id}")
        return Decision(action, reason, submission_id)

    def run_forever(self, interval: float, max_polls: int | None = None) -> None:
        """Poll every `interval` seconds; a failed poll (cluster unreachable for a while) is reported
        and retried at the next one: its work stays due, since the state only moves after a submission.
        SIGTERM / SIGINT end the loop after the poll in progress; a second signal acts at once."""
        stop = threading.Event()
        received: list[str] = []
        previous: dict[signal.Signals, Any] = {}

        def request_stop(signum: int, frame: object) -> None:
            name = signal.Signals(signum)
            received.append(name.name)
            stop.set()
            signal.signal(name, previous[name])  # a second signal is not deferred

        if threading.current_thread() is threading.main_thread():
            for stop_signal in (signal.SIGTERM, signal.SIGINT):
                previous[stop_signal] = signal.getsignal(stop_signal)
                signal.signal(stop_signal, request_stop)
        try:
            polls = 0
            while not stop.is_set() and (max_polls is None or polls < max_polls):
                try:
                    self.poll()
                except (ConnectionError, RuntimeError, UserError, OSError) as error:
                    first = str(error).splitlines()[0] if str(error) else repr(error)
                    self.say(f"poll failed, retrying in {interval:g} s: {first}")
                polls += 1
                if max_polls is None or polls < max_polls:
                    stop.wait(interval)
        finally:
            for stop_signal, handler in previous.items():
                signal.signal(stop_signal, handler)
        if received:
            self.say(f"stopped by {received[0]}")


@contextmanager
def single_instance(state_path: str | Path) -> Iterator[None]:
    """Hold `<state>.lock` for the life of the scheduler; a second scheduler on the same state fails."""
    lock = FileLock(f"{os.fspath(state_path)}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout as error:
        raise UserError(f"another scheduler is running on {state_path} (lock {lock.lock_file})") from error
    try:
        yield
    finally:
        lock.release()
