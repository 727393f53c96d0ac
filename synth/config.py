"""Typed configuration of the synth stage: tasks, engine, grounding, generation, cache.

One pydantic object (`SynthConfig`), loadable from a dict, JSON or YAML; unknown keys are
errors. Configs are plain data: they travel to Ray workers, which build task specs and
engines from them (`synth.tasks.build_specs`, `synth.engines.make_engine`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

DEFAULT_MODEL = "meta-llama/Meta-Llama-3-8B-Instruct"

STATUSES = ("ok", "invalid_json", "ungrounded", "empty", "engine_error")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=(), frozen=True)


def _unique_nonblank(values: list[str], what: str) -> list[str]:
    values = [v.strip() for v in values]
    if not all(values):
        raise ValueError(f"{what} must be non-blank strings")
    if len(set(values)) != len(values):
        raise ValueError(f"{what} must be unique, got {values}")
    return values


# --------------------------------------------------------------------------- tasks


class FewShotExample(_Strict):
    """A worked example shown to the model before the document: a text and its answer (the
    task's JSON answer object). Checked against the task's schema and grounded in `text`
    when the task spec is built."""

    text: str = Field(min_length=1)
    answer: dict[str, Any]


class _TaskBase(_Strict):
    name: str | None = Field(None, description="value of the `task` column; defaults to the kind")
    instructions: str | None = Field(None, description="replaces the task's default instruction")
    few_shot: list[FewShotExample] = Field(default_factory=list)
    max_items: int = Field(20, ge=1, le=200, description="most items in the answer (schema maxItems)")
    max_span_chars: int = Field(200, ge=1, description="longest span string (schema maxLength)")

    @property
    def task_name(self) -> str:
        return self.name or self.kind  # type: ignore[attr-defined, no-any-return]


class NerTask(_TaskBase):
    """NER with a given label set: the schema restricts `label` to `labels`.

    Inside a self-training job `labels` may be left out: the task then takes the pipeline's labels
    (and descriptions), see `SynthConfig.with_labels`."""

    kind: Literal["ner"] = "ner"
    labels: list[str] | None = Field(None, min_length=1, description="default: the pipeline's labels")
    label_descriptions: dict[str, str] = Field(default_factory=dict)

    @field_validator("labels")
    @classmethod
    def _labels(cls, labels: list[str] | None) -> list[str] | None:
        return None if labels is None else _unique_nonblank(labels, "labels")

    @model_validator(mode="after")
    def _descriptions(self) -> NerTask:
        unknown = set(self.label_descriptions) - set(self.labels or [])
        if unknown and self.labels is not None:
            raise ValueError(f"label_descriptions for labels not in labels: {sorted(unknown)}")
        return self


class OpenNerTask(_TaskBase):
    """Open NER: the model proposes the entity types; `label_hints` are suggestions only."""

    kind: Literal["open_ner"] = "open_ner"
    label_hints: list[str] = Field(default_factory=list)
    max_label_chars: int = Field(40, ge=1)


class QaTask(_TaskBase):
    """Extractive QA. With `questions`, the model answers them (an answer may be null);
    without, it proposes up to `max_items` question/answer pairs about the document."""

    kind: Literal["qa"] = "qa"
    questions: list[str] = Field(default_factory=list)
    max_items: int = Field(5, ge=1, le=200)

    @field_validator("questions")
    @classmethod
    def _questions(cls, questions: list[str]) -> list[str]:
        return _unique_nonblank(questions, "questions")


class OpenIeTask(_TaskBase):
    """Open information extraction: (subject, relation, object) triples, each part a span."""

    kind: Literal["open_ie"] = "open_ie"
    max_items: int = Field(10, ge=1, le=200)


class SummaryTask(_TaskBase):
    """Extractive summarisation: the sentences (or clauses) of the text that summarise it."""

    kind: Literal["summary"] = "summary"
    max_items: int = Field(3, ge=1, le=50)
    max_span_chars: int = Field(600, ge=1)


class RelationTask(_TaskBase):
    """Relation extraction with a given relation set (head, relation, tail); optional entity
    types for heads and tails."""

    kind: Literal["relations"] = "relations"
    relations: list[str] = Field(min_length=1)
    relation_descriptions: dict[str, str] = Field(default_factory=dict)
    entity_labels: list[str] = Field(default_factory=list)
    max_items: int = Field(10, ge=1, le=200)

    @field_validator("relations", "entity_labels")
    @classmethod
    def _names(cls, values: list[str]) -> list[str]:
        return _unique_nonblank(values, "relations/entity_labels")

    @model_validator(mode="after")
    def _descriptions(self) -> RelationTask:
        unknown = set(self.relation_descriptions) - set(self.relations)
        if unknown:
            raise ValueError(f"relation_descriptions for relations not in relations: {sorted(unknown)}")
        return self


TaskConfig = Annotated[
    NerTask | OpenNerTask | QaTask | OpenIeTask | SummaryTask | RelationTask, Field(discriminator="kind")
]


# --------------------------------------------------------------------------- grounding / generation


class GroundingConfig(_Strict):
    """How a span string from the LLM is found in the source text."""

    occurrences: Literal["first", "all"] = Field(
        "first", description="a string found several times: its first occurrence, or all of them"
    )
    tolerant: bool = Field(True, description="after an exact miss, match ignoring case, whitespace, quotes")
    word_boundaries: bool = Field(True, description="a match may not start or end inside a word")
    exact_score: float = Field(1.0, ge=0.0, le=1.0, description="span score of an exact match")
    tolerant_score: float = Field(0.9, ge=0.0, le=1.0, description="span score of a tolerant match")


class GenerationConfig(_Strict):
    max_tokens: int = Field(512, ge=1, description="generated tokens per request")
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    system_prompt: str | None = Field(None, description="prepended to every task's instruction")


# --------------------------------------------------------------------------- engines


class LocalEngineConfig(_Strict):
    """Hugging Face causal LM in-process (CPU development, tests); xgrammar-constrained."""

    kind: Literal["local"] = "local"
    model: str = Field(description="local path (or hub id with local_files_only=False)")
    local_files_only: bool = True
    device: str = "cpu"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    batch_size: int = Field(4, ge=1, description="requests per generate() call")
    num_workers: int = Field(
        1,
        ge=1,
        validation_alias=AliasChoices("num_workers", "actors"),
        description="model replicas (Ray actors)",
    )
    num_cpus: float = Field(1.0, gt=0)
    num_gpus: float = Field(0.0, ge=0)
    torch_threads: int | None = Field(None, ge=1)
    seed: int = 0


class HttpEngineConfig(_Strict):
    """An OpenAI-compatible chat-completions endpoint (`vllm serve`, Ray Serve LLM)."""

    kind: Literal["http"] = "http"
    base_url: str = Field(description="e.g. http://host:8000/v1 (…/chat/completions is appended)")
    model: str = DEFAULT_MODEL
    api_key: SecretStr | None = None
    structured_output: Literal["structured_outputs", "response_format"] = Field(
        "structured_outputs",
        description="vLLM's body field structured_outputs={'json': schema} (extra_body in the OpenAI "
        "client), or OpenAI's response_format={'type': 'json_schema', ...}",
    )
    max_concurrency: int = Field(8, ge=1, description="requests in flight per worker")
    max_retries: int = Field(3, ge=0)
    backoff_s: float = Field(0.5, ge=0, description="first retry wait; doubles each retry")
    backoff_max_s: float = Field(8.0, ge=0)
    timeout_s: float = Field(120.0, gt=0, description="per request, including the answer body")
    batch_size: int = Field(32, ge=1, description="rows per Ray Data batch")
    num_workers: int = Field(
        1,
        ge=1,
        validation_alias=AliasChoices("num_workers", "workers"),
        description="Ray actors sending requests",
    )

    @field_validator("base_url")
    @classmethod
    def _url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {url!r}")
        return url.rstrip("/")


class VllmEngineConfig(_Strict):
    """vLLM on the cluster through `ray.data.llm` (GPU nodes, the `vllm` extra)."""

    kind: Literal["vllm"] = "vllm"
    model: str = DEFAULT_MODEL
    tensor_parallel_size: int = Field(1, ge=1)
    pipeline_parallel_size: int = Field(1, ge=1)
    num_workers: int | tuple[int, int] = Field(
        1,
        validation_alias=AliasChoices("num_workers", "concurrency"),
        description="vLLM engine replicas (or min, max): Ray Data LLM's `concurrency`",
    )
    batch_size: int = Field(64, ge=1)
    max_model_len: int = Field(8192, ge=256)
    gpu_memory_utilization: float = Field(0.90, gt=0, le=1)
    accelerator_type: str | None = None
    max_concurrent_batches: int = Field(8, ge=1)
    engine_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="further vLLM engine args (not those set by the fields above)"
    )

    @model_validator(mode="after")
    def _no_conflicts(self) -> VllmEngineConfig:
        typed = {"tensor_parallel_size", "pipeline_parallel_size", "max_model_len", "gpu_memory_utilization"}
        clash = typed & set(self.engine_kwargs)
        if clash:
            raise ValueError(f"set {sorted(clash)} with the typed fields, not in engine_kwargs")
        return self


EngineConfig = Annotated[LocalEngineConfig | HttpEngineConfig | VllmEngineConfig, Field(discriminator="kind")]


# --------------------------------------------------------------------------- the stage


class SynthConfig(_Strict):
    tasks: list[TaskConfig] = Field(min_length=1)
    engine: EngineConfig
    grounding: GroundingConfig = Field(default_factory=GroundingConfig)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    cache_dir: str | None = Field(
        None, description="response cache (local or shared folder): a rerun does not pay twice"
    )

    @model_validator(mode="after")
    def _unique_task_names(self) -> SynthConfig:
        names = [t.task_name for t in self.tasks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"task names must be unique (set `name` on repeated kinds): {dupes}")
        return self

    def with_labels(self, labels: list[str], descriptions: dict[str, str] | None = None) -> SynthConfig:
        """This config for a pipeline whose label list is `labels`: NER tasks without labels take
        them (and their descriptions); a NER task naming a label outside them is a `ValueError`
        (its spans could never be trained on)."""
        tasks: list[Any] = []
        for task in self.tasks:
            if isinstance(task, NerTask):
                if task.labels is None:
                    given = {k: v for k, v in (descriptions or {}).items() if k in labels}
                    task = task.model_copy(
                        update={
                            "labels": list(labels),
                            "label_descriptions": {**given, **task.label_descriptions},
                        }
                    )
                else:
                    outside = [label for label in task.labels if label not in labels]
                    if outside:
                        raise ValueError(
                            f"synth task {task.task_name!r} names labels the pipeline does not have: "
                            f"{outside} (data.labels: {labels}); leave the task's labels out to use "
                            "data.labels"
                        )
            tasks.append(task)
        return self.model_copy(update={"tasks": tasks})

    @property
    def task_names(self) -> list[str]:
        return [t.task_name for t in self.tasks]

    @property
    def model_id(self) -> str:
        return self.engine.model


def read_mapping(path: str | Path) -> dict[str, Any]:
    """A YAML or JSON config file whose top level is a mapping (an empty file is `{}`).

    The one reader of config files (synth, pipeline and command-line configs): `FileNotFoundError`
    for a missing file, `ValueError` with a one-line message for anything that is not a mapping."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError, UnicodeDecodeError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"{path}: not valid YAML/JSON ({first})") from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the top level must be a mapping")
    return data


def load_config(source: str | Path | dict[str, Any]) -> SynthConfig:
    """A `SynthConfig` from a dict or a JSON/YAML file; errors name the bad keys."""
    return SynthConfig.model_validate(source if isinstance(source, dict) else read_mapping(source))
