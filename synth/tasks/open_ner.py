"""Open NER: the model proposes the entity types (normalised to lower case)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, create_model

from synth.config import OpenNerTask
from synth.grounding import Grounder
from synth.tasks.base import Answer, Converted, TaskSpec
from synth.tasks.ner import ground_entities


def normalise_label(label: str) -> str:
    return " ".join(label.replace("_", " ").split()).lower()


class OpenNerSpec(TaskSpec[OpenNerTask]):
    kind = "open_ner"
    default_instructions = (
        "Extract every named entity of the document (people, organisations, places, dates, products, "
        "events, works, quantities and any other specific thing) and give each a short, general entity "
        "type in lower case (for example: person, organisation, city)."
    )

    def build_answer_model(self) -> type[Answer]:
        cfg = self.config
        entity = create_model(
            "OpenEntity",
            __base__=Answer,
            text=(Annotated[str, Field(min_length=1, max_length=cfg.max_span_chars)], ...),
            label=(Annotated[str, Field(min_length=1, max_length=cfg.max_label_chars)], ...),
        )
        return create_model(
            "OpenNerAnswer",
            __base__=Answer,
            entities=(Annotated[list[entity], Field(max_length=cfg.max_items)], ...),  # type: ignore[valid-type]
        )

    def task_details(self) -> str:
        if not self.config.label_hints:
            return ""
        return "Types you may use (others are allowed): " + ", ".join(self.config.label_hints)

    def convert(self, answer: Any, grounder: Grounder) -> Converted:
        entities = [(e.text, normalise_label(e.label)) for e in answer.entities]
        usable = [(t, lab) for t, lab in entities if lab]
        out = ground_entities(usable, grounder)
        out.proposed += len(entities) - len(usable)
        out.dropped += len(entities) - len(usable)
        return out
