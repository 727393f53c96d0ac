"""Task specs: one module per task (prompt, JSON schema, parser/validator, converter)."""

from __future__ import annotations

from functools import lru_cache

from synth.config import SynthConfig, TaskConfig
from synth.tasks.base import Answer, Converted, TaskSpec
from synth.tasks.ner import NerSpec
from synth.tasks.open_ie import OpenIeSpec
from synth.tasks.open_ner import OpenNerSpec
from synth.tasks.qa import QaSpec
from synth.tasks.relations import RelationSpec
from synth.tasks.summary import SummarySpec

SPECS: dict[str, type[TaskSpec]] = {
    spec.kind: spec for spec in (NerSpec, OpenNerSpec, QaSpec, OpenIeSpec, SummarySpec, RelationSpec)
}


def build_spec(task: TaskConfig, system_prompt: str | None = None) -> TaskSpec:
    """The spec of one task config (raises `ValueError` for bad few-shot examples)."""
    return SPECS[task.kind](task, system_prompt=system_prompt)


@lru_cache(maxsize=16)
def _specs_from_json(config_json: str) -> dict[str, TaskSpec]:
    config = SynthConfig.model_validate_json(config_json)
    return {t.task_name: build_spec(t, config.generation.system_prompt) for t in config.tasks}


def build_specs(config: SynthConfig) -> dict[str, TaskSpec]:
    """Task name -> spec, built once per process per config."""
    return _specs_from_json(config.model_dump_json())


__all__ = ["SPECS", "Answer", "Converted", "TaskSpec", "build_spec", "build_specs"]
