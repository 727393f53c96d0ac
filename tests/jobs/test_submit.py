"""Ray Jobs submission: deterministic ids, credentials from the environment, a real head running a job."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from jobs.settings import UserError
from jobs.submit import JobSpec, auth_headers, cluster_client, submit
from tests.jobs.conftest import ROOT, cli


def spec(tmp_path, *args: str, key: str = "") -> JobSpec:
    return JobSpec.build(list(args), tmp_path, key=key)


def test_submission_id_is_a_function_of_what_runs(tmp_path):
    (tmp_path / "job.yaml").write_text("train:\n  epochs: 2\n")
    first = spec(tmp_path, "self-train", "--config", "job.yaml")
    assert spec(tmp_path, "self-train", "--config", "job.yaml").submission_id() == first.submission_id()
    assert spec(tmp_path, "self-train", "--config", "job.yaml", key="2026-11-25").submission_id() != (
        first.submission_id()
    )
    assert spec(tmp_path, "self-train", "--config", "job.yaml", "-s", "train.epochs=3").submission_id() != (
        first.submission_id()
    )
    (tmp_path / "job.yaml").write_text("train:\n  epochs: 4\n")  # same path, new contents: a new job
    changed = spec(tmp_path, "self-train", "--config", "job.yaml")
    assert changed.submission_id() != first.submission_id()
    assert changed.config_hash != first.config_hash
    assert first.submission_id().startswith("gliner-self-train-")


def test_spec_validates_the_config_before_sending(tmp_path):
    (tmp_path / "job.yaml").write_text("train:\n  epochz: 2\n")
    with pytest.raises(UserError, match="train.epochz: unknown key"):
        spec(tmp_path, "self-train", "--config", "job.yaml")


def test_runtime_env_and_metadata_carry_no_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_TOKEN", "tok-123")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "pw-456")
    job = JobSpec.build(["self-train"], tmp_path, pip=["croniter"])
    blob = json.dumps([job.runtime_env(), job.metadata(), job.entrypoint()])
    assert "tok-123" not in blob and "pw-456" not in blob
    assert job.runtime_env()["working_dir"] == str(tmp_path.resolve())
    assert job.runtime_env()["pip"] == ["croniter"]
    assert ".venv" in job.runtime_env()["excludes"]
    assert auth_headers() == {"Authorization": "Bearer tok-123"}


def test_entrypoint_quotes_arguments(tmp_path):
    job = JobSpec.build(["predict", "--text", "Ada's book; rm -rf /"], tmp_path)
    assert job.entrypoint() == "python -m jobs predict --text 'Ada'\"'\"'s book; rm -rf /'"


@pytest.mark.integration
@pytest.mark.slow
def test_a_submitted_job_runs_a_pipeline_on_a_real_head_once(ray_head, fresh_model, tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_TOKEN", ray_head.token)
    output = tmp_path / "labeled"
    command = [
        "label", "--model", fresh_model, "--output", str(output),
        "-s", f"storage_path={tmp_path / 'runs'}", "-s", "data.max_documents=16",
    ]  # fmt: skip
    result = cli("submit", "--address", ray_head.address, "--", *command, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "submitted job gliner-label-" in result.stdout
    assert "16 documents labeled" in result.stdout  # the job's own log, streamed back
    assert result.stdout.rstrip().endswith("SUCCEEDED")

    weak = pq.read_table(output / "weak_labels").to_pylist()
    assert len(weak) == 16 and len({row["doc_id"] for row in weak}) == 16

    # the same command again (a retry): found, not run a second time
    again = cli("submit", "--no-wait", "--address", ray_head.address, "--", *command, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "already on the cluster (SUCCEEDED); not submitted again" in again.stdout

    client = cluster_client(ray_head.address)
    ours = [j for j in client.list_jobs() if (j.metadata or {}).get("command") == "label"]
    assert len(ours) == 1
    info = ours[0]
    assert info.metadata["app"] == "gliner-selftrain"
    assert info.metadata["git_commit"] != ""
    assert len(info.metadata["config_hash"]) == 12
    assert ray_head.token not in json.dumps(info.runtime_env) + json.dumps(info.metadata) + info.entrypoint

    status = cli("status", info.submission_id, "--address", ray_head.address, timeout=60)
    assert f"{info.submission_id}: SUCCEEDED" in status.stdout
    logs = cli("logs", info.submission_id, "--address", ray_head.address, timeout=60)
    assert "16 documents labeled" in logs.stdout


@pytest.mark.integration
def test_the_head_refuses_a_missing_or_wrong_token(ray_head, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_TOKEN", "not-the-token")
    with pytest.raises(UserError, match="refused the credentials"):
        cluster_client(ray_head.address)
    monkeypatch.delenv("RAY_AUTH_TOKEN")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # no token from ~/.ray either
    with pytest.raises(UserError, match="refused the credentials|cannot reach"):
        cluster_client(ray_head.address)


def test_transient_refusals_are_retried_with_the_same_id(tmp_path):
    class FlakyCluster:
        def __init__(self):
            self.calls, self.jobs = 0, {}

        def get_job_info(self, submission_id):
            if submission_id not in self.jobs:
                raise RuntimeError(
                    f"Request failed with status code 404: Job {submission_id} does not exist."
                )
            return type("Info", (), {"status": type("S", (), {"value": "PENDING"})()})()

        def submit_job(self, submission_id, **kwargs):
            self.calls += 1
            if self.calls < 3:
                raise RuntimeError(
                    "Request failed with status code 500: No available agent, try again later."
                )
            self.jobs[submission_id] = kwargs

    cluster = FlakyCluster()
    job = JobSpec.build(["self-train"], ROOT)
    result = submit(cluster, job, backoff=0.01)
    assert cluster.calls == 3 and list(cluster.jobs) == [job.submission_id()]
    assert result.existing is False
    assert submit(cluster, job, backoff=0.01).existing is True  # and the retry of the whole command
    assert cluster.calls == 3


def test_scheduled_ids_do_not_depend_on_the_deployed_code(tmp_path):
    ids = {}
    for commit in ("aaa", "bbb"):
        for code_in_id in (True, False):
            job = JobSpec.build(["self-train"], tmp_path, key="cron:2026-11-25T03:00:00+00:00")
            job.commit, job.code_in_id = commit, code_in_id
            ids[commit, code_in_id] = job.submission_id()
    assert ids["aaa", True] != ids["bbb", True]
    assert ids["aaa", False] == ids["bbb", False]
