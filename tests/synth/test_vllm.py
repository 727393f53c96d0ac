"""vLLM via Ray Data LLM: the processor Ray builds from our config (Ray's own classes), and the
pre/postprocess functions around it. vLLM itself cannot run here (CUDA-only wheels)."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
import ray.data

from synth import SYNTH_SCHEMA, NerTask, QaTask, SynthConfig, VllmEngineConfig
from synth.engines import make_engine
from synth.engines.vllm import (
    build_vllm_processor,
    finalise,
    postprocess,
    preprocess,
    processor_config,
    to_contract,
)
from synth.labeler import Labeler, LabelerRef
from synth.tasks import build_specs

TEXT = "Ada Lovelace met Charles Babbage in London."


def config(model: str = "meta-llama/Meta-Llama-3-8B-Instruct", **engine) -> SynthConfig:
    return SynthConfig(
        tasks=[NerTask(labels=["person", "location"]), QaTask(questions=["Who met Babbage?"])],
        engine=VllmEngineConfig(model=model, **engine),
    )


def request_row(task: str = "ner", text: str = TEXT) -> dict:
    return {"doc_id": "d1", "text": text, "source": "s", "task": task}


def test_processor_config_maps_our_typed_config() -> None:
    from ray.data.llm import vLLMEngineProcessorConfig

    cfg = processor_config(
        config(
            tensor_parallel_size=2,
            concurrency=(1, 3),
            batch_size=32,
            max_model_len=4096,
            engine_kwargs={"enable_prefix_caching": True},
        ).engine
    )
    assert isinstance(cfg, vLLMEngineProcessorConfig)
    assert cfg.model_source == "meta-llama/Meta-Llama-3-8B-Instruct"
    assert cfg.engine_kwargs["tensor_parallel_size"] == 2 and cfg.engine_kwargs["max_model_len"] == 4096
    assert cfg.engine_kwargs["enable_prefix_caching"] is True
    assert cfg.concurrency == (1, 3) and cfg.batch_size == 32  # Ray's field; ours is num_workers
    assert cfg.should_continue_on_error is True
    assert cfg.chat_template_stage and cfg.tokenize_stage and cfg.detokenize_stage


def test_vllm_is_not_an_in_process_engine() -> None:
    with pytest.raises(ValueError, match="Ray Data LLM processor"):
        make_engine(config().engine)


def test_build_processor_stages_and_engine_settings(synth_ray, tiny_llm) -> None:
    processor = build_vllm_processor(config(model=tiny_llm, tensor_parallel_size=2, concurrency=3))
    assert processor.list_stage_names() == [
        "ChatTemplateStage",
        "TokenizeStage",
        "vLLMEngineStage",
        "DetokenizeStage",
    ]
    engine_stage = processor.get_stage_by_name("vLLMEngineStage")
    kwargs = engine_stage.fn_constructor_kwargs
    assert kwargs["model"] == tiny_llm and kwargs["engine_kwargs"]["tensor_parallel_size"] == 2
    assert kwargs["should_continue_on_error"] is True
    compute = engine_stage.map_batches_kwargs["compute"]
    assert (compute.min_size, compute.max_size) == (1, 3)  # Ray autoscales an int concurrency from 1
    assert processor.get_stage_by_name("ChatTemplateStage").fn_constructor_kwargs["model"] == tiny_llm


def test_preprocess_gives_messages_and_per_row_structured_outputs() -> None:
    cfg = config()
    specs = build_specs(cfg)
    for task in ("ner", "qa"):
        row = preprocess(request_row(task), LabelerRef(cfg))
        assert row["messages"] == specs[task].messages(TEXT)
        params = row["sampling_params"]
        assert params["max_tokens"] == cfg.generation.max_tokens and params["temperature"] == 0.0
        assert set(params["structured_outputs"]) == {"json"}
        assert json.loads(params["structured_outputs"]["json"]) == specs[task].schema
        assert {k: row[k] for k in ("doc_id", "text", "source", "task")} == request_row(task)


def test_preprocessed_rows_through_rays_chat_template_stage(synth_ray, tiny_llm) -> None:
    """Ray's own chat-template stage lays our messages out with the model's template."""
    cfg = config(model=tiny_llm)
    processor = build_vllm_processor(cfg)
    stage = processor.get_stage_by_name("ChatTemplateStage")
    ds = ray.data.from_items([request_row("ner"), request_row("qa")]).map(processor.preprocess)
    kwargs = stage.get_dataset_map_batches_kwargs(batch_size=8, data_column=processor.DATA_COLUMN)
    out = ds.map_batches_internal(stage.fn, **kwargs).take_all()
    prompts = {row[processor.DATA_COLUMN]["task"]: row[processor.DATA_COLUMN]["prompt"] for row in out}
    assert prompts["ner"].startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>")
    assert prompts["ner"].endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    assert f"<document>\n{TEXT}\n</document>" in prompts["qa"]


def test_postprocess_and_error_rows_to_contract(tmp_path) -> None:
    cfg = SynthConfig(
        tasks=[NerTask(labels=["person", "location"])], engine=VllmEngineConfig(), cache_dir=str(tmp_path)
    )
    answered = {
        **request_row(),
        "generated_text": json.dumps({"entities": [{"text": "Ada Lovelace", "label": "person"}]}),
        "num_input_tokens": 321,
        "num_generated_tokens": 17,
        "__inference_error__": "",
    }
    cut = {
        **answered,
        "doc_id": "d2",
        "text": "Another text.",
        "generated_text": '{"entities": [{"te',
        "__inference_error__": "",
    }
    run1 = LabelerRef(cfg, "run1")
    flat = [postprocess(answered, run1), postprocess(cut, run1)]
    flat = [{**row, "__inference_error__": ""} for row in flat]
    # an error row as Ray returns it: the preprocessed data, bypassing our postprocess
    failed = {**preprocess(request_row(), run1), "doc_id": "d3", "__inference_error__": "CUDA out of memory"}
    rows = [finalise(row, run1) for row in [*flat, failed]]
    table = to_contract(pa.Table.from_pylist(rows))
    assert table.schema.equals(SYNTH_SCHEMA)
    out = {r["doc_id"]: r for r in table.to_pylist()}
    assert out["d1"]["status"] == "ok" and out["d1"]["spans"] == [
        {"start": 0, "end": 12, "label": "person", "score": 1.0, "origin": "llm"}
    ]
    assert json.loads(out["d1"]["extra"])["usage"] == {"prompt_tokens": 321, "completion_tokens": 17}
    assert out["d2"]["status"] == "invalid_json"
    assert out["d3"]["status"] == "engine_error" and "CUDA" in json.loads(out["d3"]["extra"])["error"]
    # the answered rows were cached for the next run (not for this one: the split stays a partition)
    labeler = Labeler(cfg, "run1")
    key = labeler.key("ner", TEXT)
    assert labeler.cache is not None and labeler.cache.get(key, before_this_run=True) is None
    assert Labeler(cfg, "run2").cache.get(key, before_this_run=True).text == answered["generated_text"]


def _fake_vllm(row: dict) -> dict:
    """Stands in for Ray's chat-template/tokenize/vLLM/detokenize stages: what they add to a row."""
    from tests.synth.conftest import capitalised

    entities = [{"text": t, "label": "person"} for t in capitalised(row["text"])]
    if "explode" in row["text"]:
        return {**row, "__inference_error__": "engine died"}
    return {
        **row,
        "generated_text": json.dumps({"entities": entities}),
        "num_input_tokens": 50,
        "num_generated_tokens": 10,
        "__inference_error__": "",
    }


def test_vllm_synthesize_split_cache_and_no_row_lost(synth_ray, tmp_path, monkeypatch) -> None:
    """The dataset plumbing around the processor (blank and cached rows skip vLLM, error rows
    become engine_error, the union keeps every row) with the engine stages faked."""
    import synth.engines.vllm as vllm_module
    from synth import synthesize

    def fake_processor(config, run_id=""):
        def run(ds):
            ref = LabelerRef(config, run_id)
            ds = ds.map(lambda r: preprocess(r, ref)).map(_fake_vllm)
            return ds.map(lambda r: r if r["__inference_error__"] else postprocess(r, ref))

        return run

    monkeypatch.setattr(vllm_module, "build_vllm_processor", fake_processor)
    cfg = SynthConfig(tasks=[NerTask(labels=["person"])], engine=VllmEngineConfig(), cache_dir=str(tmp_path))
    docs = [
        {"doc_id": "a", "text": "Ada Lovelace wrote."},
        {"doc_id": "b", "text": "Grace Hopper coded."},
        {"doc_id": "c", "text": ""},
        {"doc_id": "d", "text": "it will explode"},
    ]
    first = {r["doc_id"]: r for r in synthesize(ray.data.from_items(docs), cfg).take_all()}
    assert {d: r["status"] for d, r in first.items()} == {
        "a": "ok",
        "b": "ok",
        "c": "empty",
        "d": "engine_error",
    }
    second = {r["doc_id"]: r for r in synthesize(ray.data.from_items(docs), cfg).take_all()}
    cached = {d: json.loads(r["extra"]).get("cached") for d, r in second.items()}
    assert cached == {"a": True, "b": True, "c": None, "d": False}
    assert all(second[d]["spans"] == first[d]["spans"] for d in first)
