"""The whole loop against a real `mlflow server` on localhost: runs, registry, champion, pyfunc.

The job is the session's `loop_run` (tests/loop_run.py: 16 documents, a tiny encoder, the LLM stage
against a stub, one iteration), run once; each test below looks at one side of what it left."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.loop_run import LABELS

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture(scope="module")
def client(loop_run):
    from mlflow.tracking import MlflowClient

    return MlflowClient(loop_run.server.url)


@pytest.fixture(scope="module")
def children(loop_run, client) -> dict:
    """The job's nested runs by name."""
    parent = client.get_run(loop_run.summary.run_id)
    found = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    return {c.info.run_name: c for c in found}


def test_the_job_tracks_every_stage_and_the_llm_rows(loop_run, client, children, tmp_path):
    summary = loop_run.summary
    assert len(summary.iterations) == 1 and summary.tracking_uri == loop_run.url
    assert loop_run.llm_requests == 16  # one request per document, once per job
    parent = client.get_run(summary.run_id)
    assert json.loads(parent.data.params["labels"]) == LABELS
    assert parent.data.params["train.label_smoothing"] == "0.1"
    assert set(children) == {"seed", "start-model", "synth", "iteration-1"}
    synth_run = children["synth"]
    assert synth_run.data.metrics["synth.rows"] == 16 and synth_run.data.metrics["synth.ner.ok"] > 0
    iteration = children["iteration-1"]
    assert {"dev_micro_f1", "weak_documents", "train_rows"} <= set(iteration.data.metrics)
    # the trained weights were mixed with the start model's, each weight scored, one kept
    assert {f"interpolation_f1/{w:g}" for w in (0.25, 0.5, 0.75, 1.0)} <= set(iteration.data.metrics)
    assert iteration.data.metrics["interpolation_weight"] in (0.25, 0.5, 0.75, 1.0)
    stats_path = client.download_artifacts(iteration.info.run_id, "label_statistics.json", str(tmp_path))
    stats = json.loads(Path(stats_path).read_text())
    assert stats["per_origin"].get("llm", 0) > 0  # LLM spans reached the training rows
    artifacts = {a.path for a in client.list_artifacts(iteration.info.run_id)}
    assert {"label_statistics.json", "dev_sample_predictions.html", "dev_report.txt"} <= artifacts
    seed = children["seed"]
    assert len(client.get_metric_history(seed.info.run_id, "train_loss")) >= 10  # per step, from the worker


def test_every_registered_version_names_its_data_teacher_and_settings(loop_run, client, children):
    parent = client.get_run(loop_run.summary.run_id)
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
    assert newest.run_id == children["iteration-1"].info.run_id  # the iteration's run registered it
    training = [i.dataset for i in client.get_run(newest.run_id).inputs.dataset_inputs if i.dataset.name]
    assert any(json.loads(d.source)["uri"].endswith("iter_01/train_rows") for d in training)


def test_the_champion_serves_as_a_typed_pyfunc(loop_run):
    import mlflow

    mlflow.set_tracking_uri(loop_run.server.url)
    model = mlflow.pyfunc.load_model("models:/test-gliner@champion")
    texts = ["Maria Lindqvist joined Helix Biotech in Lagos.", ""]
    out = model.predict(pd.DataFrame({"text": texts}))  # typed pyfunc: one Prediction per row
    assert [p.text for p in out] == texts and out[1].entities == []
    assert all(texts[0][e.start : e.end] == e.text for e in out[0].entities)
    assert {p.name for p in model.metadata.signature.params} == {"labels", "threshold"}


def test_the_next_job_starts_from_the_champion(loop_run, client, tmp_path):
    """No seed training: the registry's champion is the start model, with the dev F1 it was promoted at."""
    from pipelines.loop.self_training import run

    champion = client.get_model_version_by_alias("test-gliner", "champion")
    second = run(loop_run.variant(tmp_path / "runs", synth={}, loop={"iterations": 0}))
    experiment = client.get_run(loop_run.summary.run_id).info.experiment_id
    runs = client.search_runs([experiment], filter_string=f"tags.mlflow.parentRunId = '{second.run_id}'")
    assert {r.info.run_name for r in runs} == {"start-model"}
    assert second.champion_f1 == pytest.approx(float(champion.tags["dev_micro_f1"]), abs=1e-6)
