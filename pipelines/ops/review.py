"""Review queue: the weak-labeled documents most worth a person's time go to Label Studio with the
current spans as pre-annotations; the corrected documents come back as gold rows.

    select   documents -> flags -> priority -> `budget` documents, diverse across labels (pure, seeded)
    push     Parquet labels -> selection -> Label Studio tasks with predictions (label-studio-sdk)
    pull     Label Studio annotations -> gold rows (JSONL, deduplicated by doc_id)

Flags (what makes a document worth reviewing); a source is a span `origin` (`gliner`,
`gliner:descriptions`, `llm`, `lf:gazetteer:x`, ...):
    label      spans of two sources overlap with different labels
    boundary   spans of two sources overlap with the same label and different offsets
    missed     a source found a span where another source covering the document found nothing
               (a source covers a document when its table has a row for it; `sources` overrides)
    uncertain  a training row's span has an aggregated probability p inside `uncertain_band`
    low_score  a model span (origin in `model_origins`) scores under `low_score`
A disagreement weighs `disagreement_weight`; an uncertain or low-score span weighs
`uncertainty_weight * (1 - |2p - 1|)` (most at p = 0.5). A document's priority is the sum of its flags.

Selection: the flagged labels take turns (in an order shuffled by `seed`); each turn takes the
highest-priority document not yet taken that has a flag with that label, until `budget` documents.
So every label with flagged documents gets its share, and a tie is broken by a seeded hash of doc_id.

Offsets are Python character offsets (code points), as everywhere in the pipeline; Label Studio stores
the offsets it is given and its own the same way, but a region's `text` is checked against the
document on the way back (and repaired, or dropped and counted) because older frontends counted UTF-16
units after an emoji.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from pipelines.config import LabelStudioConfig, ReviewConfig

FROM_NAME = "label"  # the Labels control in the labeling config
TO_NAME = "text"  # the Text object it labels
SPAN_FIELDS = ("start", "end", "label", "score", "origin")
PAGE_SIZE = 100  # tasks per Label Studio list request


# -- selection (pure) ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Flag:
    kind: str  # label, boundary, missed, uncertain, low_score
    labels: tuple[str, ...]  # the label(s) in question (two for a label disagreement)
    start: int
    end: int
    weight: float
    detail: str  # e.g. "gliner:location vs llm:organisation"


@dataclass
class ReviewDocument:
    doc_id: str
    spans: list[dict]  # source spans: start, end, label, score, origin
    aggregated: list[dict] | None = None  # the training row's spans (score = aggregated probability)
    covering: frozenset[str] = frozenset()  # sources that labeled this document (found something or not)
    text: str = ""


@dataclass
class Candidate:
    doc_id: str
    priority: float
    flags: list[Flag]
    turn_label: str = ""  # the label whose turn picked it

    def kinds(self) -> Counter[str]:
        return Counter(f.kind for f in self.flags)


def _overlap(a: dict, b: dict) -> bool:
    return a["start"] < b["end"] and b["start"] < a["end"]


def _is_model(origin: str, model_origins: Sequence[str]) -> bool:
    return any(origin == o or origin.startswith(f"{o}:") for o in model_origins)


def _describe(span: dict) -> str:
    return f"{span['origin']}:{span['label']}[{span['start']}:{span['end']}]"


def uncertainty(p: float) -> float:
    """1 at p = 0.5, 0 at p = 0 or 1."""
    return max(0.0, 1.0 - abs(2.0 * float(p) - 1.0))


def document_flags(doc: ReviewDocument, config: ReviewConfig) -> list[Flag]:
    """Every reason to review this document (deterministic order)."""
    spans = sorted(
        (s for s in doc.spans if s.get("origin")),
        key=lambda s: (s["start"], s["end"], s["origin"], s["label"]),
    )
    flags: list[Flag] = []
    dw, uw = config.disagreement_weight, config.uncertainty_weight
    for i, a in enumerate(spans):
        for b in spans[i + 1 :]:
            if b["start"] >= a["end"]:
                break  # sorted by start: nothing later overlaps a
            if a["origin"] == b["origin"] or not _overlap(a, b):
                continue
            same_bounds = (a["start"], a["end"]) == (b["start"], b["end"])
            if same_bounds and a["label"] == b["label"]:
                continue  # agreement
            kind = "boundary" if a["label"] == b["label"] else "label"
            detail = f"{_describe(a)} vs {_describe(b)}"
            labels = tuple(sorted({a["label"], b["label"]}))
            flags.append(Flag(kind, labels, min(a["start"], b["start"]), max(a["end"], b["end"]), dw, detail))
    covering = frozenset(config.sources) if config.sources else doc.covering
    for a in spans:
        missing = sorted(
            source
            for source in covering
            if source != a["origin"] and not any(b["origin"] == source and _overlap(a, b) for b in spans)
        )
        if missing:
            detail = f"{_describe(a)} not found by {', '.join(missing)}"
            flags.append(Flag("missed", (a["label"],), a["start"], a["end"], dw, detail))
    low, high = config.uncertain_band
    for s in sorted(doc.aggregated or [], key=lambda s: (s["start"], s["end"], s["label"])):
        p = s.get("score")
        if p is not None and low <= p <= high:
            detail = f"p={p:.2f} {s['label']}[{s['start']}:{s['end']}]"
            flags.append(Flag("uncertain", (s["label"],), s["start"], s["end"], uw * uncertainty(p), detail))
    for s in spans:
        score = s.get("score")
        if score is not None and score < config.low_score and _is_model(s["origin"], config.model_origins):
            detail = f"{_describe(s)} score {score:.2f}"
            flags.append(
                Flag("low_score", (s["label"],), s["start"], s["end"], uw * uncertainty(score), detail)
            )
    return flags


def _tiebreak(seed: int, doc_id: str) -> str:
    return hashlib.sha1(f"{seed}:{doc_id}".encode()).hexdigest()


def select_for_review(
    documents: Iterable[ReviewDocument], config: ReviewConfig, exclude: Iterable[str] = (), seed: int = 0
) -> list[Candidate]:
    """Up to `config.budget` documents, most worth reviewing first within each label's turn.

    Deterministic: the same documents, config and seed give the same selection in the same order,
    whatever order the documents come in. Documents without a flag (or in `exclude`) are never chosen."""
    skip = set(exclude)
    candidates: dict[str, Candidate] = {}
    for doc in documents:
        if doc.doc_id in skip or doc.doc_id in candidates:
            continue
        flags = document_flags(doc, config)
        priority = sum(f.weight for f in flags)
        if flags and priority > 0:
            candidates[doc.doc_id] = Candidate(doc.doc_id, priority, flags)
    by_label: dict[str, list[Candidate]] = defaultdict(list)
    for candidate in candidates.values():
        for label in {label for f in candidate.flags for label in f.labels}:
            by_label[label].append(candidate)
    for queue in by_label.values():
        queue.sort(key=lambda c: (-c.priority, _tiebreak(seed, c.doc_id)))
    order = sorted(by_label)
    random.Random(seed).shuffle(order)
    positions = dict.fromkeys(order, 0)
    chosen: list[Candidate] = []
    taken: set[str] = set()
    while len(chosen) < config.budget:
        progressed = False
        for label in order:
            queue, i = by_label[label], positions[label]
            while i < len(queue) and queue[i].doc_id in taken:
                i += 1
            positions[label] = i
            if i == len(queue):
                continue
            queue[i].turn_label = label
            chosen.append(queue[i])
            taken.add(queue[i].doc_id)
            progressed = True
            if len(chosen) == config.budget:
                break
        if not progressed:
            break
    return chosen


def current_spans(doc: ReviewDocument) -> list[dict]:
    """The spans to pre-annotate: the training row's (aggregated) when there is one, else the source
    spans resolved greedily by score into non-overlapping spans."""
    if doc.aggregated is not None:
        return sorted(doc.aggregated, key=lambda s: (s["start"], s["end"]))
    kept: list[dict] = []
    for span in sorted(doc.spans, key=lambda s: (-(s.get("score") or 0.0), s["start"], s["end"], s["label"])):
        if not any(_overlap(span, k) for k in kept):
            kept.append(span)
    return sorted(kept, key=lambda s: (s["start"], s["end"]))


# -- reading the iteration's labels (Parquet) ------------------------------------------------------


def _parquet_dataset(path: str):
    import pyarrow.dataset as pads

    if "://" not in path and not Path(path).exists():
        raise FileNotFoundError(f"labels not found: {path} (Parquet file or folder of weak labels / rows)")
    return pads.dataset(path, format="parquet")


def _rows(path: str, columns: Sequence[str]) -> Iterator[dict]:
    """Rows of a Parquet file/folder with `columns`; synth rows (a `task` column) count only for NER
    rows the LLM answered (`ok` or `empty`), so that a failed call does not read as 'found nothing'."""
    import pyarrow.compute as pc

    dataset = _parquet_dataset(path)
    names = dataset.schema.names
    missing = [c for c in columns if c not in names]
    if missing:
        raise ValueError(f"{path}: no column(s) {missing}; columns: {names}")
    condition = None
    if "task" in names:
        condition = pc.field("task") == "ner"
        if "status" in names:
            condition = condition & pc.field("status").isin(["ok", "empty"])
    for batch in dataset.to_batches(columns=list(columns), filter=condition):
        yield from batch.to_pylist()


def _clean(span: dict, default_origin: str = "") -> dict:
    out = {k: span.get(k) for k in SPAN_FIELDS}
    out["origin"] = out["origin"] or default_origin
    return out


def read_review_documents(
    label_paths: Sequence[str], rows_path: str | None = None
) -> tuple[list[ReviewDocument], dict[str, str]]:
    """(documents, doc_id -> the path holding its text): source spans from every labels table
    (weak labels, synth rows) joined on doc_id; aggregated spans from the training rows when given.
    Texts are not loaded (see `load_texts`): only the selected few are needed."""
    if not label_paths:
        raise ValueError("no labels given: pass the iteration's weak labels (Parquet)")
    spans: dict[str, list[dict]] = defaultdict(list)
    tables_of: dict[str, list[int]] = defaultdict(list)
    origins_of_table: list[set[str]] = []
    text_path: dict[str, str] = {}
    for index, path in enumerate(label_paths):
        origins: set[str] = set()
        for row in _rows(path, ("doc_id", "spans")):
            doc_id = str(row["doc_id"])
            given = [_clean(s) for s in row["spans"] or []]
            spans[doc_id].extend(given)
            origins.update(s["origin"] for s in given if s["origin"])
            tables_of[doc_id].append(index)
            text_path.setdefault(doc_id, path)
        origins_of_table.append(origins)
    aggregated: dict[str, list[dict]] = {}
    if rows_path:
        for row in _rows(rows_path, ("doc_id", "spans")):
            aggregated[str(row["doc_id"])] = [_clean(s, "aggregated") for s in row["spans"] or []]
    documents = [
        ReviewDocument(
            doc_id,
            doc_spans,
            aggregated.get(doc_id),
            frozenset().union(*(origins_of_table[i] for i in tables_of[doc_id])),
        )
        for doc_id, doc_spans in spans.items()
    ]
    return documents, text_path


def load_texts(doc_ids: Iterable[str], text_path: dict[str, str]) -> dict[str, str]:
    """doc_id -> text, read for these documents only."""
    import pyarrow.compute as pc

    wanted: dict[str, list[str]] = defaultdict(list)
    for doc_id in doc_ids:
        wanted[text_path[doc_id]].append(doc_id)
    texts: dict[str, str] = {}
    for path, ids in wanted.items():
        table = _parquet_dataset(path).to_table(
            columns=["doc_id", "text"], filter=pc.field("doc_id").isin(ids)
        )
        for doc_id, text in zip(
            table.column("doc_id").to_pylist(), table.column("text").to_pylist(), strict=True
        ):
            texts.setdefault(str(doc_id), text)
    return texts


# -- Label Studio: tasks and labeling config ----------------------------------------------------------


def labeling_config(labels: Sequence[str]) -> str:
    """A span-labeling interface with the pipeline's labels; the reasons for review shown on top."""
    options = "\n".join(f"    <Label value={quoteattr(label)}/>" for label in labels)
    return (
        "<View>\n"
        '  <Header value="$review_note" size="6"/>\n'
        f'  <Labels name="{FROM_NAME}" toName="{TO_NAME}">\n{options}\n  </Labels>\n'
        f'  <Text name="{TO_NAME}" value="$text" granularity="symbol"/>\n'
        "</View>"
    )


def config_labels(label_config: str) -> list[str]:
    """The Label values of a labeling config."""
    import xml.etree.ElementTree as ET

    root = ET.fromstring(label_config)
    return [node.attrib["value"] for node in root.iter("Label") if "value" in node.attrib]


def region(span: dict, text: str, index: int) -> dict[str, Any]:
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


# -- Label Studio: client, push, pull --------------------------------------------------------------


def connect(config: LabelStudioConfig, api_key: str | None = None):
    """A `label_studio_sdk.LabelStudio` client (the key from `api_key`, else `$<api_key_env>`)."""
    from label_studio_sdk import LabelStudio

    key = api_key or os.environ.get(config.api_key_env)
    if not key:
        raise PermissionError(
            f"no Label Studio API key: set {config.api_key_env} (Account & Settings → Personal Access Token)"
        )
    return LabelStudio(base_url=config.url.rstrip("/"), api_key=key, timeout=config.timeout)


def find_project(client, title: str) -> int | None:
    for project in client.projects.list(title=title):
        if project.title == title:
            return int(project.id)
    return None


def ensure_project(client, title: str, labels: Sequence[str]) -> int:
    """The project's id; created with the pipeline's labels when missing. A project whose labels lack
    some of the pipeline's is an error (a reviewer could not mark them)."""
    project_id = find_project(client, title)
    if project_id is None:
        created = client.projects.create(
            title=title,
            label_config=labeling_config(labels),
            description="Picked by the gliner-selftrain review queue, pre-annotated with the current spans.",
            sampling="Sequential sampling",  # tasks come in the order pushed: most worth reviewing first
        )
        return int(created.id)
    existing = config_labels(client.projects.get(project_id).label_config or "<View/>")
    missing = [label for label in labels if label not in existing]
    if missing:
        raise ValueError(
            f"Label Studio project {title!r} has no label(s) {missing}: add them in its labeling settings "
            "or push to a new project (--project)"
        )
    return project_id


def project_tasks(client, project_id: int) -> Iterator[Any]:
    yield from client.tasks.list(project=project_id, fields="all", page_size=PAGE_SIZE)


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default)


def project_doc_ids(client, project_id: int) -> set[str]:
    return {str(_get(task, "data", {}).get("doc_id")) for task in project_tasks(client, project_id)}


@dataclass
class PushReport:
    project_id: int
    pushed: int
    candidates: int  # documents with a flag (before the budget)
    already_in_project: int
    per_label: dict[str, int] = field(default_factory=dict)
    per_flag: dict[str, int] = field(default_factory=dict)
    doc_ids: list[str] = field(default_factory=list)


def push(
    client,
    label_paths: Sequence[str],
    labels: Sequence[str],
    config: ReviewConfig,
    model_version: str,
    rows_path: str | None = None,
    exclude: Iterable[str] = (),
    seed: int = 0,
) -> PushReport:
    """Select documents from the labels and create one task each (skipping documents already in the
    project or in `exclude`), pre-annotated with the current spans."""
    documents, text_path = read_review_documents(label_paths, rows_path)
    project_id = ensure_project(client, config.label_studio.project, labels)
    present = project_doc_ids(client, project_id)
    flagged = sum(1 for d in documents if document_flags(d, config))
    chosen = select_for_review(documents, config, exclude=present | set(exclude), seed=seed)
    by_id = {d.doc_id: d for d in documents}
    texts = load_texts([c.doc_id for c in chosen], text_path)
    tasks = []
    for candidate in chosen:
        doc = by_id[candidate.doc_id]
        doc.text = texts[candidate.doc_id]
        tasks.append(to_task(doc, candidate, model_version))
    if tasks:
        client.projects.import_tasks(id=project_id, request=tasks, return_task_ids=True)
    return PushReport(
        project_id,
        len(tasks),
        flagged,
        len(present & set(by_id)),
        dict(Counter(c.turn_label for c in chosen)),
        dict(sum((c.kinds() for c in chosen), Counter())),
        [c.doc_id for c in chosen],
    )


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


@dataclass
class PullReport:
    rows: list[dict]
    tasks: int  # tasks in the project
    annotated: int  # tasks with a completed (not skipped) annotation
    spans: int
    repaired: int  # regions whose offsets were fixed from their text
    dropped: int  # regions whose text is not in the document


def gold_row(
    task: Any, annotators: dict[int, str], labels: Sequence[str] | None = None
) -> tuple[dict, int, int] | None:
    """(gold row, regions repaired, regions dropped) of a task's latest completed annotation."""
    completed = [a for a in _get(task, "annotations") or [] if not _get(a, "was_cancelled")]
    if not completed:
        return None
    latest = max(
        completed,
        key=lambda a: (str(_get(a, "updated_at") or _get(a, "created_at") or ""), _get(a, "id") or 0),
    )
    data = _get(task, "data") or {}
    text = data.get("text", "")
    spans, repaired, dropped = [], 0, 0
    seen = set()
    for item in _get(latest, "result") or []:
        if _get(item, "type") != "labels" or _get(item, "from_name") != FROM_NAME:
            continue
        value = _get(item, "value") or {}
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
    by = _get(latest, "completed_by")
    by_id = by.get("id") if isinstance(by, dict) else by
    when = _get(latest, "updated_at") or _get(latest, "created_at")
    row = {
        "doc_id": str(data.get("doc_id") if data.get("doc_id") is not None else _get(task, "id")),
        "text": text,
        "spans": sorted(spans, key=lambda s: (s["start"], s["end"], s["label"])),
        "annotator": annotators.get(by_id, str(by_id)) if by_id is not None else None,
        "annotated_at": when.isoformat() if isinstance(when, datetime) else (str(when) if when else None),
    }
    return row, repaired, dropped


def _annotators(client, tasks: Sequence[Any]) -> dict[int, str]:
    ids = {
        (by.get("id") if isinstance(by, dict) else by)
        for task in tasks
        for a in _get(task, "annotations") or []
        if (by := _get(a, "completed_by")) is not None
    }
    emails: dict[int, str] = {}
    for user_id in sorted(i for i in ids if isinstance(i, int)):
        try:
            emails[user_id] = client.users.get(id=user_id).email or str(user_id)
        except Exception:  # a reviewer without the right to read users: keep the id
            emails[user_id] = str(user_id)
    return emails


def pull(client, project_title: str, labels: Sequence[str] | None = None) -> PullReport:
    """Gold rows of every task with a completed annotation; one row per doc_id (its latest annotation)."""
    project_id = find_project(client, project_title)
    if project_id is None:
        raise ValueError(f"no Label Studio project {project_title!r} (push creates it)")
    tasks = list(project_tasks(client, project_id))
    annotators = _annotators(client, tasks)
    latest: dict[str, dict] = {}
    annotated = repaired = dropped = 0
    for task in tasks:
        found = gold_row(task, annotators, labels)
        if found is None:
            continue
        row, fixed, lost = found
        annotated += 1
        repaired += fixed
        dropped += lost
        known = latest.get(row["doc_id"])
        if known is None or (row["annotated_at"] or "") >= (known["annotated_at"] or ""):
            latest[row["doc_id"]] = row
    rows = sorted(latest.values(), key=lambda r: r["doc_id"])
    return PullReport(rows, len(tasks), annotated, sum(len(r["spans"]) for r in rows), repaired, dropped)


def read_gold_rows(path: str | Path) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise ValueError(f"{path}:{number}: not JSON ({error.msg})") from error
    return rows


def merge_gold(path: str | Path, rows: Sequence[dict]) -> tuple[int, int]:
    """Merge rows into the gold JSONL at `path` by doc_id (a newer annotation replaces an older one;
    rows without doc_id are kept); written atomically. Returns (rows added, rows replaced)."""
    path = Path(path)
    existing = read_gold_rows(path) if path.exists() else []
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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for row in existing:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return added, replaced


def gold_doc_ids(path: str | Path | None) -> set[str]:
    if not path or not Path(path).exists():
        return set()
    return {str(r["doc_id"]) for r in read_gold_rows(path) if r.get("doc_id") is not None}
