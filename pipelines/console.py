"""What a person sees while a job runs: one line per stage, a progress bar for long stages, a summary.

    with Console.capture(log_path, verbose=False) as console:
        with console.stage("weak-label") as stage:
            report = ...
            stage.done(report.summary())
        console.table(header, rows)

While a `Console` captures, everything written to the process's stdout and stderr — Ray's worker
lines forwarded to the driver, Ray Data's progress bars, Ray Train's report dicts, library warnings,
even C-level writes and the output of child processes — goes to the job's log file only (`--verbose`
also shows it). The terminal gets the console's own lines. Workers drive the progress bar by logging
`progress_line(...)`: the line reaches the driver like any worker output, and the console turns it
into a bar update instead of printing it.

How: file descriptors 1 and 2 point straight at the log file, opened for appending. Every writer —
this process, and any child started meanwhile (a local Ray's raylet and workers inherit fds 1 and 2),
during the capture and after it — writes to a plain file: none can block on the console, none breaks
when the capture ends, and leaving waits for none of them. The terminal keeps a duplicate of the
original stdout for the console's lines. A follower thread tails the log file (it only reads, and
sleeps when there is nothing new): progress lines move the bar, and with `verbose` it echoes every
other line, the console's own included, so the terminal shows them in the log's order. Leaving
restores fds 1 and 2 and lets the follower read up to the end of the file as it is then (giving up
on it if it is stuck writing to a terminal nobody reads); children still running go on appending to
the log. The log keeps the bytes as written; the terminal gets them without colour codes.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from typing import IO, Any

PROGRESS_MARK = "@@gliner-progress@@"
_PROGRESS = re.compile(re.escape(PROGRESS_MARK) + r" (\{.*\})")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
POLL_SECONDS = 0.05  # how long the follower sleeps when the log file has nothing new
STOP_SECONDS = 2.0  # leaving a capture gives up on a follower that reads nothing for this long
LONGEST_LINE = 1 << 20  # a writer that never ends its line (a bar redrawn with \r) is shown in pieces


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
        self.closed = False  # a progress line that arrives later moves nothing

    def done(self, summary: str) -> None:
        self.summary = summary

    def progress(self, done: int, total: int | None, postfix: str = "") -> None:
        """Move the bar (the caller holds the console's lock)."""
        if self.closed:
            return
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
        self.closed = True
        if self.console.terminal_is_tty:  # where bars are: none is being drawn (the lock) or will be
            with self.console._lock:
                if self.bar is not None:
                    self.bar.close()
                    self.bar = None
        mark = "✗" if failed else "✓"
        summary = f"  {self.summary}" if self.summary else ""
        self.console.say(f"{mark} {self.name:<14}{summary}  ({self.seconds:.1f} s)")


class Console:
    """The job's console (see the module docstring). Without `capture` it only prints its own lines."""

    def __init__(self, terminal: IO[str] | None = None, verbose: bool = False):
        self.terminal = terminal or sys.stdout
        self.verbose = verbose
        self.current: Stage | None = None
        self._log_fd: int | None = None  # while capturing: the log file, which gets the console's lines too
        self._lock = threading.Lock()  # one writer at a time on the terminal and the bar
        self._log_lock = threading.Lock()  # the log file is not closed under a writer; no terminal here
        try:
            self.terminal_is_tty = self.terminal.isatty()
        except (AttributeError, ValueError):
            self.terminal_is_tty = False

    # -- output --------------------------------------------------------------------------------

    def say(self, message: str) -> None:
        """A line for the person at the terminal (and the log file)."""
        text = message + "\n"
        with self._log_lock:
            if self._log_fd is not None:
                _write_all(self._log_fd, text.encode("utf-8", errors="replace"))
                if self.verbose:
                    return  # the follower shows it, in its place among the lines captured around it
        with self._lock:
            self._show(text)

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

    def _show(self, text: str) -> None:
        """Write `text` to the terminal above the bar (the caller holds the lock)."""
        bar = self.current.bar if self.current else None
        if bar is not None:
            bar.clear()
        self.terminal.write(text)
        self.terminal.flush()
        if bar is not None:
            bar.refresh()

    # -- what the follower reads in the log file ------------------------------------------------

    def _captured_line(self, line: str) -> None:
        """A line of the log file, written during the capture by anyone (newline stripped)."""
        progress = parse_progress(line)
        if progress is None:
            if self.verbose:
                with self._lock:
                    self._show(_ANSI.sub("", line) + "\n")
            return
        stage = self.current
        if stage is None:
            return
        extra = {k: v for k, v in progress.items() if k not in ("stage", "done", "total", "advance")}
        postfix = " ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in extra.items())
        done = progress.get("done")
        done = int(done) if done is not None else stage.count + int(progress.get("advance") or 0)
        with self._lock:
            stage.progress(done, progress.get("total"), postfix)

    @classmethod
    @contextlib.contextmanager
    def capture(cls, log_path: str | None, verbose: bool = False) -> Iterator[Console]:
        """Point the process's stdout/stderr (file descriptors 1 and 2) at `log_path` for the duration;
        the terminal keeps the console's own lines (all of it with `verbose`). Without a `log_path` the
        output goes to a temporary file, removed on leaving.

        Child processes started meanwhile (a local Ray: raylet, workers) inherit fds 1 and 2 and may
        outlive the capture: they go on appending to the log file, and leaving does not wait for them."""
        scratch = not log_path
        if not log_path:
            handle, log_path = tempfile.mkstemp(prefix="console-", suffix=".log")
            os.close(handle)
        os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
        log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        follower = _Follower(os.open(log_path, os.O_RDONLY))  # from the end: what this capture adds
        _flush_python_streams()
        saved_out, saved_err = os.dup(1), os.dup(2)
        terminal = os.fdopen(os.dup(saved_out), "w", buffering=1, encoding="utf-8", errors="replace")
        console = follower.console = cls(terminal, verbose)
        console._log_fd = log_fd
        follower.start()
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        # Python-level writers too, in case sys.stdout/stderr do not write to fds 1/2 (pytest, notebooks)
        python_streams = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = _log_stream(log_fd), _log_stream(log_fd)
        ray_colour = os.environ.get("RAY_COLOR_PREFIX")
        os.environ["RAY_COLOR_PREFIX"] = ray_colour or "0"  # worker lines' "(pid=…)" uncoloured in the log
        try:
            yield console
        finally:
            _flush_python_streams()  # not closed: a thread (Ray's log monitor) may still hold them
            sys.stdout, sys.stderr = python_streams
            if ray_colour is None:
                os.environ.pop("RAY_COLOR_PREFIX", None)
            os.dup2(saved_out, 1)
            os.dup2(saved_err, 2)
            os.close(saved_out)
            os.close(saved_err)
            with console._log_lock:
                console._log_fd = None
                os.close(log_fd)
            if follower.stop():  # it read up to the end of the file as it is now
                terminal.close()
            # else it is stuck writing to a terminal nobody reads: it keeps its file rather than we wait
            if scratch:
                os.unlink(log_path)


class _Follower(threading.Thread):
    """Tails the log file from where it was opened and hands each new line to the console. It only
    reads a file: no writer ever waits for it, and whatever it does, nothing else stops."""

    console: Console

    def __init__(self, fd: int):
        super().__init__(name="console-follower", daemon=True)
        self.fd = fd
        self.offset = os.lseek(fd, 0, os.SEEK_END)
        self.pending = b""  # the start of a line whose end has not been written yet
        self.stopping = threading.Event()

    def stop(self) -> bool:
        """Read to the end of the file as it is now, then stop. False if the follower gets stuck (it
        writes to a terminal nobody reads): it has not read a byte in STOP_SECONDS."""
        self.stopping.set()
        while True:
            offset = self.offset
            self.join(timeout=STOP_SECONDS)
            if not self.is_alive():
                return True
            if self.offset == offset:
                return False

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                if not self._read(65536):
                    self.stopping.wait(POLL_SECONDS)
            end = os.fstat(self.fd).st_size  # children may still be writing: no further than this
            while self.offset < end and self._read(min(end - self.offset, 65536)):
                pass
            if self.pending:
                self._line(self.pending)
        finally:
            os.close(self.fd)

    def _read(self, size: int) -> bool:
        chunk = os.read(self.fd, size)
        self.offset += len(chunk)
        *lines, self.pending = (self.pending + chunk).split(b"\n")
        if len(self.pending) > LONGEST_LINE:
            lines.append(self.pending)
            self.pending = b""
        for line in lines:
            self._line(line)
        return bool(chunk)

    def _line(self, raw: bytes) -> None:
        with contextlib.suppress(Exception):  # one line the console cannot show is no reason to stop
            self.console._captured_line(raw.decode("utf-8", errors="replace"))


def _log_stream(fd: int) -> IO[str]:
    return open(os.dup(fd), "w", buffering=1, encoding="utf-8", errors="replace")  # noqa: SIM115


def _flush_python_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
