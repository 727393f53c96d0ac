"""Ray Jobs submission: deterministic ids, credentials from the environment, a real head running a job."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from jobs.settings import UserError
from jobs.submit import JobSpec, auth_headers, cluster_client, submit
from tests.jobs.conftest import ROOT, cli


def spec(tmp_path, *args: str, key: str = "") -> JobSpec:
    return JobSpec.build(list(args), tmp_path, key=key)


def test_submission_id_is_a_function_of_what_runs(tmp_path):
    (tmp_path / "job.yaml").write_text("storage_path: /shared/runs\ntrain:\n  max_steps: 2\n")
    first = spec(tmp_path, "self-train", "--config", "job.yaml")
    assert spec(tmp_path, "self-train", "--config", "job.yaml").submission_id() == first.submission_id()
    assert spec(tmp_path, "self-train", "--config", "job.yaml", key="2026-11-25").submission_id() != (
        first.submission_id()
    )
    overridden = spec(tmp_path, "self-train", "--config", "job.yaml", "-s", "train.max_steps=9")
    assert overridden.submission_id() != first.submission_id()
    (tmp_path / "job.yaml").write_text("storage_path: /shared/runs\ntrain:\n  max_steps: 4\n")  # new contents
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
    job = JobSpec.build(["self-train", "--storage", "/shared/runs"], tmp_path, pip=["croniter"])
    blob = json.dumps([job.runtime_env(), job.metadata(), job.entrypoint()])
    assert "tok-123" not in blob and "pw-456" not in blob
    assert job.runtime_env()["working_dir"] == str(tmp_path.resolve())
    assert job.runtime_env()["pip"] == ["croniter"]
    assert ".venv" in job.runtime_env()["excludes"]
    assert auth_headers() == {"Authorization": "Bearer tok-123"}


def test_entrypoint_quotes_arguments(tmp_path):
    job = JobSpec.build(["predict", "--text", "Ada's book; rm -rf /", "--storage", "/r"], tmp_path)
    assert job.entrypoint() == "python -m jobs predict --text 'Ada'\"'\"'s book; rm -rf /' --storage /r"


@pytest.fixture
def project(tmp_path, fresh_model):
    """A working directory as a user has it: a checkpoint under runs/ (never uploaded), one in a
    folder its .gitignore ignores, one in a committed folder, and a config file."""
    import shutil

    root = tmp_path / "project"
    for folder in ("runs/st-1/champion", "scratch/model", "models/small"):  # paths are checked, not loaded
        shutil.copytree(fresh_model, root / folder, ignore=shutil.ignore_patterns("*.safetensors"))
    (root / ".gitignore").write_text("scratch/\n")
    (root / "rows").mkdir()
    (root / "job.yaml").write_text("storage_path: /shared/runs\n")
    return root


FIXES = "use an absolute path on storage the cluster shares, a URI (s3://…), or --working-dir"


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["label", "--model", "runs/st-1/champion"], "--model runs/st-1/champion is not uploaded"),
        (["label", "--model", "runs/champion"], "--model runs/champion is not uploaded"),  # not a hub id
        (["label", "-m", "scratch/model"], "--model scratch/model is not uploaded"),
        (["label", "--model", "../model"], "--model ../model is outside the uploaded working directory"),
        (["train", "--rows", "rowz"], "--rows rowz not found in the working directory"),
        (["label", "--model", "/nonexistent/model"], "--model /nonexistent/model does not exist here; if it"),
        (["self-train", "-s", "data.corpus=runs/c.jsonl"], "data.corpus runs/c.jsonl is not uploaded"),
        (["self-train", "-s", "data.dev_gold=../dev.jsonl"], "data.dev_gold ../dev.jsonl is outside"),
        (["self-train", "-s", "loop.start_from=runs/st-1/x"], "loop.start_from runs/st-1/x is not up"),
        (["evaluate", "--gold", "/nonexistent/dev.jsonl"], "--gold /nonexistent/dev.jsonl does not exist"),
    ],
)
def test_paths_the_job_cannot_see_are_refused_before_submitting(project, command, message):
    """Issue 16.3: a path in an excluded (or ignored) folder, outside the upload, or missing."""
    with pytest.raises(UserError) as caught:
        JobSpec.build([*command, "--config", "job.yaml"], project)
    assert str(caught.value).startswith(message), caught.value
    assert "\n" not in str(caught.value)
    if "not uploaded" in message:  # says why: which exclude or which ignore file
        why = ".gitignore ignores scratch/model/" if "scratch" in message else "runs/ is excluded from every"
        assert why in str(caught.value)
    assert "--allow-missing-paths" in str(caught.value) or FIXES in str(caught.value)


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["self-train"], "storage_path runs is relative: the job would write into its temporary copy"),
        (["label", "-m", "models/small", "--storage", "/r", "--output", "out"], "--output out is relative"),
        (["predict", "--text", "x"], "--model champion is read from the registry under storage_path runs"),
    ],
)
def test_relative_outputs_and_registries_are_refused(project, command, message):
    with pytest.raises(UserError, match=message):
        JobSpec.build(command, project)


@pytest.mark.parametrize(
    "command",
    [
        ["label", "--model", "models/small"],  # uploaded with the working directory
        ["label", "--model", "acme/gliner-small"],  # a hub id
        ["label", "--model", "champion"],  # the registry under the absolute storage_path
        ["label", "--model", "models:/gliner-selftrain@champion", "--storage", "runs", "--output", "/o"],
        ["train", "--rows", "rows", "--output", "s3://bucket/ft"],
        ["self-train", "-s", "data.corpus=s3://bucket/corpus/", "-s", "model.backbone=acme/deberta"],
    ],
)
def test_paths_the_job_can_see_pass(project, fresh_model, command):
    job = JobSpec.build(
        [*command, "--config", "job.yaml", "-s", "tracking.tracking_uri=http://mlflow:5000"], project
    )
    assert job.args[0] == command[0]
    JobSpec.build(["label", "--model", fresh_model, "--config", "job.yaml"], project)  # absolute, exists here


def test_paths_only_the_cluster_has_need_allow_missing_paths(project):
    command = ["self-train", "--config", "job.yaml", "-s", "data.corpus=/cluster/corpus.jsonl"]
    with pytest.raises(UserError, match="does not exist here; if it exists only on the cluster"):
        JobSpec.build(command, project)
    assert JobSpec.build(command, project, allow_missing_paths=True).args == command
    with pytest.raises(UserError, match="is not uploaded"):  # never uploaded: the flag does not help
        JobSpec.build(["label", "-m", "runs/x/y", "--config", "job.yaml"], project, allow_missing_paths=True)


@pytest.mark.integration
def test_submit_checks_paths_against_a_real_head_before_uploading(ray_head, monkeypatch, tmp_path):
    """`submit -- label --model runs/…/champion` stops here with one line, and nothing reaches the head."""
    monkeypatch.setenv("RAY_AUTH_TOKEN", ray_head.token)
    client = cluster_client(ray_head.address)
    before = {job.submission_id for job in client.list_jobs()}
    command = ["label", "--model", "runs/self-training-20261201/champion", "--storage", str(tmp_path)]
    result = cli("submit", "--address", ray_head.address, "--", *command, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: --model runs/self-training-20261201/champion is not uploaded with the working directory "
        f"{ROOT} ({'runs/' if (ROOT / 'runs').is_dir() else 'runs'} is excluded from every upload): {FIXES}"
    ]
    assert {job.submission_id for job in client.list_jobs()} == before


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
    assert "16 documents, " in result.stdout  # the job's own stage line, streamed back
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
    assert "16 documents, " in logs.stdout


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
    job = JobSpec.build(["self-train", "--storage", "/shared/runs"], ROOT)
    result = submit(cluster, job, backoff=0.01)
    assert cluster.calls == 3 and list(cluster.jobs) == [job.submission_id()]
    assert result.existing is False
    assert submit(cluster, job, backoff=0.01).existing is True  # and the retry of the whole command
    assert cluster.calls == 3


def test_scheduled_ids_do_not_depend_on_the_deployed_code(tmp_path):
    ids = {}
    for commit in ("aaa", "bbb"):
        for code_in_id in (True, False):
            job = JobSpec.build(["self-train", "-s", "storage_path=/r"], tmp_path, key="cron:2026-11-25T03")
            job.commit, job.code_in_id = commit, code_in_id
            ids[commit, code_in_id] = job.submission_id()
    assert ids["aaa", True] != ids["bbb", True]
    assert ids["aaa", False] == ids["bbb", False]


def test_the_cluster_config_from_outside_the_cluster_needs_allow_missing_paths(tmp_path):
    """infra/config/cluster.yaml reads gold sets under /shared, which only the cluster mounts: a
    submitter elsewhere (e.g. the CronJob's pod) must say so with --allow-missing-paths."""
    import shutil

    (tmp_path / "config").mkdir()
    shutil.copy(ROOT / "infra" / "config" / "cluster.yaml", tmp_path / "config" / "pipeline.yaml")
    command = ["self-train", "--config", "config/pipeline.yaml"]
    if not Path("/shared/gold/seed.jsonl").exists():
        with pytest.raises(UserError, match="data.seed_gold /shared/gold/seed.jsonl does not exist here"):
            JobSpec.build(command, tmp_path)
    assert JobSpec.build(command, tmp_path, allow_missing_paths=True).config_hash
