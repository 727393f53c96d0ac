"""The retraining scheduler: cron ticks and new data, durable across restarts, never overlapping."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest

from jobs.schedule import Scheduler, StateStore, corpus_signature, single_instance
from jobs.settings import UserError
from jobs.submit import cluster_client
from tests.jobs.conftest import ROOT

T0 = datetime(2026, 11, 25, 2, 30, tzinfo=timezone.utc)


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class FakeCluster:
    """Jobs keyed by submission id, like the Jobs API: submitting an existing id finds it."""

    def __init__(self):
        self.jobs: dict[str, str] = {}  # id -> status
        self.submitted: list[str] = []
        self.crash_after_submit = False

    def submission_id(self, key: str) -> str:
        return f"job-{key}"

    def submit(self, key: str) -> tuple[str, bool]:
        submission_id = self.submission_id(key)
        if submission_id in self.jobs:
            return submission_id, True
        self.jobs[submission_id] = "RUNNING"
        self.submitted.append(submission_id)
        if self.crash_after_submit:
            raise KeyboardInterrupt("scheduler killed between submitting and recording")
        return submission_id, False

    def status(self, submission_id: str) -> str | None:
        return self.jobs.get(submission_id)

    def finish_all(self) -> None:
        self.jobs = dict.fromkeys(self.jobs, "SUCCEEDED")


def scheduler(tmp_path, cluster, clock, **kwargs) -> Scheduler:
    return Scheduler(cluster, StateStore(tmp_path / "state.db"), clock=clock, **kwargs)


def test_cron_submits_once_per_tick_and_not_the_backlog(tmp_path):
    cluster, clock = FakeCluster(), Clock(T0)
    s = scheduler(tmp_path, cluster, clock, cron="0 3 * * *")
    assert s.poll().action == "idle"  # ticks before the first start are not replayed
    clock.advance(hours=1)  # 03:30: the 03:00 tick is due
    assert s.poll().action == "submitted"
    cluster.finish_all()
    assert s.poll().action == "idle"  # same tick: nothing new
    clock.advance(days=3)  # three ticks passed: one run, not three
    assert s.poll().action == "submitted"
    cluster.finish_all()
    assert s.poll().action == "idle"
    assert cluster.submitted == ["job-cron:2026-11-25T03:00:00+00:00", "job-cron:2026-11-28T03:00:00+00:00"]


def test_a_restart_neither_duplicates_nor_misses(tmp_path):
    cluster, clock = FakeCluster(), Clock(T0)
    scheduler(tmp_path, cluster, clock, cron="0 3 * * *")
    clock.advance(hours=1)
    scheduler(tmp_path, cluster, clock, cron="0 3 * * *").poll()  # submits 03:00
    cluster.finish_all()
    # restarted before the next tick: nothing to do
    assert scheduler(tmp_path, cluster, clock, cron="0 3 * * *").poll().action == "idle"
    # down over the next tick: the restarted scheduler submits it (missed → run once)
    clock.advance(days=1, hours=2)
    assert scheduler(tmp_path, cluster, clock, cron="0 3 * * *").poll().action == "submitted"
    cluster.finish_all()
    assert scheduler(tmp_path, cluster, clock, cron="0 3 * * *").poll().action == "idle"
    assert len(cluster.submitted) == len(set(cluster.submitted)) == 2


def killed_between_submitting_and_recording(tmp_path) -> tuple[FakeCluster, Clock]:
    """A daily cron whose 03:00 job reached the cluster, the scheduler killed before recording it."""
    cluster, clock = FakeCluster(), Clock(T0)
    scheduler(tmp_path, cluster, clock, cron="0 3 * * *")
    clock.advance(hours=1)
    cluster.crash_after_submit = True
    with pytest.raises(KeyboardInterrupt):
        scheduler(tmp_path, cluster, clock, cron="0 3 * * *").poll()
    cluster.crash_after_submit = False
    return cluster, clock


def test_killed_between_submitting_and_recording_finds_the_job(tmp_path):
    cluster, clock = killed_between_submitting_and_recording(tmp_path)
    decision = scheduler(tmp_path, cluster, clock, cron="0 3 * * *").poll()
    assert decision.action == "found"  # same tick, same submission id: the job on the cluster
    assert cluster.submitted == ["job-cron:2026-11-25T03:00:00+00:00"]
    assert StateStore(tmp_path / "state.db").submissions()[0]["existing"] == 1


def test_killed_between_submitting_and_recording_records_the_job_after_later_ticks(tmp_path):
    """Down over the next tick: the job submitted before the kill is recorded (its id was written down
    before submitting), then the new tick waits for it and goes; nothing unrecorded, nothing twice."""
    cluster, clock = killed_between_submitting_and_recording(tmp_path)
    clock.advance(days=1)  # the 03:00 tick of the next day passed while it was down
    s = scheduler(tmp_path, cluster, clock, cron="0 3 * * *")
    assert s.poll().action == "found"
    assert s.poll().action == "deferred"  # the recorded job still runs
    cluster.finish_all()
    assert s.poll().action == "submitted"
    recorded = [row["submission_id"] for row in StateStore(tmp_path / "state.db").submissions()]
    assert (
        sorted(recorded)
        == sorted(cluster.submitted)
        == [
            "job-cron:2026-11-25T03:00:00+00:00",
            "job-cron:2026-11-26T03:00:00+00:00",
        ]
    )


def test_an_intent_that_never_reached_the_cluster_is_dropped(tmp_path):
    """Killed after writing the intent but before the cluster had the job (or the cluster refused it):
    after the restart only the latest due tick goes, not the stale one."""
    cluster, clock = FakeCluster(), Clock(T0)
    scheduler(tmp_path, cluster, clock, cron="0 3 * * *")
    clock.advance(hours=1)
    refused = FakeCluster()
    refused.submit = lambda key: (_ for _ in ()).throw(ConnectionError("cluster down"))  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        scheduler(tmp_path, refused, clock, cron="0 3 * * *").poll()
    clock.advance(days=1)
    assert scheduler(tmp_path, cluster, clock, cron="0 3 * * *").poll().action == "submitted"
    assert cluster.submitted == ["job-cron:2026-11-26T03:00:00+00:00"]


def test_sigterm_during_a_poll_lets_it_record_before_stopping(tmp_path):
    """`schedule` stopped by SIGTERM (systemd, Kubernetes, a test's teardown) while it submits: the
    poll finishes and records the job, then the process exits cleanly; a default SIGTERM would kill it
    between submitting and recording."""
    script = f"""
import os, signal, time
from jobs.schedule import Scheduler, StateStore

class Jobs:
    def submission_id(self, key): return "job-" + key
    def status(self, submission_id): return None
    def submit(self, key):
        os.kill(os.getpid(), signal.SIGTERM)  # the stop arrives while the cluster is answering
        time.sleep(0.2)
        return self.submission_id(key), False

Scheduler(Jobs(), StateStore({str(tmp_path / "state.db")!r}), watch={str(tmp_path)!r}).run_forever(0.1)
"""
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "stopped by SIGTERM" in result.stdout
    (row,) = StateStore(tmp_path / "state.db").submissions()
    assert row["submission_id"].startswith("job-data:")
    assert StateStore(tmp_path / "state.db").get("pending") is None


def test_runs_never_overlap(tmp_path):
    cluster, clock = FakeCluster(), Clock(T0)
    s = scheduler(tmp_path, cluster, clock, cron="*/10 * * * *")
    clock.advance(minutes=10)
    assert s.poll().action == "submitted"
    clock.advance(minutes=10)  # the next tick while the first job still runs
    assert s.poll().action == "deferred"
    assert s.poll().action == "deferred"
    cluster.finish_all()
    assert s.poll().action == "submitted"  # the deferred tick goes as soon as the job ended
    assert len(cluster.submitted) == 2


def test_new_data_triggers_a_run(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.jsonl").write_text('{"text": "a"}\n')
    cluster, clock = FakeCluster(), Clock(T0)
    s = scheduler(tmp_path, cluster, clock, watch=str(corpus))
    assert s.poll().action == "submitted"  # data present at the first start counts as new
    cluster.finish_all()
    assert s.poll().action == "idle"
    (corpus / ".b.jsonl.part").write_text("partial upload")  # hidden files are ignored
    assert s.poll().action == "idle"
    (corpus / "b.jsonl").write_text('{"text": "b"}\n')
    assert s.poll().action == "submitted"
    cluster.finish_all()
    before = corpus_signature(corpus)
    os.utime(corpus / "a.jsonl", ns=(1, 1))  # rewritten file
    assert corpus_signature(corpus) != before
    with pytest.raises(UserError, match="watched corpus not found"):
        corpus_signature(tmp_path / "missing")


def test_needs_something_to_schedule_on(tmp_path):
    with pytest.raises(UserError, match="--cron and/or --watch"):
        scheduler(tmp_path, FakeCluster(), Clock(T0))


def test_one_scheduler_per_state_file(tmp_path):
    with (
        single_instance(tmp_path / "state.db"),
        pytest.raises(UserError, match="another scheduler is running"),
        single_instance(tmp_path / "state.db"),
    ):
        pass
    with single_instance(tmp_path / "state.db"):  # released
        pass


def scheduler_process(head, state, corpus, log, model):
    return subprocess.Popen(
        [
            sys.executable, "-m", "jobs", "schedule", "--address", head.address,
            "--cron", "*/4 * * * * *",  # every 4 seconds (croniter's sixth field is seconds)
            "--watch", str(corpus), "--state", str(state), "--interval", "0.5",
            "--", "predict", "--model", model, "--text", "Ada Lovelace in London.", "--labels", "person",
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "RAY_AUTH_TOKEN": head.token, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip


@pytest.mark.integration
@pytest.mark.slow
def test_killed_and_restarted_against_a_real_head(ray_head, tmp_path, monkeypatch, fresh_model):
    """A fast cron and a watched folder, real jobs on a real head; the scheduler is SIGKILLed and
    restarted. The cluster must end with exactly the jobs the state recorded, none twice, none running
    at the same time."""
    monkeypatch.setenv("RAY_AUTH_TOKEN", ray_head.token)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.jsonl").write_text('{"text": "a"}\n')
    state = tmp_path / "state.db"
    client = cluster_client(ray_head.address)

    def ours():
        return [j for j in client.list_jobs() if (j.metadata or {}).get("command") == "predict"]

    def wait_for(condition, timeout=480):  # real jobs on a busy 2-core head can take minutes
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.5)

    with (tmp_path / "first.log").open("w") as log:
        first = scheduler_process(ray_head, state, corpus, log, fresh_model)
        wait_for(lambda: len(ours()) >= 1)
        first.send_signal(signal.SIGKILL)
        first.wait()
    submitted_before = {j.submission_id for j in ours()}
    (corpus / "b.jsonl").write_text('{"text": "b"}\n')  # lands while the scheduler is down

    with (tmp_path / "second.log").open("w") as log:
        second = scheduler_process(ray_head, state, corpus, log, fresh_model)
        try:
            wait_for(lambda: len(ours()) >= len(submitted_before) + 2)
            wait_for(lambda: all(j.status.value in ("SUCCEEDED", "FAILED", "STOPPED") for j in ours()))
        finally:
            second.send_signal(signal.SIGTERM)  # may land mid-poll: the poll finishes and records first
            second.wait(timeout=60)
    assert second.returncode == 0, (tmp_path / "second.log").read_text()[-3000:]
    assert "stopped by SIGTERM" in (tmp_path / "second.log").read_text()
    # a tick due as the last job ended may have gone out just before the stop: let it finish too
    wait_for(lambda: all(j.status.value in ("SUCCEEDED", "FAILED", "STOPPED") for j in ours()))

    jobs = ours()
    recorded = [row["submission_id"] for row in StateStore(state).submissions()]
    assert sorted({j.submission_id for j in jobs}) == sorted(recorded)  # nothing unrecorded, nothing twice
    assert len(recorded) == len(set(recorded))
    assert all(j.status.value == "SUCCEEDED" for j in jobs), [j.message for j in jobs]
    reasons = " ".join(row["reason"] for row in StateStore(state).submissions())
    assert "new data" in reasons and "cron tick" in reasons
    spans = sorted((j.start_time, j.end_time) for j in jobs)
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert start >= end, "two scheduled jobs overlapped"
    assert json.loads(json.dumps(jobs[0].metadata))["app"] == "gliner-selftrain"
