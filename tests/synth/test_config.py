"""Typed configuration: clear errors for bad config, YAML/JSON loading."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from synth import (
    HttpEngineConfig,
    LocalEngineConfig,
    NerTask,
    QaTask,
    RelationTask,
    SynthConfig,
    VllmEngineConfig,
    load_config,
)


def test_defaults_and_discriminated_unions() -> None:
    config = SynthConfig.model_validate(
        {
            "tasks": [
                {"kind": "ner", "labels": ["person"]},
                {"kind": "qa", "name": "who", "questions": ["Who?"]},
            ],
            "engine": {"kind": "vllm"},
        }
    )
    assert isinstance(config.tasks[0], NerTask) and isinstance(config.tasks[1], QaTask)
    assert config.task_names == ["ner", "who"]
    assert isinstance(config.engine, VllmEngineConfig)
    assert config.model_id == "meta-llama/Meta-Llama-3-8B-Instruct"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"tasks": [{"kind": "ner", "labels": []}], "engine": {"kind": "vllm"}}, "labels"),
        ({"tasks": [{"kind": "ner", "labels": ["a", "a"]}], "engine": {"kind": "vllm"}}, "unique"),
        ({"tasks": [{"kind": "ner", "labels": ["a"], "colour": 1}], "engine": {"kind": "vllm"}}, "colour"),
        ({"tasks": [{"kind": "poetry"}], "engine": {"kind": "vllm"}}, "poetry"),
        ({"tasks": [{"kind": "summary"}, {"kind": "summary"}], "engine": {"kind": "vllm"}}, "task names"),
        ({"tasks": [], "engine": {"kind": "vllm"}}, "tasks"),
        (
            {"tasks": [{"kind": "summary"}], "engine": {"kind": "http", "base_url": "localhost:8000"}},
            "http://",
        ),
        (
            {
                "tasks": [{"kind": "summary"}],
                "engine": {"kind": "vllm", "engine_kwargs": {"tensor_parallel_size": 2}},
            },
            "typed fields",
        ),
        (
            {
                "tasks": [{"kind": "ner", "labels": ["a"], "label_descriptions": {"b": "x"}}],
                "engine": {"kind": "vllm"},
            },
            "not in labels",
        ),
        ({"tasks": [{"kind": "relations", "relations": []}], "engine": {"kind": "vllm"}}, "relations"),
    ],
)
def test_bad_config_is_a_clear_error(data: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SynthConfig.model_validate(data)


def test_load_yaml_and_json(tmp_path) -> None:
    (tmp_path / "synth.yaml").write_text(
        "tasks:\n  - {kind: relations, relations: [works for], entity_labels: [person, organisation]}\n"
        "engine: {kind: http, base_url: 'http://llm:8000/v1/', max_retries: 5}\n"
        "cache_dir: /tmp/cache\n"
    )
    config = load_config(tmp_path / "synth.yaml")
    assert isinstance(config.tasks[0], RelationTask)
    assert isinstance(config.engine, HttpEngineConfig)
    assert config.engine.base_url == "http://llm:8000/v1" and config.engine.max_retries == 5
    (tmp_path / "synth.json").write_text(
        json.dumps({"tasks": [{"kind": "open_ner"}], "engine": {"kind": "local", "model": "/m"}})
    )
    assert isinstance(load_config(tmp_path / "synth.json").engine, LocalEngineConfig)


def test_api_key_is_secret() -> None:
    engine = HttpEngineConfig(base_url="http://x/v1", api_key="sk-123")
    assert "sk-123" not in repr(engine) and "sk-123" not in engine.model_dump_json()


def test_synth_imports_no_ray_train_mlflow_or_gliner_core() -> None:
    import subprocess
    import sys

    code = (
        "import sys, synth, synth.engines.vllm, synth.engines.local, synth.engines.http, synth.tiny\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('mlflow', 'gliner_core')"
        " or m.startswith('ray.train')]\n"
        "print(bad)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"
