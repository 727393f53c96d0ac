"""The engine interface: chat requests with a JSON schema in, completions out.

`BatchEngine` (local transformers, OpenAI-compatible HTTP) answers a list of requests in
process; the Ray Data stage calls it from `map_batches`. vLLM on the cluster is a Ray Data
LLM processor instead (`synth.engines.vllm`), built from the same task specs. An engine
never raises for one bad request: the completion carries the error and the row becomes
`engine_error`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Request:
    messages: list[dict[str, str]]
    schema: dict[str, Any]
    max_tokens: int
    temperature: float = 0.0
    name: str = "answer"  # schema name, for response_format


@dataclass
class Completion:
    text: str | None = None
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None and self.text is not None


class BatchEngine(ABC):
    model_id: str

    @abstractmethod
    def generate(self, requests: list[Request]) -> list[Completion]:
        """One completion per request, in order; failures are completions with `error`."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (models, sessions)."""
