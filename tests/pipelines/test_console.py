"""The job console: the terminal gets the stage lines, the log file gets everything written to the
process's stdout and stderr (a child process's writes too), progress lines move a bar, never print."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import os, sys
    from pipelines.console import Console, progress_line
    with Console.capture(sys.argv[1], verbose=sys.argv[2] == "verbose") as console:
        print("(RayTrainWorker pid=1) Reporting training result 1: TrainingReport(...)")
        print("a warning on stderr", file=sys.stderr)
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
    for hidden in ("TrainingReport", "a warning on stderr", "a line from a child process"):
        assert hidden not in terminal and hidden in log
    assert "@@gliner-progress@@" in log and "@@gliner-progress@@" not in terminal


def test_verbose_shows_everything_but_progress_lines(tmp_path):
    terminal, log = run(tmp_path, "verbose")
    for shown in ("TrainingReport", "a warning on stderr", "a line from a child process", "✓ train"):
        assert shown in terminal and shown in log
    assert "@@gliner-progress@@" not in terminal


OUTLIVING_CHILD = textwrap.dedent(
    """
    import subprocess, sys, time
    from pipelines.console import Console
    started = time.monotonic()
    with Console.capture(sys.argv[1]) as console:
        late = "import time; time.sleep(3); print('late child line')"
        child = subprocess.Popen([sys.executable, "-c", late])
        console.say("stage line")
    print(f"left the capture after {time.monotonic() - started:.1f} s")
    child.wait()
    time.sleep(0.5)  # the reader writes the child's last line to the log
    """
)


def test_a_child_that_outlives_the_capture_neither_delays_it_nor_reaches_the_terminal(tmp_path):
    """A local Ray started inside a job's capture keeps the pipe open after it: leaving must not wait
    for Ray to exit, and what Ray's processes write later goes on into the log, never the terminal."""
    log = tmp_path / "job.log"
    script = [sys.executable, "-c", OUTLIVING_CHILD, str(log)]
    out = subprocess.run(script, capture_output=True, text=True, timeout=60, check=True)
    lines = out.stdout.splitlines()
    assert lines[0] == "stage line" and lines[1].startswith("left the capture after ")
    assert float(lines[1].split()[-2]) < 2.0  # not the child's 3 s
    assert "late child line" not in out.stdout + out.stderr
    assert "late child line" in log.read_text()
