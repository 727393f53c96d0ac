"""What goes to Label Studio (pure, no server): the labeling config and one task per selected document,
pre-annotated with the current spans.

The labeling config is built and read with label-studio-sdk's `LabelInterface` (it escapes the label
values and parses any project's config). The prediction regions are built here: the SDK's region
builder (`LabelsTag.label`) has no `text` in its value and no region `score`, and both are needed (the
text checks the offsets on the way back, see gold.py; the score shows in Label Studio).

Offsets are Python character offsets (code points), as everywhere in the pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipelines.ops.review.selection import Candidate, ReviewDocument, current_spans

FROM_NAME = "label"  # the Labels control in the labeling config
TO_NAME = "text"  # the Text object it labels


def labeling_config(labels: Sequence[str]) -> str:
    """A span-labeling interface with the pipeline's labels; the reasons for review shown on top."""
    from label_studio_sdk.label_interface import LabelInterface
    from label_studio_sdk.label_interface.create import labels as labels_tag

    return LabelInterface.create(
        {
            "review_note": ("Header", {"value": "$review_note", "size": "6"}),
            FROM_NAME: labels_tag(list(labels), toName=TO_NAME),
            TO_NAME: ("Text", {"value": "$text", "granularity": "symbol"}),
        }
    )


def config_labels(label_config: str) -> list[str]:
    """The Label values of a labeling config (of every Labels control, in order)."""
    from label_studio_sdk.label_interface import LabelInterface

    return [value for per_control in LabelInterface(label_config).labels for value in per_control]


def region(span: dict, text: str, index: int) -> dict[str, Any]:
    """A prediction region: the span's offsets, its text and label, and its score when it has one."""
    result: dict[str, Any] = {
        "id": f"r{index}",
        "from_name": FROM_NAME,
        "to_name": TO_NAME,
        "type": "labels",
        "value": {
            "start": int(span["start"]),
            "end": int(span["end"]),
            "text": text[span["start"] : span["end"]],
            "labels": [span["label"]],
        },
    }
    if span.get("score") is not None:
        result["score"] = round(float(span["score"]), 4)
    return result


def review_note(candidate: Candidate, limit: int = 6) -> str:
    parts = [f"{f.kind}: {f.detail}" for f in candidate.flags]
    more = f" (+{len(parts) - limit} more)" if len(parts) > limit else ""
    return f"priority {candidate.priority:.2f} | " + "; ".join(parts[:limit]) + more


def to_task(doc: ReviewDocument, candidate: Candidate, model_version: str) -> dict[str, Any]:
    """A Label Studio task: the text, the document id, why it is here, and the current spans as a
    prediction (its score: the mean span score, so 'uncertainty sampling' shows weak documents first)."""
    spans = [s for s in current_spans(doc) if 0 <= s["start"] < s["end"] <= len(doc.text)]
    scores = [float(s["score"]) for s in spans if s.get("score") is not None]
    return {
        "data": {
            "text": doc.text,
            "doc_id": doc.doc_id,
            "review_note": review_note(candidate),
            "review_priority": round(candidate.priority, 4),
            "review_flags": dict(candidate.kinds()),
        },
        "predictions": [
            {
                "model_version": model_version,
                "score": round(sum(scores) / len(scores), 4) if scores else 0.0,
                "result": [region(s, doc.text, i) for i, s in enumerate(spans)],
            }
        ],
    }
