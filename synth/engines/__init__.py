"""LLM engines: local transformers, OpenAI-compatible HTTP, vLLM via `ray.data.llm`."""

from __future__ import annotations

from synth.config import HttpEngineConfig, LocalEngineConfig, VllmEngineConfig
from synth.engines.base import BatchEngine, Completion, Request


def make_engine(config: LocalEngineConfig | HttpEngineConfig | VllmEngineConfig) -> BatchEngine:
    """The in-process engine of a config. vLLM runs as a Ray Data processor instead
    (`synth.engines.vllm.build_vllm_processor`)."""
    if isinstance(config, LocalEngineConfig):
        from synth.engines.local import LocalEngine

        return LocalEngine(config)
    if isinstance(config, HttpEngineConfig):
        from synth.engines.http import HttpEngine

        return HttpEngine(config)
    raise ValueError("the vLLM engine runs as a Ray Data LLM processor, not in process: use synthesize()")


__all__ = ["BatchEngine", "Completion", "Request", "make_engine"]
