"""`export` (ONNX for serving, logged with the registered version) and `lineage` (a version's
provenance) against a local SQLite MLflow registry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from jobs.cli import main
from tests.jobs.conftest import ROOT
from tests.official import build_official
from tests.test_parity import LABELS, TEXTS

pytestmark = pytest.mark.integration  # a real MLflow store; ONNX exports take tens of seconds

NAME = "gliner-selftrain"  # the config's default registered model
THRESHOLD = 0.5


@dataclass
class Registered:
    storage: str  # storage_path: its mlflow.db holds the registry
    uri: str
    checkpoint: str  # the registered checkpoint (version 1, alias champion)
    gold: str  # the checkpoint's own entities as gold: fp32 scores 1.0, int8 shows its loss


@pytest.fixture(scope="module")
def registered(tmp_path_factory, minilm_path) -> Registered:
    """A span model with spread scores (heads scaled, tests/official.py), registered the way the loop
    registers: with a synth teacher, a label model's report and training rows as its provenance.
    Logged in a subprocess so this process's MLflow state stays untouched."""
    root = tmp_path_factory.mktemp("registered")
    model = build_official(minilm_path, max_len=48, seed=0, hidden_size=256)
    model.save_pretrained(root / "checkpoint")
    texts = TEXTS[:-1]  # one window each at max_len 48
    found = model.batch_predict_entities(texts, LABELS, threshold=THRESHOLD)
    gold = root / "gold.jsonl"
    rows = [{"text": t, "spans": e} for t, e in zip(texts, found, strict=True)]
    gold.write_text("".join(json.dumps(row) + "\n" for row in rows))
    synth = root / "synth.json"
    synth.write_text(
        json.dumps(
            {
                "tasks": [{"kind": "ner"}],
                "engine": {"kind": "http", "base_url": "http://127.0.0.1:9/v1", "model": "teacher-llm"},
            }
        )
    )
    storage = root / "runs"
    script = f"""
import mlflow, pyarrow as pa, pyarrow.parquet as pq
from pipelines.config import PipelineConfig
from pipelines.registry.provenance import job_provenance
from pipelines.reports import MergeReport
from pipelines.registry.tracking import tracking_uri, use_experiment
from pipelines.registry.models import Registry
from tests.pipelines.test_provenance import label_model_report
config = PipelineConfig.model_validate({{
    "storage_path": {str(storage)!r}, "data": {{"labels": {LABELS!r}}},
    "synth": {{"mode": "generate", "config": {str(synth)!r}}},
    "merge": {{"label_model": {{"method": "dawid_skene"}}}},
}})
rows = {str(root / "train_rows")!r}
pa.parquet.write_to_dataset(pa.table({{"text": ["a", "b", "c"]}}), rows)
uri = tracking_uri(None, config.storage_path)
use_experiment("test-provenance", uri, config.storage_path)
registry = Registry(uri, config.tracking.registered_model, config.tracking.champion_alias)
merged = MergeReport(rows, 3, 0, {{}}, {{}}, 0.1, label_model=label_model_report())
with mlflow.start_run():
    provenance = job_provenance(config).for_model(rows, merged, config)
    labels = {{label: label for label in {LABELS!r}}}
    version = registry.register({str(root / "checkpoint")!r}, labels, {THRESHOLD}, provenance)
registry.promote(version, 0.5)
print(uri)
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**{k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}, "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return Registered(str(storage), done.stdout.strip().splitlines()[-1], str(root / "checkpoint"), str(gold))


@pytest.fixture(autouse=True)
def _no_env_uri(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def run_main(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def version_tags(registered: Registered, version: str = "1") -> dict[str, str]:
    from mlflow.tracking import MlflowClient

    return dict(MlflowClient(registered.uri).get_model_version(NAME, version).tags)


def test_lineage_shows_datasets_and_tags(capsys, registered):
    code, out, err = run_main(capsys, "lineage", f"{NAME}@1", "--storage", registered.storage, "--json")
    assert code == 0, err
    data = json.loads(out)
    contexts = {d["context"]: d for d in data["datasets"]}
    assert set(contexts) == {"corpus", "seed_gold", "dev", "training"}
    assert contexts["training"]["rows"] == 3 and len(contexts["training"]["digest"]) == 16
    assert contexts["dev"]["source"].endswith("gold_dev.jsonl")
    tags = data["tags"]
    assert tags["teacher/model"] == "teacher-llm" and len(tags["synth/ner/prompt_sha256"]) == 16
    assert tags["label_model/method"] == "dawid_skene" and tags["label_model/accuracy/gliner"] == "0.8000"
    assert tags["git_commit"] and len(tags["config_fingerprint"]) == 12
    assert data["aliases"] == ["champion"]

    # the same version by alias (in the three spellings), for a person to read
    for reference in ("@champion", f"{NAME}@champion", "champion"):
        code, text, err = run_main(capsys, "lineage", reference, "--storage", registered.storage)
        assert code == 0, err
        assert text.startswith(f"{NAME} version 1 (champion)")
    for heading in ("datasets:", "teacher (LLM labels):", "label model:", "code and config:"):
        assert f"\n{heading}\n" in text
    assert f"digest {contexts['training']['digest']}, 3 rows" in text
    assert "  teacher/model: teacher-llm" in text

    code, _, err = run_main(capsys, "lineage", f"{NAME}@9", "--tracking-uri", registered.uri)
    assert code == 2 and err.startswith(f"error: no {NAME}@9 in the registry") and err.count("\n") == 1
    code, _, err = run_main(capsys, "lineage", "gliner", "--storage", registered.storage)
    assert code == 2 and "give NAME@VERSION or NAME@ALIAS" in err


def test_export_a_folder_to_onnx_predicts_like_torch(capsys, registered, tmp_path):
    import gliner_core

    out = tmp_path / "serving"
    args = ["export", "--model", registered.checkpoint, "--format", "onnx", "--output", str(out)]
    code, stdout, err = run_main(capsys, *args, "--storage", str(tmp_path / "runs"))
    assert code == 0, err
    assert "ONNX (fp32)" in stdout and "logged with" not in stdout  # a folder is no registry version
    onnx = gliner_core.load(out, backend="onnx")
    torch_model = gliner_core.load(registered.checkpoint)
    expected = torch_model.batch_predict_entities(TEXTS[:-1], LABELS, threshold=THRESHOLD)
    assert sum(map(len, expected)) > 5
    got = onnx.batch_predict_entities(TEXTS[:-1], LABELS, threshold=THRESHOLD)
    assert [[(e["start"], e["end"], e["label"]) for e in row] for row in got] == [
        [(e["start"], e["end"], e["label"]) for e in row] for row in expected
    ]

    code, _, err = run_main(capsys, *args, "--storage", str(tmp_path / "runs"))
    assert code == 2 and "already exists" in err and err.count("\n") == 1
    for bad, message in (
        (["--format", "tflite"], "--format 'tflite' is not supported"),
        (["--quantize", "int4"], "--quantize 'int4' is not supported"),
        (["--gold", registered.gold], "--gold is for the int8 check"),
    ):
        code, _, err = run_main(capsys, "export", "--model", registered.checkpoint, *bad)
        assert code == 2 and err == f"error: {err.removeprefix('error: ')}" and message in err, err


def test_int8_over_the_limit_is_refused_and_not_logged(capsys, registered, tmp_path):
    out = tmp_path / "int8"
    code, _, err = run_main(
        capsys,
        "export",
        *("--model", f"models:/{NAME}/1", "--quantize", "int8", "--gold", registered.gold),
        *("--output", str(out), "--storage", registered.storage, "-s", "export.int8_max_f1_drop=0"),
    )
    assert code == 1
    assert "error: int8 refused for serving: micro F1 1.0000 (fp32)" in err
    assert "export.int8_max_f1_drop 0" in err
    assert not (out / "model_int8.onnx").exists() and (out / "model.onnx").is_file()
    assert not [k for k in version_tags(registered) if k.startswith("serving/")]


def test_accepted_export_is_logged_with_the_champion(capsys, registered, tmp_path):
    from mlflow.tracking import MlflowClient

    out = tmp_path / "champion-onnx"
    code, stdout, err = run_main(
        capsys,
        "export",
        *("--quantize", "int8", "--gold", registered.gold, "--output", str(out)),
        *("--storage", registered.storage, "-s", "export.int8_max_f1_drop=1"),
    )  # --model defaults to the champion
    assert code == 0, err
    tags = version_tags(registered)
    assert tags["serving/precision"] == "int8" and 0.0 < float(tags["serving/int8_f1_drop"]) <= 1.0
    assert tags["serving/onnx"].endswith("/serving/onnx") and tags["serving/onnx"] in stdout
    client = MlflowClient(registered.uri)
    logged = {Path(a.path).name for a in client.list_artifacts(tags["serving/run_id"], "serving/onnx")}
    assert {"model.onnx", "model_int8.onnx", "onnx.json", "gliner_config.json"} <= logged
    assert tags["serving/run_id"] == client.get_model_version(NAME, "1").run_id  # the registering run

    code, text, _ = run_main(capsys, "lineage", "@champion", "--storage", registered.storage)
    assert code == 0 and "\nserving:\n" in text and "serving/precision: int8" in text
