"""The synth row contract (Arrow) and the conversion of one completion into one row.

A synth row is the document (`doc_id, text, source`) + `task, spans, extra, status`:
- `spans`: list of `{start, end, label, score, origin="llm"}`, character offsets, end exclusive;
- `extra`: a JSON object as a string: the task's payload (QA pairs, triples, relations,
  summary) plus `proposed`/`dropped` span counts, token usage, `cached`, and `error`/`raw`
  when the row failed;
- `status`: `ok` (some span grounded), `empty` (the answer proposes nothing, or the document
  is blank), `ungrounded` (every proposed span was dropped), `invalid_json` (the output is
  not JSON or breaks the schema, e.g. cut at max_tokens), `engine_error` (no output).
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from synth.config import GroundingConfig
from synth.engines.base import Completion
from synth.grounding import Grounder
from synth.tasks.base import TaskSpec

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
REQUEST_SCHEMA = pa.schema(
    [("doc_id", pa.string()), ("text", pa.string()), ("source", pa.string()), ("task", pa.string())]
)
SYNTH_SCHEMA = pa.schema(
    [
        ("doc_id", pa.string()),
        ("text", pa.string()),
        ("source", pa.string()),
        ("task", pa.string()),
        ("spans", SPANS_TYPE),
        ("extra", pa.string()),
        ("status", pa.string()),
    ]
)
RAW_KEEP = 2000  # characters of a failed output kept in `extra.raw`


def label_completion(
    spec: TaskSpec, text: str, completion: Completion, grounding: GroundingConfig
) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    """(status, spans, extra) of one completion for one document."""
    extra: dict[str, Any] = {
        "usage": {
            "prompt_tokens": completion.prompt_tokens,
            "completion_tokens": completion.completion_tokens,
        }
    }
    if completion.finish_reason:
        extra["finish_reason"] = completion.finish_reason
    if not completion.ok:
        extra["error"] = completion.error or "no output"
        return "engine_error", [], extra
    raw = completion.text or ""
    try:
        answer = spec.parse(raw)
    except ValueError as err:
        extra["error"] = str(err)[:500]
        extra["raw"] = raw[:RAW_KEEP]
        return "invalid_json", [], extra
    converted = spec.convert(answer, Grounder(text, grounding))
    extra.update(converted.extra)
    extra["proposed"] = converted.proposed
    extra["dropped"] = converted.dropped
    if converted.proposed == 0:
        status = "empty"
    elif not converted.spans:
        status = "ungrounded"
    else:
        status = "ok"
    return status, converted.spans, extra


def blank_document_row(
    extra: dict[str, Any] | None = None,
) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    return "empty", [], {"proposed": 0, "dropped": 0, "reason": "blank document", **(extra or {})}


def to_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Rows (`spans` as lists of dicts, `extra` as dict or JSON string) -> an Arrow table with
    exactly the contract schema (typed even when every span list is empty)."""
    columns: dict[str, list[Any]] = {name: [] for name in SYNTH_SCHEMA.names}
    for row in rows:
        for name in SYNTH_SCHEMA.names:
            value = row.get(name)
            if name == "extra" and not isinstance(value, str):
                value = json.dumps(value or {}, ensure_ascii=False)
            if name == "source" and value is None:
                value = ""
            columns[name].append(value)
    return pa.table(columns, schema=SYNTH_SCHEMA)
