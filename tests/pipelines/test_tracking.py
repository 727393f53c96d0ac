"""Tracking defaults: a SQLite store beside the run data, artifacts beside it, not in ./mlruns."""

from __future__ import annotations

from pathlib import Path

import mlflow

from pipelines.registry.tracking import flatten, own_tracking_env, tracking_uri, use_experiment


def test_default_store_and_artifacts_live_under_the_storage_path(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    uri = tracking_uri(None, "runs")
    assert uri == f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}"  # absolute: Ray workers run elsewhere
    use_experiment("exp", uri, "runs")
    with mlflow.start_run():
        mlflow.log_text("hello", "note.txt")
    experiment = mlflow.get_experiment_by_name("exp")
    assert experiment.artifact_location == (tmp_path / "runs" / "mlartifacts").as_uri()
    assert not (tmp_path / "mlruns").exists()
    assert list(Path(tmp_path / "runs" / "mlartifacts").rglob("note.txt"))


def test_env_uri_and_flattened_params(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking:5000")
    assert tracking_uri(None, "runs") == "http://tracking:5000"
    assert tracking_uri("sqlite:////x.db", "runs") == "sqlite:////x.db"
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": "x", "e": {}}) == {
        "a.b": "1",
        "a.c": "[1, 2]",
        "d": "x",
        "e": "{}",
    }


def test_a_second_job_in_the_process_gets_its_own_default_store(tmp_path, monkeypatch):
    """mlflow.set_tracking_uri exports $MLFLOW_TRACKING_URI: a job puts it back as it found it."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with own_tracking_env():
        use_experiment("exp", tracking_uri(None, str(tmp_path / "first")), str(tmp_path / "first"))
    assert tracking_uri(None, str(tmp_path / "second")) == f"sqlite:///{tmp_path / 'second' / 'mlflow.db'}"

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking:5000")  # the user's own setting stays
    with own_tracking_env():
        mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'other.db'}")
    assert tracking_uri(None, "runs") == "http://tracking:5000"
