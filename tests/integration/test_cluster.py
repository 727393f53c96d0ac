"""The whole `self-train` job on a two-node Ray cluster, submitted with `gliner-selftrain submit`.

Nothing is shared between the nodes but the cluster itself and the servers: every path of the job is
an `s3://` URI on a real S3-compatible server (corpus, gold rows, backbone, weak labels, training
rows, Ray Train checkpoints, the champion, synth rows and the synth cache, the job log), MLflow is a
tracking server on PostgreSQL with its artifacts in S3 and basic-auth on, and the job's files reach
the nodes through the Jobs API (a working dir holding only the two config files). The nodes have
their own temp dirs; the sizes force the weak-labeling actors and the training workers onto both.
A second job starts from the champion stored there; a job with a wrong MLflow password stops before
any work with a one-line error.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.integration.conftest import ROOT
from tests.synth.conftest import OpenAIStub

SAMPLE = ROOT / "sample"
BUCKET = "s3://gliner-runs"
DOCUMENTS = 24

# Green since 2026-12-02 (about 7 minutes on 2 cores: over the suite's budget, so opt-in; docs/scaling.md).
pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.timeout(2400),
]
opt_in = pytest.mark.skipif(
    os.environ.get("GLINER_CLUSTER_TESTS") != "1", reason="set GLINER_CLUSTER_TESTS=1 to run the 2-node job"
)


def lines(path: Path, n: int) -> bytes:
    return "".join(path.read_text(encoding="utf-8").splitlines(keepends=True)[:n]).encode()


@pytest.fixture(scope="module")
def job_dir(tmp_path_factory, s3, mlflow_deployed, tiny_backbone) -> Path:
    """The data in S3; a working dir with the job's two config files (all the job uploads)."""
    s3.put(f"{BUCKET}/data/corpus.jsonl", lines(SAMPLE / "corpus.jsonl", DOCUMENTS))
    s3.put(f"{BUCKET}/data/seed.jsonl", lines(SAMPLE / "gold_seed.jsonl", 24))
    s3.put(f"{BUCKET}/data/dev.jsonl", lines(SAMPLE / "gold_dev.jsonl", 12))
    s3.upload_folder(Path(tiny_backbone), f"{BUCKET}/backbones/tiny-bert")
    folder = tmp_path_factory.mktemp("job")
    workers = {"num_workers": 2, "cpus_per_worker": 2, "torch_threads": 1, "batch_size": 4}
    config = {
        "name": "multinode",
        "storage_path": f"{BUCKET}/runs",
        "data": {
            "corpus": f"{BUCKET}/data/corpus.jsonl",
            "seed_gold": f"{BUCKET}/data/seed.jsonl",
            "dev_gold": f"{BUCKET}/data/dev.jsonl",
        },
        "model": {
            "backbone": f"{BUCKET}/backbones/tiny-bert",
            "settings": {"hidden_size": 32, "max_len": 48, "dropout": 0.0},
        },
        # 2 CPUs each on 3-CPU nodes: one actor / one training worker per node, a CPU left for Ray Data
        "weak_label": {"num_workers": 2, "cpus_per_worker": 2, "batch_size": 2},
        "seed_train": {
            **workers,
            "max_epochs": 2,
            "warmup_steps": 2,
            "lr_encoder": 1e-3,
            "lr_heads": 3e-3,
            "label_smoothing": 0.0,
        },
        "train": {**workers, "max_epochs": 1, "warmup_steps": 0},
        "loop": {"iterations": 1},
        "tracking": {
            "tracking_uri": mlflow_deployed.url,
            "experiment": "multinode",
            "registered_model": "multinode-gliner",
            "sample_predictions": 3,
        },
        "synth": {"mode": "generate", "config": "synth.yaml"},
    }
    (folder / "job.yaml").write_text(yaml.safe_dump(config))
    return folder


@pytest.fixture(scope="module")
def llm():
    stub = OpenAIStub()  # the LLM endpoint, on 127.0.0.1
    yield stub
    stub.stop()


def synth_config(folder: Path, llm: OpenAIStub) -> None:
    (folder / "synth.yaml").write_text(
        yaml.safe_dump(
            {
                "tasks": [{"kind": "ner", "labels": ["person", "organisation", "location", "date"]}],
                "engine": {"kind": "http", "base_url": llm.base_url, "batch_size": 4},
                "cache_dir": f"{BUCKET}/synth-cache",
            }
        )
    )


def submit(cluster, folder: Path, *extra: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    """`gliner-selftrain submit` from a laptop: only RAY_ADDRESS-style flags, no cluster secrets."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLFLOW_"))}
    return subprocess.run(
        [sys.executable, "-m", "jobs", "submit", "--address", cluster.address, "--working-dir", str(folder),
         "--", "self-train", "--config", "job.yaml", *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout, env={**env, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip


def tasks_by_node(address: str, needle: str) -> dict[str, int]:
    """Finished actor tasks whose name holds `needle`, counted per node (who did the work)."""
    from ray.util.state import list_tasks

    nodes: dict[str, int] = {}
    for task in list_tasks(address=address, detail=True, limit=10000, raise_on_missing_output=False):
        if needle in (task.name or "") and task.state == "FINISHED" and task.node_id:
            nodes[task.node_id] = nodes.get(task.node_id, 0) + 1
    return nodes


def actors_by_node(address: str, needle: str) -> dict[str, int]:
    from ray.util.state import list_actors

    nodes: dict[str, int] = {}
    for actor in list_actors(address=address, detail=True, limit=10000, raise_on_missing_output=False):
        if needle in actor.class_name:
            nodes[actor.node_id] = nodes.get(actor.node_id, 0) + 1
    return nodes


@pytest.fixture(scope="module")
def first_job(ray_cluster, job_dir, llm, s3):
    synth_config(job_dir, llm)
    started = time.monotonic()
    result = submit(ray_cluster, job_dir)
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    return result, seconds


@opt_in
def test_the_job_runs_on_both_nodes(first_job, ray_cluster):
    result, seconds = first_job
    print(f"first job: {seconds:.0f} s")
    assert result.stdout.rstrip().endswith("SUCCEEDED")
    labelers = actors_by_node(ray_cluster.address, "GLiNERLabeler")
    trainers = actors_by_node(ray_cluster.address, "RayTrainWorker")
    assert len(labelers) == 2, labelers  # weak-labeling actors on the head and on the worker node
    assert len(trainers) == 2, trainers  # and training workers (seed and iteration 1) too
    labeled = tasks_by_node(ray_cluster.address, "GLiNERLabeler")
    print(f"labeling tasks per node: {labeled}")
    assert len(labeled) == 2, labeled  # both actors labeled documents


@opt_in
def test_everything_the_job_keeps_is_in_object_storage(first_job, s3, llm):
    keys = s3.keys("gliner-runs", "runs/")
    runs = {k.split("/")[1] for k in keys}
    assert len(runs) == 1, runs
    run = f"runs/{runs.pop()}"
    has = lambda part: [k for k in keys if k.startswith(f"{run}/{part}")]  # noqa: E731
    assert has("iter_01/weak_labels/") and has("iter_01/train_rows/") and has("seed/train_rows/")
    assert [k for k in has("seed/ray_train/") if k.endswith("train_state.pt")]  # Ray Train checkpoints
    assert [k for k in has("iter_01/ray_train/") if k.endswith("model.safetensors")]
    assert f"{run}/champion/gliner_config.json" in keys and f"{run}/job.log" in keys
    assert has("synth_rows/")
    assert len(s3.keys("gliner-runs", "synth-cache/")) == DOCUMENTS  # one cached answer per document
    assert len(llm.bodies) == DOCUMENTS


@opt_in
def test_mlflow_on_postgres_and_s3_tracks_registers_and_names_the_champion(first_job, mlflow_deployed, s3):
    client = MlflowClient(mlflow_deployed.url)
    os.environ.update(mlflow_deployed.jobs_env)  # this process reads as the jobs' user
    try:
        experiment = client.get_experiment_by_name("multinode")
        runs = client.search_runs([experiment.experiment_id])
        names = {r.info.run_name for r in runs}
        assert {"seed", "start-model", "synth", "iteration-1"} <= names
        versions = client.search_model_versions("name='multinode-gliner'")
        assert len(versions) == 2  # the seed and iteration 1
        champion = client.get_model_version_by_alias("multinode-gliner", "champion")
        assert champion.version in {v.version for v in versions}
    finally:
        for key in mlflow_deployed.jobs_env:
            os.environ.pop(key, None)
    artifacts = s3.keys("mlflow", "artifacts/")
    assert [k for k in artifacts if k.endswith("model.safetensors")]  # the registered models' files
    assert [k for k in artifacts if k.endswith("job.log")]


@opt_in
def test_a_second_job_starts_from_the_champion_stored_there(first_job, ray_cluster, job_dir, mlflow_deployed):
    result = submit(ray_cluster, job_dir, "-s", "loop.iterations=0")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert "starting from the registry's champion, version" in result.stdout
    assert "training a seed model" not in result.stdout


def test_wrong_mlflow_credentials_stop_the_job_before_any_work(job_dir, s3, mlflow_deployed, llm):
    synth_config(job_dir, llm)
    before = s3.keys("gliner-runs", "runs/")
    env = {
        **os.environ,
        **s3.env,
        "MLFLOW_TRACKING_USERNAME": mlflow_deployed.jobs_env["MLFLOW_TRACKING_USERNAME"],
        "MLFLOW_TRACKING_PASSWORD": "not-the-password",
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
    }
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "jobs", "self-train", "--config", "job.yaml"],
        cwd=job_dir, capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout[-3000:] + result.stderr[-3000:]
    message = result.stderr.strip().splitlines()[-1]
    assert message == (
        f"error: MLflow at {mlflow_deployed.url} refused the credentials: set MLFLOW_TRACKING_USERNAME "
        "and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) to a user of that server"
    )
    assert "not-the-password" not in result.stdout + result.stderr
    assert [k for k in s3.keys("gliner-runs", "runs/") if "write-probe" not in k] == [
        k for k in before if "write-probe" not in k
    ]  # nothing written: no model, no rows
    print(f"refused after {time.monotonic() - started:.0f} s")
