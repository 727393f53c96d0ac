"""Object storage without a cluster: the helpers the stages use on `s3://…`, against a real S3 server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.data.read import read_gold
from pipelines.data.storage import (
    check_writable,
    copy_tree,
    is_dir,
    is_file,
    local_copy,
    save_model,
    write_text,
)
from synth.cache import ResponseCache
from synth.engines.base import Completion

pytestmark = pytest.mark.integration


def test_a_model_saved_to_s3_comes_back_as_a_local_folder_once(s3_env, tiny_backbone, tmp_path, monkeypatch):
    from gliner_core import GLiNER

    monkeypatch.setenv("GLINER_SELFTRAIN_CACHE", str(tmp_path / "cache"))
    model = GLiNER.from_backbone(tiny_backbone, hidden_size=32, max_len=48)
    uri = save_model(model, "s3://gliner-runs/helpers/model")
    assert is_dir(uri) and is_file(f"{uri}/gliner_config.json") and not is_dir(f"{uri}-missing")
    local = local_copy(uri)
    assert Path(local).name == "model" and (Path(local) / "model.safetensors").is_file()
    assert local_copy(uri) == local  # downloaded once
    reloaded = GLiNER.from_pretrained(local)
    text, labels = "Maria Lindqvist joined Helix Biotech.", ["person", "organisation"]
    assert reloaded.predict_entities(text, labels, threshold=0.0) == model.predict_entities(
        text, labels, threshold=0.0
    )
    copy_tree(uri, "s3://gliner-runs/helpers/copy")  # bucket to bucket
    write_text("s3://gliner-runs/helpers/copy/README", "changed")  # new content: a new download
    assert local_copy("s3://gliner-runs/helpers/copy") != local_copy(uri)
    with pytest.raises(FileNotFoundError, match="nothing at s3://gliner-runs/helpers/none"):
        local_copy("s3://gliner-runs/helpers/none")


def test_an_unwritable_bucket_fails_before_any_work(s3_env):
    check_writable("s3://gliner-runs/probe-here")
    assert not [k for k in s3_env.keys("gliner-runs", "probe-here") if "write-probe" in k]  # removed
    with pytest.raises(PermissionError, match="cannot write to s3://no-such-bucket/runs"):
        check_writable("s3://no-such-bucket/runs")


def test_synth_cache_and_gold_rows_on_s3(s3_env):
    cache = ResponseCache("s3://gliner-runs/helpers/synth-cache", run_id="run-1")
    answer = Completion(text='{"entities": []}', prompt_tokens=5, completion_tokens=3, finish_reason="stop")
    assert cache.get("ab" * 32) is None
    cache.put("ab" * 32, answer)
    assert cache.get("ab" * 32) == answer
    assert cache.get("ab" * 32, before_this_run=True) is None  # written by this run
    again = ResponseCache("s3://gliner-runs/helpers/synth-cache", run_id="run-2")
    assert again.get("ab" * 32, True) == answer
    assert s3_env.keys("gliner-runs", "helpers/synth-cache/") == [f"helpers/synth-cache/ab/{'ab' * 32}.json"]

    rows = [{"text": "Ada Lovelace lived in London.", "spans": [{"start": 0, "end": 12, "label": "person"}]}]
    s3_env.put("s3://gliner-runs/gold/dev.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())
    assert read_gold("s3://gliner-runs/gold/dev.jsonl") == rows


def test_storage_on_s3_needs_an_mlflow_server(s3_env, monkeypatch):
    from pipelines.registry.tracking import tracking_uri

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(ValueError, match="set tracking.tracking_uri"):
        tracking_uri(None, "s3://gliner-runs/runs")
    assert tracking_uri("http://mlflow:5000", "s3://gliner-runs/runs") == "http://mlflow:5000"
