"""The span column shared by every stage: its Arrow type (defined once, with the synth row contract in
`synth.rows`, which cannot import pipelines) and the conversion from a prediction."""

from __future__ import annotations

from synth.rows import SPAN_TYPE, SPANS_TYPE

__all__ = ["SPANS_TYPE", "SPAN_TYPE", "entity_to_span"]


def entity_to_span(entity: dict, origin: str) -> dict:
    """A `predict_entities` result as a contract span."""
    return {
        "start": int(entity["start"]),
        "end": int(entity["end"]),
        "label": str(entity["label"]),
        "score": float(entity["score"]),
        "origin": origin,
    }
