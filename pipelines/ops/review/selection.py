"""Which documents go to review: flags, priorities and the seeded selection (pure), and the review
documents read from an iteration's Parquet labels.

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
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from pipelines.config import ReviewConfig
from pipelines.data.storage import parquet_dataset, redact_uri

SPAN_FIELDS = ("start", "end", "label", "score", "origin")


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


def _disagreements(spans: list[dict], weight: float) -> Iterator[Flag]:
    """label and boundary flags: overlapping spans of two sources (`spans` sorted by start)."""
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
            yield Flag(kind, labels, min(a["start"], b["start"]), max(a["end"], b["end"]), weight, detail)


def _misses(spans: list[dict], covering: frozenset[str], weight: float) -> Iterator[Flag]:
    """missed flags: a span no other covering source has anything overlapping."""
    for a in spans:
        missing = sorted(
            source
            for source in covering
            if source != a["origin"] and not any(b["origin"] == source and _overlap(a, b) for b in spans)
        )
        if missing:
            detail = f"{_describe(a)} not found by {', '.join(missing)}"
            yield Flag("missed", (a["label"],), a["start"], a["end"], weight, detail)


def _doubts(doc: ReviewDocument, spans: list[dict], config: ReviewConfig) -> Iterator[Flag]:
    """uncertain flags (aggregated probabilities in the band) and low_score flags (unsure model spans)."""
    uw = config.uncertainty_weight
    low, high = config.uncertain_band
    for s in sorted(doc.aggregated or [], key=lambda s: (s["start"], s["end"], s["label"])):
        p = s.get("score")
        if p is not None and low <= p <= high:
            detail = f"p={p:.2f} {s['label']}[{s['start']}:{s['end']}]"
            yield Flag("uncertain", (s["label"],), s["start"], s["end"], uw * uncertainty(p), detail)
    for s in spans:
        score = s.get("score")
        if score is not None and score < config.low_score and _is_model(s["origin"], config.model_origins):
            detail = f"{_describe(s)} score {score:.2f}"
            yield Flag("low_score", (s["label"],), s["start"], s["end"], uw * uncertainty(score), detail)


def document_flags(doc: ReviewDocument, config: ReviewConfig) -> list[Flag]:
    """Every reason to review this document (deterministic order)."""
    spans = sorted(
        (s for s in doc.spans if s.get("origin")),
        key=lambda s: (s["start"], s["end"], s["origin"], s["label"]),
    )
    covering = frozenset(config.sources) if config.sources else doc.covering
    return [
        *_disagreements(spans, config.disagreement_weight),
        *_misses(spans, covering, config.disagreement_weight),
        *_doubts(doc, spans, config),
    ]


def _tiebreak(seed: int, doc_id: str) -> str:
    return hashlib.sha1(f"{seed}:{doc_id}".encode()).hexdigest()


def _label_queues(candidates: Iterable[Candidate], seed: int) -> dict[str, list[Candidate]]:
    """label -> the candidates with a flag about it, highest priority first (ties: seeded hash)."""
    by_label: dict[str, list[Candidate]] = defaultdict(list)
    for candidate in candidates:
        for label in {label for f in candidate.flags for label in f.labels}:
            by_label[label].append(candidate)
    for queue in by_label.values():
        queue.sort(key=lambda c: (-c.priority, _tiebreak(seed, c.doc_id)))
    return by_label


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
    by_label = _label_queues(candidates.values(), seed)
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


def _labels_dataset(path: str):
    try:
        return parquet_dataset(path)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"labels not found: {redact_uri(path)} (Parquet file or folder of weak labels / rows)"
        ) from None


def _rows(path: str, columns: Sequence[str]) -> Iterator[dict]:
    """Rows of a Parquet file/folder with `columns`; synth rows (a `task` column) count only for NER
    rows the LLM answered (`ok` or `empty`), so that a failed call does not read as 'found nothing'."""
    import pyarrow.compute as pc

    dataset = _labels_dataset(path)
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
        table = _labels_dataset(path).to_table(
            columns=["doc_id", "text"], filter=pc.field("doc_id").isin(ids)
        )
        for doc_id, text in zip(
            table.column("doc_id").to_pylist(), table.column("text").to_pylist(), strict=True
        ):
            texts.setdefault(str(doc_id), text)
    return texts
