"""The job console: the terminal gets the stage lines, the log file gets everything written to the
process's stdout and stderr (a child process's writes too), progress lines move a bar, never print.

Each test runs the console in a real process: the capture redirects file descriptors 1 and 2."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import textwrap

SCRIPT = textwrap.dedent(
    """
    import os, sys
    from pipelines.console import Console, progress_line
    with Console.capture(sys.argv[1], verbose=sys.argv[2] == "verbose") as console:
        print("(RayTrainWorker pid=1) Reporting training result 1: TrainingReport(...)")
        print("a warning on stderr", file=sys.stderr)
        os.write(2, b"a C-level write\\n")
        os.system("echo a line from a child process")
        with console.stage("train") as stage:
            print(progress_line("train", 5, 10, loss=0.5), flush=True)
            stage.done("10 rows, 2 steps")
        console.table(["model", "micro F1"], [["start", "0.25"], ["iteration 1", "0.31"]])
    print("after the job")
    """
)


def run(tmp_path, mode: str) -> tuple[str, str]:
    log = tmp_path / f"{mode}.log"
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(log), mode], capture_output=True, text=True, timeout=60, check=True
    )
    return out.stdout + out.stderr, log.read_text()


HIDDEN = ("TrainingReport", "a warning on stderr", "a C-level write", "a line from a child process")


def test_the_terminal_shows_stages_and_the_log_keeps_everything(tmp_path):
    terminal, log = run(tmp_path, "quiet")
    lines = terminal.splitlines()
    assert lines[0].startswith("✓ train           10 rows, 2 steps  (")
    assert lines[1:] == [
        "model        micro F1",
        "-----------  --------",
        "start        0.25",
        "iteration 1  0.31",
        "after the job",
    ]
    for hidden in HIDDEN:
        assert hidden not in terminal and hidden in log
    assert "@@gliner-progress@@" in log and "@@gliner-progress@@" not in terminal
    assert "✓ train" in log and "iteration 1  0.31" in log  # the console's own lines too
    assert "after the job" not in log


def test_verbose_shows_everything_but_progress_lines(tmp_path):
    terminal, log = run(tmp_path, "verbose")
    for shown in (*HIDDEN, "✓ train", "iteration 1  0.31"):
        assert terminal.count(shown) == 1 and shown in log
    assert "@@gliner-progress@@" not in terminal
    lines = terminal.splitlines()  # in the log's order: the stage line after what came before it
    assert lines.index("a line from a child process") < next(
        i for i, line in enumerate(lines) if line.startswith("✓ train")
    )
    assert lines[-1] == "after the job"


OUTLIVING_CHILD = textwrap.dedent(
    """
    import subprocess, sys, time
    from pipelines.console import Console
    started = time.monotonic()
    with Console.capture(sys.argv[1]) as console:
        late = "import time; time.sleep(3); print('late child line'); print('x' * 1_000_000)"
        child = subprocess.Popen([sys.executable, "-c", late])
        console.say("stage line")
    print(f"left the capture after {time.monotonic() - started:.1f} s")
    child.wait()
    """
)


def test_a_child_that_outlives_the_capture_neither_delays_it_nor_reaches_the_terminal(tmp_path):
    """A local Ray started inside a job's capture inherits its stdout/stderr and outlives it: leaving
    must not wait for Ray to exit, and what Ray's processes write later (however much) goes on into
    the log, never the terminal."""
    log = tmp_path / "job.log"
    script = [sys.executable, "-c", OUTLIVING_CHILD, str(log)]
    out = subprocess.run(script, capture_output=True, text=True, timeout=60, check=True)
    lines = out.stdout.splitlines()
    assert lines[0] == "stage line" and lines[1].startswith("left the capture after ")
    assert float(lines[1].split()[-2]) < 2.0  # not the child's 3 s
    assert "late child line" not in out.stdout + out.stderr
    assert "late child line" in log.read_text()
    assert "x" * 1_000_000 in log.read_text()


FLOOD = textwrap.dedent(
    """
    import os, subprocess, sys, time
    from pipelines.console import Console
    started = time.monotonic()
    with Console.capture(sys.argv[1], verbose=sys.argv[2] == "verbose") as console:
        os.write(1, b"a" * 1_000_000 + b"\\n")  # one C-level write, far more than a pipe holds
        os.write(2, b"bar\\r" * 1_000_000 + b"\\n")  # a line of 4 MB: a bar redrawn and never ended
        for i in range(20_000):
            print(f"python line {i}")
        subprocess.run([sys.executable, "-c", "print('c' * 1_000_000)"], check=True)
        console.say("stage line")
    print(f"left the capture after {time.monotonic() - started:.1f} s")
    """
)


def test_writers_that_flood_the_capture_never_block(tmp_path):
    """Megabytes written at once (this process, C-level and Python, and a child) while the console is
    busy: nobody waits for the console to read them."""
    for mode in ("quiet", "verbose"):
        log = tmp_path / f"{mode}.log"
        script = [sys.executable, "-c", FLOOD, str(log), mode]
        out = subprocess.run(script, capture_output=True, text=True, timeout=120, check=True)
        text = log.read_text()
        assert "a" * 1_000_000 in text and "python line 19999" in text and "c" * 1_000_000 in text
        assert b"bar\r" * 1_000_000 in log.read_bytes()
        if mode == "quiet":
            assert out.stdout.splitlines()[0] == "stage line"
            assert float(out.stdout.splitlines()[1].split()[-2]) < 10.0
        else:  # verbose shows all of it, in order
            assert "python line 19999\n" + "c" * 1_000_000 + "\nstage line\n" in out.stdout


TWICE = textwrap.dedent(
    """
    import os, sys, threading
    from pipelines.console import Console
    first, second = sys.argv[1:3]
    for path, word in ((first, "one"), (second, "two"), (first, "three")):
        with Console.capture(path, verbose=True) as console:
            print(f"printed {word}")
            console.say(f"said {word}")
            assert os.environ["RAY_COLOR_PREFIX"] == "0"  # Ray's worker lines in the log: no colour codes
    followers = [t for t in threading.enumerate() if t.name == "console-follower"]
    print(f"followers left: {len(followers)}, RAY_COLOR_PREFIX {os.environ.get('RAY_COLOR_PREFIX')}")
    """
)


def test_the_capture_can_be_entered_again_in_one_process(tmp_path):
    """Several commands in one process (tests, a notebook), one of them appending to a log file that
    an earlier capture wrote: each shows its own lines once, and none leaves a thread behind."""
    first, second = tmp_path / "first.log", tmp_path / "second.log"
    script = [sys.executable, "-c", TWICE, str(first), str(second)]
    out = subprocess.run(script, capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.splitlines() == [
        "printed one",
        "said one",
        "printed two",
        "said two",
        "printed three",
        "said three",
        "followers left: 0, RAY_COLOR_PREFIX None",
    ]
    assert first.read_text() == "printed one\nsaid one\nprinted three\nsaid three\n"
    assert second.read_text() == "printed two\nsaid two\n"


NO_LOG = textwrap.dedent(
    """
    import os, sys
    from pipelines.console import Console
    for verbose in (False, True):
        with Console.capture(None, verbose=verbose) as console:
            print("python line")
            os.system("echo a line from a child process")
            console.say(f"stage line, verbose {verbose}")
    """
)


def test_without_a_log_file_the_terminal_stays_clean_and_nothing_is_left_behind(tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}
    out = subprocess.run(
        [sys.executable, "-c", NO_LOG], capture_output=True, text=True, timeout=60, check=True, env=env
    )
    assert out.stdout.splitlines() == [
        "stage line, verbose False",
        "python line",
        "a line from a child process",
        "stage line, verbose True",
    ]
    assert list(scratch.iterdir()) == []


BAR = textwrap.dedent(
    """
    import sys, time
    from pipelines.console import Console, progress_line
    with Console.capture(sys.argv[1]) as console:
        with console.stage("train") as stage:
            print(progress_line("train", 5, 10, loss=0.5), flush=True)
            deadline = time.monotonic() + 10
            while stage.bar is None and time.monotonic() < deadline:
                time.sleep(0.01)
            stage.done(f"count {stage.count}")
    """
)


def test_progress_lines_move_the_bar_on_a_terminal(tmp_path):
    main, tty = pty.openpty()
    fcntl.ioctl(tty, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    script = [sys.executable, "-c", BAR, str(tmp_path / "bar.log")]
    child = subprocess.Popen(script, stdin=subprocess.DEVNULL, stdout=tty, stderr=tty)
    os.close(tty)
    shown = b""
    while select.select([main], [], [], 60)[0]:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(main)
    assert child.wait(timeout=60) == 0
    terminal = shown.decode("utf-8", errors="replace")
    assert "train:  50%" in terminal and "5/10" in terminal and "loss 0.5" in terminal
    assert "@@gliner-progress@@" not in terminal
    assert "✓ train           count 5" in terminal


BLOCKED_TERMINAL = textwrap.dedent(
    """
    import os, sys, time
    from pipelines.console import Console
    started = time.monotonic()
    with Console.capture(sys.argv[1], verbose=True) as console:
        for i in range(50_000):
            print(f"python line {i}")  # to be shown: far more than the terminal's pipe holds
        os.system("echo a line from a child process")
        written = time.monotonic()
    with open(sys.argv[2], "w") as report:
        report.write(f"{written - started:.1f} {time.monotonic() - written:.1f}")
    """
)


def test_a_terminal_nobody_reads_blocks_neither_the_writers_nor_leaving(tmp_path):
    """`--verbose` piped into a pager that is not reading: the console's follower blocks writing to the
    terminal; the job's writers do not wait for it, and leaving the capture gives up on it."""
    log, report = tmp_path / "job.log", tmp_path / "seconds"
    script = [sys.executable, "-c", BLOCKED_TERMINAL, str(log), str(report)]
    child = subprocess.Popen(script, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert child.wait(timeout=60) == 0  # the terminal (the pipe) is not read until it has exited
    finally:
        child.stdout.close()
    writing, leaving = map(float, report.read_text().split())
    assert writing < 10.0 and leaving < 5.0  # the follower is given up after 2 s without reading
    assert "python line 49999\na line from a child process\n" in log.read_text()
