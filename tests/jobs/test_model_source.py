"""Model references (folder, champion, models:/NAME@ALIAS, models:/NAME/VERSION, hub id) resolved into a
checked checkpoint folder against a real SQLite registry; the registered pyfunc's typed signature."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.config import PipelineConfig
from pipelines.registry.model_source import ModelSourceError, check_checkpoint, parse_reference, resolve_model
from tests.jobs.conftest import REGISTERED_LABELS, REGISTERED_THRESHOLD, ROOT


@pytest.fixture(autouse=True)
def _default_tracking_store(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def config(storage: str | Path) -> PipelineConfig:
    return PipelineConfig(storage_path=str(storage))


@pytest.mark.parametrize(
    ("reference", "kind", "name", "alias", "version"),
    [
        ("champion", "registry", None, None, None),
        ("models:/gliner-selftrain@champion", "registry", "gliner-selftrain", "champion", None),
        ("models:/gliner-selftrain/12", "registry", "gliner-selftrain", None, "12"),
        ("urchade/gliner_small-v2.1", "hub", None, None, None),
        ("s3://bucket/runs/champion", "uri", None, None, None),
        ("./urchade/gliner_small-v2.1", "folder", None, None, None),
        ("/abs/checkpoint", "folder", None, None, None),
        ("best", "folder", None, None, None),
        ("runs/ft/best", "folder", None, None, None),
        ("pipelines/ft", "folder", None, None, None),  # `pipelines/` is a folder here: a path, not a hub id
    ],
)
def test_references_are_classified(reference, kind, name, alias, version):
    parsed = parse_reference(reference, ROOT)
    assert (parsed.kind, parsed.name, parsed.alias, parsed.version) == (kind, name, alias, version)


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("models:/gliner-selftrain", "expected models:/NAME@ALIAS or models:/NAME/VERSION"),
        ("models:/gliner-selftrain/latest", "the version must be a number"),
        ("models:/a@b/c", "expected models:/NAME@ALIAS"),
        ("https://example.org/model", "unsupported model reference"),
        ("  ", "empty model reference"),
    ],
)
def test_bad_syntax_is_one_line(reference, message):
    with pytest.raises(ModelSourceError, match=message) as caught:
        parse_reference(reference)
    assert "\n" not in str(caught.value)


def test_a_folder_at_a_uri_is_downloaded_once_and_checked(tmp_path, fresh_model, monkeypatch):
    """Object storage through pyarrow (file:// here; the 2-node test reads s3:// from a real server)."""
    monkeypatch.setenv("GLINER_SELFTRAIN_CACHE", str(tmp_path / "cache"))
    uri = f"file://{Path(fresh_model).resolve()}"
    resolved = resolve_model(uri, config(tmp_path))
    assert Path(resolved.path).is_relative_to(tmp_path / "cache")
    assert sorted(p.name for p in Path(resolved.path).iterdir()) == sorted(
        p.name for p in Path(fresh_model).iterdir()
    )
    assert resolve_model(uri, config(tmp_path)).path == resolved.path  # downloaded once
    with pytest.raises(ModelSourceError, match="model not found: file://.*missing"):
        resolve_model(f"file://{tmp_path / 'missing'}", config(tmp_path))
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "model.safetensors").write_bytes(b"x")
    with pytest.raises(ModelSourceError, match="not a GLiNER checkpoint: no gliner_config.json"):
        resolve_model(f"file://{tmp_path / 'half'}", config(tmp_path))


def test_a_folder_is_checked(tmp_path, fresh_model):
    resolved = resolve_model(fresh_model, config(tmp_path))
    assert resolved.path == str(Path(fresh_model).resolve()) and resolved.labels is None
    with pytest.raises(ModelSourceError, match="no such folder"):
        resolve_model(str(tmp_path / "missing"), config(tmp_path))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelSourceError, match="not a GLiNER checkpoint: no gliner_config.json"):
        resolve_model(str(tmp_path / "empty"), config(tmp_path))


def test_a_truncated_checkpoint_names_the_file(tmp_path, fresh_model):
    broken = tmp_path / "broken"
    shutil.copytree(fresh_model, broken)
    weights = broken / "model.safetensors"
    with weights.open("r+b") as handle:
        handle.truncate(weights.stat().st_size // 2)
    with pytest.raises(ModelSourceError, match=f"corrupt checkpoint: {weights} cannot be read"):
        check_checkpoint(broken)
    (broken / "gliner_config.json").write_text("{not json")
    with pytest.raises(ModelSourceError, match="gliner_config.json is not valid JSON"):
        check_checkpoint(broken)


def test_no_registry_yet_says_how_to_get_one(tmp_path):
    for storage in (tmp_path / "nothing", tmp_path):  # no storage folder; a folder without mlflow.db
        with pytest.raises(ModelSourceError, match=r"no model registry yet .*run `make run`"):
            resolve_model("champion", config(storage))
    assert not (tmp_path / "nothing").exists() and not (tmp_path / "mlflow.db").exists()  # nothing created


def test_the_champion_comes_with_its_labels(registry):
    for reference in ("champion", "models:/gliner-selftrain@champion", "models:/gliner-selftrain/1"):
        resolved = resolve_model(reference, config(registry.storage))
        assert resolved.version == "1"
        assert resolved.labels == REGISTERED_LABELS and resolved.threshold == REGISTERED_THRESHOLD
        assert Path(resolved.path, "gliner_config.json").is_file()
        assert Path(resolved.path).is_relative_to(registry.storage)  # read in place, not copied
    assert resolve_model("champion", config(registry.storage)).description == (
        "gliner-selftrain version 1 (champion)"
    )


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("models:/gliner-selftrain/7", "gliner-selftrain has no version 7 .*versions: 1"),
        ("models:/gliner-selftrain@staging", "no version with alias 'staging'"),
        ("models:/other-model@champion", "no registered model 'other-model'"),
    ],
)
def test_registry_mistakes_are_one_line(registry, reference, message):
    with pytest.raises(ModelSourceError, match=message) as caught:
        resolve_model(reference, config(registry.storage))
    assert "\n" not in str(caught.value)


def test_no_champion_yet(registry):
    cfg = config(registry.storage)
    cfg.tracking.champion_alias = "gold"
    with pytest.raises(ModelSourceError, match=r"has no champion in the registry .* yet: run `make run`"):
        resolve_model("champion", cfg)


def test_a_hub_id_comes_from_the_hugging_face_cache(tmp_path, fresh_model):
    """A hub id resolves through the local HF cache (HF_HUB_OFFLINE=1: no download), in a real CLI run."""
    snapshot = tmp_path / "hub" / "models--acme--gliner-tiny" / "snapshots" / "abc123"
    shutil.copytree(fresh_model, snapshot)
    (tmp_path / "hub" / "models--acme--gliner-tiny" / "refs").mkdir()
    (tmp_path / "hub" / "models--acme--gliner-tiny" / "refs" / "main").write_text("abc123")
    env = {
        **os.environ,
        "HF_HUB_CACHE": str(tmp_path / "hub"),
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(ROOT),
    }
    run = lambda model: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "jobs", "predict", "--model", model, "--labels", "person", "--text", "Ada"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    found = run("acme/gliner-tiny")
    assert found.returncode == 0, found.stderr
    assert "model: hub model acme/gliner-tiny" in found.stderr and "labels: person" in found.stdout
    missing = run("acme/not-cached")
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    [line] = missing.stderr.strip().splitlines()  # one line: what is wrong and how to fix it
    assert line.startswith("error: model 'acme/not-cached' is not a local folder, and downloads are off")
    assert "hf download acme/not-cached" in line


def test_the_registered_pyfunc_has_a_typed_signature(registry):
    """Issue 16.4: `predict` is typed, so the registry holds an input/output signature (and MLflow does
    not warn about missing type hints); a DataFrame with a "text" column (and others) still works."""
    import mlflow
    import pandas as pd

    from pipelines.registry.models import Prediction

    uri = f"sqlite:///{registry.storage}/mlflow.db"
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        model = mlflow.pyfunc.load_model("models:/gliner-selftrain@champion")
    finally:
        mlflow.set_tracking_uri(previous)
    signature = model.metadata.signature
    assert signature.inputs.to_dict() == [
        {"type": "object", "properties": {"text": {"type": "string", "required": True}}, "required": True}
    ]
    entity = signature.outputs.to_dict()[0]["properties"]["entities"]["items"]["properties"]
    assert set(entity) == {"start", "end", "text", "label", "score"}
    params = {p.name: p.default for p in signature.params}
    assert params == {"labels": list(REGISTERED_LABELS), "threshold": REGISTERED_THRESHOLD}

    texts = ["Ada Lovelace met Charles Babbage in London.", ""]
    rows = [{"text": t} for t in texts]
    from_list = model.predict(rows, params={"threshold": 0.0001, "labels": ["person"]})
    assert all(isinstance(p, Prediction) for p in from_list) and [p.text for p in from_list] == texts
    assert from_list[0].entities and {e.label for e in from_list[0].entities} == {"person"}
    assert from_list[1].entities == []
    for entity in from_list[0].entities:
        assert texts[0][entity.start : entity.end] == entity.text
    frame = pd.DataFrame({"doc_id": ["a", "b"], "text": texts})  # the "text" column; others are ignored
    from_frame = model.predict(frame, params={"threshold": 0.0001, "labels": ["person"]})
    assert [p.model_dump() for p in from_frame] == [p.model_dump() for p in from_list]


def test_importing_the_tracking_module_does_not_warn():
    done = subprocess.run(
        [sys.executable, "-W", "always", "-c", "import pipelines.registry.tracking"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "type hints" not in done.stderr, done.stderr
    assert json.dumps(done.stderr) == '""'
