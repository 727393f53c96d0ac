"""Open information extraction: (subject, relation, object) triples whose three parts are
spans of the document. A triple with any part not found is dropped whole."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, create_model

from synth.config import OpenIeTask
from synth.grounding import Grounder
from synth.tasks.base import Answer, Converted, TaskSpec, dedupe, located, span

PARTS = ("subject", "relation", "object")


class OpenIeSpec(TaskSpec[OpenIeTask]):
    kind = "open_ie"
    default_instructions = (
        "Extract the facts the document states as (subject, relation, object) triples. Each part is "
        "copied exactly from the document; the relation is the phrase that links subject and object."
    )

    def build_answer_model(self) -> type[Answer]:
        cfg = self.config
        text = Annotated[str, Field(min_length=1, max_length=cfg.max_span_chars)]
        triple = create_model(
            "Triple", __base__=Answer, subject=(text, ...), relation=(text, ...), object=(text, ...)
        )
        return create_model(
            "OpenIeAnswer",
            __base__=Answer,
            triples=(Annotated[list[triple], Field(max_length=cfg.max_items)], ...),  # type: ignore[valid-type]
        )

    def task_details(self) -> str:
        return ""

    def convert(self, answer: Any, grounder: Grounder) -> Converted:
        out = Converted()
        triples = []
        for triple in answer.triples:
            out.proposed += 1
            found = {part: grounder.first(getattr(triple, part)) for part in PARTS}
            if any(m is None for m in found.values()):
                out.dropped += 1
                continue
            for part, match in found.items():
                assert match is not None
                out.spans.append(span(match, part, grounder))
            triples.append({part: located(m, grounder.text) for part, m in found.items()})
        out.spans = dedupe(out.spans)
        out.extra = {"triples": triples}
        return out
