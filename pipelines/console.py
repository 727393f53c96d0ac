"""What a person sees while a job runs: one line per stage, a progress bar for long stages, a summary.

    with Console.capture(log_path, verbose=False) as console:
        with console.stage("weak-label") as stage:
            report = ...
            stage.done(report.summary())
        console.table(header, rows)

While a `Console` captures, everything written to the process's stdout and stderr — Ray's worker
lines forwarded to the driver, Ray Data's progress bars, Ray Train's report dicts, library warnings,
even C-level writes — goes to the job's log file only (`--verbose` also shows it). The terminal
gets the console's own lines. Workers drive the progress bar by logging `progress_line(...)`: the
line reaches the driver like any worker output, and the console turns it into a bar update instead
of printing it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import IO, Any

PROGRESS_MARK = "@@gliner-progress@@"
CLOSING_MARK = "@@gliner-console-closed@@"
_PROGRESS = re.compile(re.escape(PROGRESS_MARK) + r" (\{.*\})")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

log = logging.getLogger(__name__)


def progress_line(stage: str, done: int | None = None, total: int | None = None, **info: float | str) -> str:
    """The line that moves the driver's progress bar for `stage` to `done` of `total` (or, with
    `advance=n`, n further: several workers each count their own share)."""
    return f"{PROGRESS_MARK} " + json.dumps({"stage": stage, "done": done, "total": total, **info})


def emit(line: str) -> None:
    """Write one line to this process's stdout, which Ray forwards to the driver once.

    Not `print`: Ray Train patches `print` in its workers to log and echo, so each line would reach
    the driver twice."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def parse_progress(line: str) -> dict | None:
    found = _PROGRESS.search(line)
    if not found:
        return None
    try:
        return json.loads(found.group(1))
    except ValueError:
        return None


class Stage:
    """One stage's line: a bar while it runs (when progress arrives), then `✓ name  summary  (12.3 s)`."""

    def __init__(self, console: Console, name: str):
        self.console = console
        self.name = name
        self.started = time.perf_counter()
        self.summary = ""
        self.count = 0
        self.bar: Any = None

    def done(self, summary: str) -> None:
        self.summary = summary

    def progress(self, done: int, total: int | None, postfix: str = "") -> None:
        self.count = done
        if not self.console.terminal_is_tty:
            return  # a bar in a log file or a CI log is noise: the closing line says it all
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total,
                desc=f"  {self.name}",
                file=self.console.terminal,
                leave=False,
                dynamic_ncols=True,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                "[{elapsed}<{remaining}] {postfix}",
            )
        self.bar.total = total or None
        self.bar.n = min(done, total) if total else done
        if postfix:
            self.bar.set_postfix_str(postfix, refresh=False)
        self.bar.refresh()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def close(self, failed: bool) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        mark = "✗" if failed else "✓"
        summary = f"  {self.summary}" if self.summary else ""
        self.console.say(f"{mark} {self.name:<14}{summary}  ({self.seconds:.1f} s)")


class Console:
    """The job's console (see the module docstring). Without `capture` it only prints its own lines."""

    def __init__(
        self, terminal: IO[str] | None = None, verbose: bool = False, log_file: IO[str] | None = None
    ):
        self.terminal = terminal or sys.stdout
        self.verbose = verbose
        self.log_file = log_file
        self.current: Stage | None = None
        self.detached = threading.Event()  # the capture has ended: captured lines go to the log file only
        self._lock = threading.Lock()
        try:
            self.terminal_is_tty = self.terminal.isatty()
        except (AttributeError, ValueError):
            self.terminal_is_tty = False

    # -- output --------------------------------------------------------------------------------

    def say(self, message: str) -> None:
        """A line for the person at the terminal (and the log file)."""
        with self._lock:
            bar = self.current.bar if self.current else None
            if bar is not None:
                bar.clear()
            self.terminal.write(message + "\n")
            self.terminal.flush()
            if bar is not None:
                bar.refresh()
            self._log(message + "\n")

    def table(self, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
        lines.insert(1, "  ".join("-" * w for w in widths))
        self.say("\n".join(lines))

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[Stage]:
        """A stage's closing line (✓ or ✗, summary, seconds); progress lines from workers drive its bar."""
        stage = Stage(self, name)
        previous, self.current = self.current, stage
        failed = True
        try:
            yield stage
            failed = False
        finally:
            self.current = previous
            stage.close(failed)

    def _log(self, text: str) -> None:
        if self.log_file is not None:
            self.log_file.write(text)
            self.log_file.flush()

    # -- what the captured streams carry --------------------------------------------------------

    def _captured_line(self, line: str) -> None:
        """A line some code wrote to stdout/stderr while capturing."""
        progress = parse_progress(line)
        with self._lock:
            self._log(line)
            if self.detached.is_set():
                return
        if progress is not None:
            stage = self.current
            if stage is not None:
                extra = {k: v for k, v in progress.items() if k not in ("stage", "done", "total", "advance")}
                postfix = " ".join(
                    f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in extra.items()
                )
                done = progress.get("done")
                done = int(done) if done is not None else stage.count + int(progress.get("advance") or 0)
                stage.progress(done, progress.get("total"), postfix)
            return
        if self.verbose:
            with self._lock:
                if not self.detached.is_set():
                    self.terminal.write(line)
                    self.terminal.flush()

    @classmethod
    @contextlib.contextmanager
    def capture(cls, log_path: str | None, verbose: bool = False) -> Iterator[Console]:
        """Redirect the process's stdout/stderr (file descriptors 1 and 2) for the duration: every
        byte goes to `log_path`; the terminal keeps the console's own lines (all of it with `verbose`).

        Child processes started meanwhile (a local Ray instance: raylet, workers) inherit the pipe and
        may outlive the capture. Leaving does not wait for them: it waits until everything written
        before it has been read, then the reader keeps draining the pipe into the log file alone
        (never the terminal) until the last of them exits, so none of them ever blocks on a full pipe."""
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        saved_out = os.dup(1)
        saved_err = os.dup(2)
        terminal = os.fdopen(os.dup(saved_out), "w", buffering=1, encoding="utf-8", errors="replace")
        log_file = None
        if log_path:
            os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
            log_file = open(log_path, "a", encoding="utf-8", errors="replace")  # noqa: SIM115
        console = cls(terminal, verbose, log_file)
        read_fd, write_fd = os.pipe()
        mark = f"{CLOSING_MARK} {os.getpid()}-{id(console)}"
        reader = threading.Thread(
            target=_pump, args=(read_fd, console, mark), name="console-capture", daemon=True
        )
        reader.start()
        os.dup2(write_fd, 1)
        os.dup2(write_fd, 2)
        # Python-level writers too, in case sys.stdout/stderr do not write to fds 1/2 (pytest, notebooks)
        python_streams = sys.stdout, sys.stderr
        sys.stdout = open(os.dup(1), "w", buffering=1, encoding="utf-8", errors="replace", closefd=True)  # noqa: SIM115
        sys.stderr = open(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace", closefd=True)  # noqa: SIM115
        try:
            yield console
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()  # not closed: a thread (Ray's log monitor) may still hold it
            sys.stdout, sys.stderr = python_streams
            os.dup2(saved_out, 1)
            os.dup2(saved_err, 2)
            os.close(saved_out)
            os.close(saved_err)
            os.write(write_fd, f"{mark}\n".encode())  # after every byte this process wrote in the capture
            os.close(write_fd)
            if not console.detached.wait(timeout=30):  # the reader detaches at the mark
                log.warning("the job's console stopped reading its captured output before the end")
            with console._lock:
                console.detached.set()  # from here the reader only writes the log file; it closes it
            terminal.close()


def _pump(fd: int, console: Console, mark: str) -> None:
    """Read the captured streams line by line until every writer is gone: this process's, then those
    of the children started during the capture. `mark` is the capture's end: the console detaches there."""
    pending = b""
    try:
        with os.fdopen(fd, "rb", buffering=0) as pipe:
            while True:
                chunk = pipe.read(65536)
                if not chunk:
                    break
                pending += chunk
                *lines, pending = re.split(rb"(?<=\n)", pending) if b"\n" in pending else [pending]
                for raw in lines:
                    if raw:
                        _read_line(console, _text(raw), mark)
        if pending:
            _read_line(console, _text(pending) + "\n", mark)
    finally:
        with console._lock:
            console.detached.set()
            if console.log_file is not None:
                console.log_file.close()
                console.log_file = None


def _text(raw: bytes) -> str:
    return _ANSI.sub("", raw.decode("utf-8", errors="replace"))


def _read_line(console: Console, line: str, mark: str) -> None:
    if mark in line:  # a partial line may precede the mark
        before = line.split(mark, 1)[0]
        if before:
            console._captured_line(before + "\n")
        with console._lock:
            console.detached.set()
        return
    with contextlib.suppress(Exception):  # the reader goes on draining, whatever showing one line does
        console._captured_line(line)
