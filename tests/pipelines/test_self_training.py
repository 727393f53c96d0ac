"""The whole loop against a real `mlflow server` on localhost: runs, registry, champion, pyfunc."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from pipelines.config import PipelineConfig
from pipelines.loop.self_training import run
from tests.synth.conftest import OpenAIStub


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """A real MLflow tracking server (SQLite store, local artifact root) on 127.0.0.1."""
    root = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination",
            str(root / "artifacts"),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            break
        except OSError:
            if process.poll() is not None:
                raise RuntimeError("mlflow server exited") from None
            time.sleep(0.5)
    else:
        process.kill()
        raise RuntimeError("mlflow server did not start")
    yield url
    process.terminate()
    process.wait(timeout=30)


def tiny_config(
    tmp_path, url: str, synth: dict | None = None, backbone: str = "minilm", **loop
) -> PipelineConfig:
    return PipelineConfig.model_validate(
        {
            "synth": synth or {},
            "name": "test",
            "storage_path": str(tmp_path / "runs"),
            "data": {"max_documents": 16},
            "model": {"backbone": backbone, "settings": {"hidden_size": 64, "max_len": 64, "dropout": 0.1}},
            "seed_train": {"epochs": 2, "lr_encoder": 1e-4, "lr_heads": 1e-3, "label_smoothing": 0.0},
            "train": {"epochs": 1, "batch_size": 8},
            "loop": {"iterations": 1, **loop},
            "tracking": {
                "tracking_uri": url,
                "experiment": "test-loop",
                "registered_model": "test-gliner",
                "sample_predictions": 5,
            },
        }
    )


@pytest.mark.slow
@pytest.mark.integration
def test_loop_tracks_registers_and_restarts_from_the_champion(
    ray_local, tmp_path, mlflow_server, tiny_backbone
):
    import mlflow
    from mlflow.tracking import MlflowClient

    # the LLM stage runs inside the loop, against an OpenAI-compatible endpoint on localhost
    stub = OpenAIStub()
    synth_config = tmp_path / "synth.yaml"
    synth_config.write_text(
        json.dumps(
            {
                "tasks": [{"kind": "ner", "labels": ["person", "organisation", "location", "date"]}],
                "engine": {"kind": "http", "base_url": stub.base_url, "batch_size": 4},
            }
        )
    )
    try:
        synth = {"mode": "generate", "config": str(synth_config)}
        summary = run(tiny_config(tmp_path, mlflow_server, synth, backbone=tiny_backbone))
    finally:
        stub.stop()
    assert len(summary.iterations) == 1 and summary.tracking_uri == mlflow_server
    assert len(stub.bodies) == 16  # one request per document, once per job
    client = MlflowClient(mlflow_server)

    parent = client.get_run(summary.run_id)
    assert json.loads(parent.data.params["labels"]) == ["person", "organisation", "location", "date"]
    assert parent.data.params["train.label_smoothing"] == "0.1"
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{summary.run_id}'"
    )
    names = {c.info.run_name for c in children}
    assert names == {"seed", "start-model", "synth", "iteration-1"}
    synth_run = next(c for c in children if c.info.run_name == "synth")
    assert synth_run.data.metrics["synth.rows"] == 16 and synth_run.data.metrics["synth.ner.ok"] > 0
    iteration = next(c for c in children if c.info.run_name == "iteration-1")
    assert {"dev_micro_f1", "weak_documents", "train_rows"} <= set(iteration.data.metrics)
    # the trained weights were mixed with the start model's, each weight scored, one kept
    assert {f"interpolation_f1/{w:g}" for w in (0.25, 0.5, 0.75, 1.0)} <= set(iteration.data.metrics)
    assert iteration.data.metrics["interpolation_weight"] in (0.25, 0.5, 0.75, 1.0)
    stats_path = client.download_artifacts(iteration.info.run_id, "label_statistics.json", str(tmp_path))
    stats = json.loads(Path(stats_path).read_text())
    assert stats["per_origin"].get("llm", 0) > 0  # LLM spans reached the training rows
    artifacts = {a.path for a in client.list_artifacts(iteration.info.run_id)}
    assert {"label_statistics.json", "dev_sample_predictions.html", "dev_report.txt"} <= artifacts
    seed = next(c for c in children if c.info.run_name == "seed")
    assert len(client.get_metric_history(seed.info.run_id, "train_loss")) >= 10  # per step, from the worker

    versions = client.search_model_versions("name='test-gliner'")
    assert len(versions) == 2  # the seed and iteration 1
    # provenance: every version names its datasets (by digest), its teacher and its settings
    for version in versions:
        assert version.tags["teacher/model"] == "meta-llama/Meta-Llama-3-8B-Instruct"
        assert len(version.tags["synth/ner/prompt_sha256"]) == 16
        assert version.tags["config_fingerprint"] == parent.data.params["config_fingerprint"]
        assert version.tags["git_commit"] and version.tags["label_model/method"].startswith("none")
        inputs = client.get_run(version.run_id).inputs.dataset_inputs
        contexts = {tag.value for i in inputs for tag in i.tags if tag.key == "mlflow.data.context"}
        assert contexts == {"corpus", "seed_gold", "dev", "training"}, contexts
    newest = max(versions, key=lambda v: int(v.version))
    assert newest.run_id == iteration.info.run_id  # the iteration's run registered it, with its rows
    training = [i.dataset for i in client.get_run(newest.run_id).inputs.dataset_inputs if i.dataset.name]
    assert any(json.loads(d.source)["uri"].endswith("iter_01/train_rows") for d in training)
    champion = client.get_model_version_by_alias("test-gliner", "champion")
    mlflow.set_tracking_uri(mlflow_server)
    model = mlflow.pyfunc.load_model("models:/test-gliner@champion")
    texts = ["Maria Lindqvist joined Helix Biotech in Lagos.", ""]
    out = model.predict(pd.DataFrame({"text": texts}))  # typed pyfunc: one Prediction per row
    assert [p.text for p in out] == texts and out[1].entities == []
    assert all(texts[0][e.start : e.end] == e.text for e in out[0].entities)
    assert {p.name for p in model.metadata.signature.params} == {"labels", "threshold"}

    # the next job starts from the champion: no seed training
    second = run(tiny_config(tmp_path, mlflow_server, backbone=tiny_backbone, iterations=0))
    runs = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{second.run_id}'"
    )
    assert {r.info.run_name for r in runs} == {"start-model"}
    assert second.champion_f1 == pytest.approx(float(champion.tags["dev_micro_f1"]), abs=1e-6)
