"""One synth worker's helper, shared by every engine's path: prompts, cache keys, output rows.

Built once per worker process (the task specs compile JSON schemas and few-shot examples)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from synth.cache import ResponseCache, cache_key, text_hash
from synth.config import SynthConfig
from synth.engines.base import Completion, Request
from synth.rows import blank_document_row, label_completion
from synth.tasks import build_specs


class Labeler:
    """Per-process helper shared by the engines' paths: prompts, cache keys, row building."""

    def __init__(self, config: SynthConfig, run_id: str = ""):
        self.config = config
        self.specs = build_specs(config)
        self.cache = ResponseCache(config.cache_dir, run_id) if config.cache_dir else None

    def request(self, task: str, text: str) -> Request:
        spec = self.specs[task]
        gen = self.config.generation
        return Request(
            messages=spec.messages(text),
            schema=spec.schema,
            max_tokens=gen.max_tokens,
            temperature=gen.temperature,
            name=f"{spec.kind}_answer",
        )

    def key(self, task: str, text: str) -> str:
        gen = self.config.generation
        return cache_key(
            self.config.model_id,
            self.specs[task].prompt_hash(),
            text_hash(text),
            gen.max_tokens,
            gen.temperature,
        )

    def row(
        self, request_row: dict[str, Any], completion: Completion | None, cached: bool = False
    ) -> dict[str, Any]:
        text = request_row["text"]
        if completion is None:
            status, spans, extra = blank_document_row()
        else:
            spec = self.specs[request_row["task"]]
            status, spans, extra = label_completion(spec, text, completion, self.config.grounding)
            extra["cached"] = cached
        return {**request_row, "status": status, "spans": spans, "extra": extra}


_WORKER_LABELERS: dict[str, Labeler] = {}


@dataclass(frozen=True)
class LabelerRef:
    """A picklable handle on a worker's `Labeler`, for functions Ray calls once per row.

    The config travels with the function once; `get()` builds the Labeler on the first row a worker
    process sees and finds it by a key computed where the handle was made (no per-row work)."""

    config: SynthConfig
    run_id: str = ""
    key: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.key:
            blob = f"{self.config.model_dump_json()}\0{self.run_id}".encode()
            object.__setattr__(self, "key", hashlib.sha256(blob).hexdigest())

    def get(self) -> Labeler:
        labeler = _WORKER_LABELERS.get(self.key)
        if labeler is None:
            labeler = _WORKER_LABELERS[self.key] = Labeler(self.config, self.run_id)
        return labeler
