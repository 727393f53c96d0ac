"""The span column shared by every stage: Arrow type and conversions."""

from __future__ import annotations

import pyarrow as pa

SPAN_TYPE = pa.struct(
    [
        ("start", pa.int32()),
        ("end", pa.int32()),
        ("label", pa.string()),
        ("score", pa.float32()),
        ("origin", pa.string()),
    ]
)
SPANS_TYPE = pa.list_(SPAN_TYPE)


def entity_to_span(entity: dict, origin: str) -> dict:
    """A `predict_entities` result as a contract span."""
    return {
        "start": int(entity["start"]),
        "end": int(entity["end"]),
        "label": str(entity["label"]),
        "score": float(entity["score"]),
        "origin": origin,
    }
