"""vLLM on the cluster through Ray Data LLM (`ray.data.llm`, Ray 2.60).

`vLLMEngineProcessorConfig` + `build_processor`: the model's own chat template (Ray's
chat-template stage reads it from the model's tokenizer), tokenize, vLLM, detokenize.
Structured output per row: `sampling_params={"structured_outputs": {"json": <schema>}}`.
The schema travels as a JSON *string* (vLLM's `StructuredOutputsParams.json` takes a str or a
dict): as a dict, Arrow would unify the different tasks' schemas into one struct type and add
null keys to each. `should_continue_on_error=True`: a failed row comes back with
`__inference_error__` and becomes `engine_error`; no row is lost.

vLLM itself is the `vllm` extra (GPU nodes). `ray.data.llm` and these builders import without
it; the engine stage needs it when it runs.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import ray.data

from synth.config import SynthConfig, VllmEngineConfig
from synth.engines.base import Completion
from synth.labeler import LabelerRef
from synth.rows import SYNTH_SCHEMA, to_table

PASS_THROUGH = ("doc_id", "text", "source", "task")
ERROR_COLUMN = "__inference_error__"


def processor_config(engine: VllmEngineConfig) -> Any:
    """Ray's `vLLMEngineProcessorConfig` for our typed engine config."""
    from ray.data.llm import vLLMEngineProcessorConfig

    engine_kwargs = {
        **engine.engine_kwargs,
        "tensor_parallel_size": engine.tensor_parallel_size,
        "pipeline_parallel_size": engine.pipeline_parallel_size,
        "max_model_len": engine.max_model_len,
        "gpu_memory_utilization": engine.gpu_memory_utilization,
    }
    return vLLMEngineProcessorConfig(
        model_source=engine.model,
        engine_kwargs=engine_kwargs,
        concurrency=engine.num_workers,
        batch_size=engine.batch_size,
        accelerator_type=engine.accelerator_type,
        max_concurrent_batches=engine.max_concurrent_batches,
        should_continue_on_error=True,
        chat_template_stage=True,
        tokenize_stage=True,
        detokenize_stage=True,
    )


def preprocess(row: dict[str, Any], ref: LabelerRef) -> dict[str, Any]:
    """Request row -> chat messages + per-row sampling params with the task's JSON schema."""
    spec = ref.get().specs[row["task"]]
    gen = ref.config.generation
    return {
        **{k: row[k] for k in PASS_THROUGH},
        "messages": spec.messages(row["text"]),
        "sampling_params": {
            "temperature": gen.temperature,
            "max_tokens": gen.max_tokens,
            "structured_outputs": {"json": spec.schema_json},
        },
    }


def postprocess(row: dict[str, Any], ref: LabelerRef) -> dict[str, Any]:
    """vLLM output row -> synth row (spans as JSON until `finalise`); fills the cache."""
    labeler = ref.get()
    completion = Completion(
        text=row.get("generated_text"),
        prompt_tokens=int(row.get("num_input_tokens") or 0),
        completion_tokens=int(row.get("num_generated_tokens") or 0),
    )
    if labeler.cache:
        labeler.cache.put(labeler.key(row["task"], row["text"]), completion)
    return _flat(labeler.row({k: row[k] for k in PASS_THROUGH}, completion))


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    import json

    return {
        **{k: row[k] for k in PASS_THROUGH},
        "status": row["status"],
        "spans_json": json.dumps(row["spans"]),
        "extra": json.dumps(row["extra"], ensure_ascii=False),
    }


def finalise(row: dict[str, Any], ref: LabelerRef) -> dict[str, Any]:
    """Any processor output row (ours, or an error row Ray passed around our postprocess)
    -> a flat synth row."""
    error = row.get(ERROR_COLUMN) or ""
    if error or "spans_json" not in row or row.get("spans_json") is None:
        labeler = ref.get()
        request = {k: row.get(k) or "" for k in PASS_THROUGH}
        return _flat(labeler.row(request, Completion(error=str(error) or "no output from the vLLM stage")))
    return {k: row[k] for k in (*PASS_THROUGH, "status", "spans_json", "extra")}


def to_contract(batch: Any) -> Any:
    """Flat rows (Arrow batch) -> the synth row schema."""
    import json

    rows = batch.to_pylist()
    for row in rows:
        row["spans"] = json.loads(row.pop("spans_json"))
    return to_table(rows)


def _offline(row: dict[str, Any], ref: LabelerRef) -> bool:
    """Rows answered without vLLM: blank documents and answers cached by an earlier run."""
    if not row["text"].strip():
        return True
    labeler = ref.get()
    return bool(labeler.cache and labeler.cache.get(labeler.key(row["task"], row["text"]), True) is not None)


def _answer_offline(row: dict[str, Any], ref: LabelerRef) -> dict[str, Any]:
    labeler = ref.get()
    request = {k: row[k] for k in PASS_THROUGH}
    if not row["text"].strip():
        return _flat(labeler.row(request, None))
    assert labeler.cache is not None
    hit = labeler.cache.get(labeler.key(row["task"], row["text"]), True)
    if hit is None:  # cannot happen: _offline said it was there and entries are not deleted
        hit = Completion(error="cache entry vanished")
    return _flat(labeler.row(request, hit, cached=True))


def build_vllm_processor(config: SynthConfig, run_id: str = "") -> Any:
    """The Ray Data LLM processor: request rows -> flat synth rows."""
    from ray.data.llm import build_processor

    if not isinstance(config.engine, VllmEngineConfig):
        raise ValueError("build_vllm_processor needs engine.kind == 'vllm'")
    labeler = LabelerRef(config, run_id)
    return build_processor(
        processor_config(config.engine),
        preprocess=partial(preprocess, ref=labeler),
        postprocess=partial(postprocess, ref=labeler),
    )


def vllm_synthesize(requests: ray.data.Dataset, config: SynthConfig, run_id: str) -> ray.data.Dataset:
    """Request rows -> synth rows, vLLM only for rows neither blank nor cached."""
    labeler = LabelerRef(config, run_id)
    offline = partial(_offline, ref=labeler)
    todo = requests.filter(lambda row: not offline(row))
    answered = build_vllm_processor(config, run_id)(todo).map(partial(finalise, ref=labeler))
    done = requests.filter(offline).map(partial(_answer_offline, ref=labeler))
    rows = answered.union(done)
    return rows.map_batches(to_contract, batch_format="pyarrow")


__all__ = ["SYNTH_SCHEMA", "build_vllm_processor", "processor_config", "vllm_synthesize"]
