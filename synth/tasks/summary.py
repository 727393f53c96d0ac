"""Extractive summarisation: the sentences (or clauses) of the document that summarise it."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, create_model

from synth.config import SummaryTask
from synth.grounding import Grounder
from synth.tasks.base import Answer, Converted, TaskSpec, span

SUMMARY_LABEL = "summary"


class SummarySpec(TaskSpec[SummaryTask]):
    kind = "summary"
    default_instructions = (
        "Select the sentences of the document that best summarise it, most important first, each "
        "copied exactly from the document."
    )

    def build_answer_model(self) -> type[Answer]:
        cfg = self.config
        sentence = Annotated[str, Field(min_length=1, max_length=cfg.max_span_chars)]
        return create_model(
            "SummaryAnswer",
            __base__=Answer,
            sentences=(Annotated[list[sentence], Field(max_length=cfg.max_items)], ...),  # type: ignore[valid-type]
        )

    def task_details(self) -> str:
        return f"Select at most {self.config.max_items} sentences."

    def convert(self, answer: Any, grounder: Grounder) -> Converted:
        out = Converted()
        seen: set[tuple[int, int]] = set()
        for sentence in answer.sentences:
            out.proposed += 1
            match = grounder.first(sentence)
            if match is None:
                out.dropped += 1
                continue
            if (match.start, match.end) not in seen:
                seen.add((match.start, match.end))
                out.spans.append(span(match, SUMMARY_LABEL, grounder))
        in_order = sorted(out.spans, key=lambda s: s["start"])
        out.extra = {"summary": " ".join(grounder.text[s["start"] : s["end"]] for s in in_order)}
        return out
