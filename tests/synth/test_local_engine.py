"""Local transformers engine: the tiny random Llama emits schema-valid JSON under xgrammar."""

from __future__ import annotations

import json

import jsonschema
import pytest

from synth import (
    GenerationConfig,
    LocalEngineConfig,
    NerTask,
    OpenIeTask,
    OpenNerTask,
    QaTask,
    RelationTask,
    SummaryTask,
    SynthConfig,
)
from synth.engines import make_engine
from synth.engines.local import LocalEngine
from synth.labeler import Labeler
from synth.tiny import LLAMA3_CHAT_TEMPLATE

TEXT = "Ada Lovelace met Charles Babbage in London in June 1833."


@pytest.fixture(scope="module")
def engine_and_labeler(tiny_llm: str):
    tasks = [
        NerTask(labels=["person", "location"]),
        OpenNerTask(),
        QaTask(questions=["Who?", "Where?"]),
        QaTask(name="qa_pairs", max_items=2),
        OpenIeTask(max_items=2),
        SummaryTask(max_items=2),
        RelationTask(relations=["met"], entity_labels=["person"]),
    ]
    config = SynthConfig(
        tasks=tasks,
        engine=LocalEngineConfig(model=tiny_llm, batch_size=4, torch_threads=1),
        generation=GenerationConfig(max_tokens=96),
    )
    engine = make_engine(config.engine)
    assert isinstance(engine, LocalEngine)
    return engine, Labeler(config)


def test_constrained_output_is_schema_valid_json_or_cut(engine_and_labeler) -> None:
    engine, labeler = engine_and_labeler
    names = list(labeler.specs)
    requests = [labeler.request(name, TEXT) for name in names]
    completions = engine.generate(requests)
    assert len(completions) == len(requests)
    finished = 0
    for name, completion in zip(names, completions, strict=True):
        assert completion.ok and completion.prompt_tokens > 0 and completion.completion_tokens > 0
        assert completion.completion_tokens <= 96
        if completion.finish_reason == "stop":
            jsonschema.validate(json.loads(completion.text), labeler.specs[name].schema)
            finished += 1
        else:  # cut at max_tokens: not JSON, the row becomes invalid_json (no crash)
            assert completion.finish_reason == "length"
            assert labeler.row({"doc_id": "d", "text": TEXT, "source": "", "task": name}, completion)[
                "status"
            ] == ("invalid_json")
    assert finished >= 2  # the constrained random model does close its JSON


def test_prompt_uses_the_tokenizers_chat_template(engine_and_labeler) -> None:
    engine, labeler = engine_and_labeler
    assert engine.tokenizer.chat_template == LLAMA3_CHAT_TEMPLATE
    prompt = engine.tokenizer.apply_chat_template(
        labeler.request("ner", TEXT).messages, add_generation_prompt=True, tokenize=False
    )
    assert prompt.startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n")
    assert prompt.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_small_token_cap_gives_invalid_json_not_a_crash(engine_and_labeler) -> None:
    engine, labeler = engine_and_labeler
    request = labeler.request("open_ie", TEXT)
    cut = engine.generate([type(request)(request.messages, request.schema, max_tokens=3)])[0]
    assert cut.finish_reason == "length" and cut.completion_tokens == 3
    row = labeler.row({"doc_id": "d", "text": TEXT, "source": "", "task": "open_ie"}, cut)
    assert row["status"] == "invalid_json" and row["extra"]["raw"] == cut.text


def test_tokenizer_without_chat_template_is_refused(tiny_llm: str, tmp_path) -> None:
    import shutil

    plain = tmp_path / "plain"
    shutil.copytree(tiny_llm, plain)
    for name in ("chat_template.jinja", "tokenizer_config.json"):
        path = plain / name
        if path.exists() and name.endswith(".jinja"):
            path.unlink()
        elif path.exists():
            data = json.loads(path.read_text())
            data.pop("chat_template", None)
            path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="chat template"):
        LocalEngine(LocalEngineConfig(model=str(plain)))
