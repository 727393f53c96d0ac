"""Extractive QA: answers are spans of the document. With configured questions the model
answers them (null when the document does not say); without, it writes question/answer pairs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, create_model

from synth.config import QaTask
from synth.grounding import Grounder
from synth.tasks.base import Answer, Converted, TaskSpec, dedupe, located, span

ANSWER_LABEL = "answer"


class QaSpec(TaskSpec[QaTask]):
    kind = "qa"
    default_instructions = (
        "Answer questions about the document with the shortest span of the document that answers "
        "each one, copied exactly."
    )

    def build_answer_model(self) -> type[Answer]:
        cfg = self.config
        text = Annotated[str, Field(min_length=1, max_length=cfg.max_span_chars)]
        if cfg.questions:
            question: Any = Literal[tuple(cfg.questions)]  # type: ignore[valid-type]
            answer: Any = text | None
            most = len(cfg.questions)
        else:
            question, answer, most = text, text, cfg.max_items
        pair = create_model("QaPair", __base__=Answer, question=(question, ...), answer=(answer, ...))
        return create_model(
            "QaAnswer",
            __base__=Answer,
            answers=(Annotated[list[pair], Field(max_length=most)], ...),  # type: ignore[valid-type]
        )

    def task_details(self) -> str:
        if self.config.questions:
            listed = "\n".join(f"- {q}" for q in self.config.questions)
            return f"Questions (answer null when the document does not answer one):\n{listed}"
        return (
            f"Write up to {self.config.max_items} questions that the document answers, each with its "
            "answer span."
        )

    def convert(self, answer: Any, grounder: Grounder) -> Converted:
        out = Converted()
        pairs = []
        for pair in answer.answers:
            if pair.answer is None:
                pairs.append({"question": pair.question, "answer": None})
                continue
            out.proposed += 1
            matches = grounder.find(pair.answer)
            if not matches:
                out.dropped += 1
                continue
            out.spans.extend(span(m, ANSWER_LABEL, grounder) for m in matches)
            pairs.append({"question": pair.question, "answer": located(matches[0], grounder.text)})
        out.spans = dedupe(out.spans)
        out.extra = {"qa": pairs}
        return out
