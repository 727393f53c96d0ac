"""What comes back from Label Studio (pure, no server): a task's latest completed annotation as a gold
row, with each region's offsets checked against the document; gold rows merged into the gold JSONL.

Offsets are Python character offsets (code points), as everywhere in the pipeline. Label Studio stores
the offsets it is given and its own the same way, but a region's `text` is checked against the
document on the way back (and repaired, or dropped and counted) because older frontends counted UTF-16
units after an emoji.

The gold JSONL is the pipeline's: read with `pipelines.data.read.read_gold` (every field kept) and
written whole with `pipelines.data.storage.write_text` (atomic; local or at a URI).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipelines.data.read import read_gold
from pipelines.data.storage import is_file, write_text
from pipelines.ops.review.tasks import FROM_NAME


def _utf16_to_code_points(text: str, offset: int) -> int:
    units = 0
    for index, char in enumerate(text):
        if units >= offset:
            return index
        units += 2 if ord(char) > 0xFFFF else 1
    return len(text)


def region_span(value: dict, text: str) -> tuple[int, int] | None:
    """(start, end) in code points of an annotated region, checked against its `text`: as given, as
    UTF-16 offsets, or the occurrence of the region's text nearest the given start; None when lost."""
    start, end = int(value["start"]), int(value["end"])
    quoted = value.get("text")
    if quoted is None:
        return (start, end) if 0 <= start < end <= len(text) else None
    if 0 <= start < end <= len(text) and text[start:end] == quoted:
        return start, end
    s16, e16 = _utf16_to_code_points(text, start), _utf16_to_code_points(text, end)
    if s16 < e16 and text[s16:e16] == quoted:
        return s16, e16
    hits = [i for i in range(len(text)) if quoted and text.startswith(quoted, i)]
    if hits:
        best = min(hits, key=lambda i: abs(i - start))
        return best, best + len(quoted)
    return None


def user_id(annotation: dict) -> Any:
    """The annotation's `completed_by`: an id (the tasks API), or a user object's id (an export)."""
    by = annotation.get("completed_by")
    return by.get("id") if isinstance(by, dict) else by


def _latest_completed(task: dict) -> dict | None:
    completed = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
    if not completed:
        return None
    return max(
        completed, key=lambda a: (str(a.get("updated_at") or a.get("created_at") or ""), a.get("id") or 0)
    )


def _spans(result: list[dict], text: str, labels: Sequence[str] | None) -> tuple[list[dict], int, int]:
    """(spans, regions repaired, regions dropped) of an annotation's result."""
    spans, repaired, dropped = [], 0, 0
    seen = set()
    for item in result:
        if item.get("type") != "labels" or item.get("from_name") != FROM_NAME:
            continue
        value = item.get("value") or {}
        found = region_span(value, text)
        if found is None:
            dropped += 1
            continue
        repaired += found != (value.get("start"), value.get("end"))
        for label in value.get("labels") or []:
            if labels is not None and label not in labels:
                dropped += 1
                continue
            key = (found[0], found[1], label)
            if key not in seen:
                seen.add(key)
                spans.append({"start": found[0], "end": found[1], "label": label})
    return sorted(spans, key=lambda s: (s["start"], s["end"], s["label"])), repaired, dropped


def gold_row(
    task: dict, annotators: dict[int, str], labels: Sequence[str] | None = None
) -> tuple[dict, int, int] | None:
    """(gold row, regions repaired, regions dropped) of a task's latest completed annotation; `task` is
    the JSON Label Studio sends (`id`, `data`, `annotations`)."""
    latest = _latest_completed(task)
    if latest is None:
        return None
    data = task.get("data") or {}
    text = data.get("text", "")
    spans, repaired, dropped = _spans(latest.get("result") or [], text, labels)
    by = user_id(latest)
    when = latest.get("updated_at") or latest.get("created_at")
    row = {
        "doc_id": str(data.get("doc_id") if data.get("doc_id") is not None else task.get("id")),
        "text": text,
        "spans": spans,
        "annotator": annotators.get(by, str(by)) if by is not None else None,
        "annotated_at": str(when) if when else None,
    }
    return row, repaired, dropped


def merge_gold(path: str | Path, rows: Sequence[dict]) -> tuple[int, int]:
    """Merge rows into the gold JSONL at `path` by doc_id (a newer annotation replaces an older one;
    rows without doc_id are kept); written atomically. Returns (rows added, rows replaced)."""
    path = str(path)
    existing = read_gold(path, all_fields=True) if is_file(path) else []
    position = {str(r["doc_id"]): i for i, r in enumerate(existing) if r.get("doc_id") is not None}
    added = replaced = 0
    for row in rows:
        i = position.get(row["doc_id"])
        if i is None:
            position[row["doc_id"]] = len(existing)
            existing.append(row)
            added += 1
        elif (row.get("annotated_at") or "") >= (existing[i].get("annotated_at") or "") and row != existing[
            i
        ]:
            existing[i] = row
            replaced += 1
    write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in existing))
    return added, replaced


def gold_doc_ids(path: str | Path | None) -> set[str]:
    """The doc_ids already in the gold JSONL (none when there is no file yet)."""
    if not path or not is_file(str(path)):
        return set()
    return {str(r["doc_id"]) for r in read_gold(str(path), all_fields=True) if r.get("doc_id") is not None}
