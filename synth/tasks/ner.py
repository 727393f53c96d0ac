"""NER with a given label set: the schema allows only the configured labels."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, create_model

from synth.config import NerTask
from synth.grounding import Grounder
from synth.tasks.base import Answer, Converted, TaskSpec, dedupe, describe, span


class NerSpec(TaskSpec[NerTask]):
    kind = "ner"
    default_instructions = (
        "Extract every named entity of the document that belongs to one of the entity types below. "
        "Give each entity's text exactly as written in the document and its type."
    )

    @property
    def labels(self) -> list[str]:
        if not self.config.labels:
            raise ValueError(
                f"synth task {self.config.task_name!r} has no labels: name them in the task, or run it "
                "from a pipeline, whose data.labels it then takes"
            )
        return self.config.labels

    def build_answer_model(self) -> type[Answer]:
        cfg = self.config
        label_type: Any = Literal[tuple(self.labels)]  # type: ignore[valid-type]
        entity = create_model(
            "Entity",
            __base__=Answer,
            text=(Annotated[str, Field(min_length=1, max_length=cfg.max_span_chars)], ...),
            label=(label_type, ...),
        )
        return create_model(
            "NerAnswer",
            __base__=Answer,
            entities=(Annotated[list[entity], Field(max_length=cfg.max_items)], ...),  # type: ignore[valid-type]
        )

    def task_details(self) -> str:
        return "Entity types:\n" + describe(self.labels, self.config.label_descriptions)

    def convert(self, answer: Any, grounder: Grounder) -> Converted:
        return ground_entities([(e.text, e.label) for e in answer.entities], grounder)


def ground_entities(entities: list[tuple[str, str]], grounder: Grounder) -> Converted:
    out = Converted()
    for text, label in entities:
        out.proposed += 1
        matches = grounder.find(text)
        if not matches:
            out.dropped += 1
            continue
        out.spans.extend(span(m, label, grounder) for m in matches)
    out.spans = dedupe(out.spans)
    return out
