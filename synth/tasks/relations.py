"""Relation extraction with a given relation set: (head, relation, tail), heads and tails
spans of the document, optionally typed with `entity_labels` (spans carry the type, else
`entity`). A relation whose head or tail is not found is dropped whole."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, create_model

from synth.config import RelationTask
from synth.grounding import Grounder
from synth.tasks.base import Answer, Converted, TaskSpec, dedupe, describe, located, span

UNTYPED = "entity"


class RelationSpec(TaskSpec[RelationTask]):
    kind = "relations"
    default_instructions = (
        "Extract the relations the document states between two entities, using only the relation "
        "types below. Head and tail are copied exactly from the document."
    )

    def build_answer_model(self) -> type[Answer]:
        cfg = self.config
        text = Annotated[str, Field(min_length=1, max_length=cfg.max_span_chars)]
        relation: Any = Literal[tuple(cfg.relations)]  # type: ignore[valid-type]
        fields: dict[str, Any] = {"head": (text, ...)}
        if cfg.entity_labels:
            entity_type: Any = Literal[tuple(cfg.entity_labels)]  # type: ignore[valid-type]
            fields["head_type"] = (entity_type, ...)
        fields["relation"] = (relation, ...)
        fields["tail"] = (text, ...)
        if cfg.entity_labels:
            fields["tail_type"] = (entity_type, ...)
        item = create_model("Relation", __base__=Answer, **fields)
        return create_model(
            "RelationAnswer",
            __base__=Answer,
            relations=(Annotated[list[item], Field(max_length=cfg.max_items)], ...),  # type: ignore[valid-type]
        )

    def task_details(self) -> str:
        details = "Relation types:\n" + describe(self.config.relations, self.config.relation_descriptions)
        if self.config.entity_labels:
            details += "\nEntity types for head and tail: " + ", ".join(self.config.entity_labels)
        return details

    def convert(self, answer: Any, grounder: Grounder) -> Converted:
        out = Converted()
        relations = []
        for rel in answer.relations:
            out.proposed += 1
            head, tail = grounder.first(rel.head), grounder.first(rel.tail)
            if head is None or tail is None:
                out.dropped += 1
                continue
            out.spans.append(span(head, getattr(rel, "head_type", UNTYPED), grounder))
            out.spans.append(span(tail, getattr(rel, "tail_type", UNTYPED), grounder))
            relations.append(
                {
                    "head": located(head, grounder.text),
                    "relation": rel.relation,
                    "tail": located(tail, grounder.text),
                }
            )
        out.spans = dedupe(out.spans)
        out.extra = {"relations": relations}
        return out
