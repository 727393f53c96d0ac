"""Merge stage: every source's spans per document -> one training row per document.

Collect   identical texts become one document; its row holds the spans of every weak source (GLiNER
          views, labeling functions, the LLM's NER and open-NER answers) and `covered_by`, the sources
          that ran on it (an LLM request that failed covers nothing).
Resolve   either the union policy (`merge.label_model: null`):
            agreement   the same (start, end, label) from GLiNER and the LLM: one span, score
                        max(scores) + boost;
            conflicts   spans that overlap with different boundaries or labels: the policy picks
                        (union: best score wins; llm_first / gliner_first: that source wins;
                        agreement_only: only agreed spans survive);
            filter      spans under `min_score` are dropped;
          or the label model (`pipelines.weak.label_model`, fitted on the collected rows by the stage),
          whose P(label) per candidate span is the span's score (soft targets keep them all; hard
          targets keep P >= `min_score` without overlaps).
Offer     a training row offers the row's own labels plus `negatives_per_row` labels sampled from the
          label set, so the model also learns "none of these here".
Balance   `max_label_share`: rows whose labels all hold more than that share of the spans are
          subsampled (`balance_rates`, `balance_batch`).

Training row contract: `doc_id, text, spans: list<span>, labels: list<string>, weight: float32`.
"""

from __future__ import annotations

import logging
import numbers
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from functools import partial

import pandas as pd
import pyarrow as pa
import ray.data

from pipelines.config import MergeConfig
from pipelines.data.read import text_id
from pipelines.data.spans import SPANS_TYPE
from pipelines.weak.label_model import LabelModel, apply_label_model

log = logging.getLogger(__name__)

TRAINING_SCHEMA = pa.schema(
    [
        ("doc_id", pa.string()),
        ("text", pa.string()),
        ("spans", SPANS_TYPE),
        ("labels", pa.list_(pa.string())),
        ("weight", pa.float32()),
    ]
)
SCORE_BINS = 20
SOURCES_PRIORITY = {"llm_first": ("llm", "gliner"), "gliner_first": ("gliner", "llm")}


def merge_spans(
    gliner: Sequence[dict], llm: Sequence[dict], config: MergeConfig, has_llm: bool
) -> list[dict]:
    """Resolve one document's spans from both sources; returns non-overlapping spans sorted by start."""
    by_key: dict[tuple[int, int, str], dict] = {}
    for span in gliner:
        by_key[(span["start"], span["end"], span["label"])] = dict(span)
    for span in llm:
        key = (span["start"], span["end"], span["label"])
        score = span.get("score") or config.llm_score
        if key in by_key:  # both sources agree
            by_key[key]["score"] = min(1.0, max(by_key[key]["score"], score) + config.agreement_boost)
            by_key[key]["origin"] = "agree"
        else:
            by_key[key] = {**span, "score": score, "origin": "llm"}

    candidates = list(by_key.values())
    if config.policy == "agreement_only" and has_llm:
        candidates = [s for s in candidates if s["origin"] == "agree"]
    floor = config.score_floor(label_model=False)
    candidates = [s for s in candidates if s["score"] >= floor]

    def rank(span: dict) -> tuple:
        if config.policy in SOURCES_PRIORITY:
            order = SOURCES_PRIORITY[config.policy]
            source = 0 if span["origin"] == "agree" else 1 + order.index(span["origin"])
            return (source, -span["score"])
        return (0, -span["score"])

    kept: list[dict] = []
    for span in sorted(candidates, key=rank):
        if all(span["end"] <= k["start"] or k["end"] <= span["start"] for k in kept):
            kept.append(span)
    return sorted(kept, key=lambda s: (s["start"], s["end"]))


def offered_labels(
    spans: Iterable[dict], label_set: Sequence[str], negatives: int, rng: random.Random
) -> list[str]:
    present = list(dict.fromkeys(s["label"] for s in spans))
    absent = [label for label in label_set if label not in present]
    chosen = present + rng.sample(absent, min(negatives, len(absent)))
    rng.shuffle(chosen)
    return chosen


def valid_span(span: dict, text: str, labels: Sequence[str]) -> bool:
    """Offsets inside the text (end exclusive, non-empty) and a label of the configured set: spans
    from outside (a synth rows file) that break this are dropped, never trained on."""
    start, end = span.get("start"), span.get("end")
    return (
        isinstance(start, numbers.Integral)
        and isinstance(end, numbers.Integral)
        and 0 <= int(start) < int(end) <= len(text)
        and span.get("label") in labels
        and isinstance(span.get("score") or 0.0, numbers.Real)
    )


COVERED_STATUSES = ("ok", "empty", "ungrounded")  # the LLM answered: what it left out it voted "none"
LLM_TASK_ORIGINS = {"ner": "llm", "open_ner": "llm:open_ner"}


def is_llm(origin: str) -> bool:
    return origin == "llm" or origin.startswith("llm:")


def _weak_rows(batch: pd.DataFrame, sources: list[str]) -> pd.DataFrame:
    """Weak-labeled documents: every weak-label source (GLiNER views, labeling functions) covers them."""
    out = batch[["doc_id", "text", "spans"]].copy()
    out["text_key"] = [text_id(t) for t in out["text"]]
    out["covered_by"] = [sources] * len(out)
    return out


def _synth_rows(batch: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
    """The LLM's NER and open-NER rows: spans with our labels (open NER's matched ignoring case), and
    coverage when the LLM answered (a failed request covers nothing: it abstains)."""
    by_fold = {label.casefold(): label for label in labels}
    spans, covered = [], []
    for task, status, row_spans in zip(batch["task"], batch["status"], batch["spans"], strict=True):
        origin = LLM_TASK_ORIGINS[task]
        kept = []
        if status == "ok":
            for s in row_spans if row_spans is not None else []:
                label = by_fold.get(str(s["label"]).casefold())
                if label is not None:
                    kept.append({**s, "label": label, "origin": origin})
        spans.append(kept)
        covered.append([origin] if status in COVERED_STATUSES else [])
    out = batch[["doc_id", "text"]].copy()
    out["spans"] = spans
    out["text_key"] = [text_id(t) for t in out["text"]]
    out["covered_by"] = covered
    return out


def collect_group(group: pd.DataFrame, labels: Sequence[str]) -> pd.DataFrame:
    """`map_groups` function: all rows of one text (its weak-label row, any LLM rows) -> one row holding
    every source's valid spans and the sources that covered the document."""
    text = group["text"].iloc[0]
    spans: list[dict] = []
    covered: list[str] = []
    dropped = 0
    for row_spans, row_covered in zip(group["spans"], group["covered_by"], strict=True):
        given = [dict(s) for s in row_spans] if row_spans is not None else []
        good = [s for s in given if valid_span(s, text, labels)]
        dropped += len(given) - len(good)
        spans.extend(good)
        covered.extend(c for c in (row_covered if row_covered is not None else []) if c not in covered)
    if dropped:
        log.warning("merge: %d span(s) with offsets outside the text or an unknown label dropped", dropped)
    return pd.DataFrame(
        {"doc_id": [group["doc_id"].iloc[0]], "text": [text], "spans": [spans], "covered_by": [covered]}
    )


def collect(
    weak: ray.data.Dataset,
    labels: Sequence[str],
    weak_sources: Sequence[str],
    synth: ray.data.Dataset | None = None,
) -> ray.data.Dataset:
    """Weak-labeled documents (+ the LLM's NER / open-NER rows) -> one row per distinct text with every
    source's spans and `covered_by` (lazy). Identical texts become one row."""
    rows = weak.map_batches(partial(_weak_rows, sources=list(weak_sources)), batch_format="pandas")
    if synth is not None:
        llm = synth.filter(lambda row: row["task"] in LLM_TASK_ORIGINS)
        rows = rows.union(llm.map_batches(partial(_synth_rows, labels=list(labels)), batch_format="pandas"))
    documents = weak.count() + (synth.count() if synth is not None else 0)  # Parquet: from its metadata
    return rows.groupby("text_key", num_partitions=shuffle_partitions(documents)).map_groups(
        partial(collect_group, labels=list(labels)), batch_format="pandas"
    )


ROWS_PER_PARTITION = 2000
MAX_PARTITIONS = 200  # Ray Data's own default, for any corpus


def shuffle_partitions(rows: int) -> int:
    """Partitions of the group-by: one per ROWS_PER_PARTITION rows, at most MAX_PARTITIONS. Ray Data's
    default (200 whatever the size) costs ~20 s of shuffle start-up on a small corpus (16 documents:
    40 s with 200, 21 s with 1, on 2 cores)."""
    return max(1, min(MAX_PARTITIONS, -(-rows // ROWS_PER_PARTITION)))


def training_row(
    doc_id: str, text: str, spans: list[dict], labels: Sequence[str], config: MergeConfig, rng: random.Random
) -> dict | None:
    """A document's final spans -> its training row (None: an empty row dropped by `drop_empty_rows`)."""
    if not spans and rng.random() < config.drop_empty_rows:
        return None
    offered = offered_labels(spans, labels, config.negatives_per_row, rng) or [rng.choice(list(labels))]
    weight = 1.0 if config.soft_targets or not spans else sum(s["score"] for s in spans) / len(spans)
    return {
        "doc_id": doc_id,
        "text": text,
        "spans": [{**s, "score": float(s["score"])} for s in spans],
        "labels": offered,
        "weight": float(weight),
    }


def _table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=TRAINING_SCHEMA)


def union_rows(batch: pa.Table, labels: Sequence[str], config: MergeConfig, seed: int = 0) -> pa.Table:
    """Batch function over collected rows: the policy picks among overlapping spans -> training rows."""
    out = []
    for row in batch.to_pylist():
        rng = random.Random(f"{seed}:{text_id(row['text'])}")  # same row, same choice, on any worker
        spans = row["spans"] or []
        gliner = [s for s in spans if not is_llm(s["origin"])]
        llm = [s for s in spans if is_llm(s["origin"])]
        has_llm = any(is_llm(c) for c in row["covered_by"] or [])
        kept = merge_spans(gliner, llm, config, has_llm)
        made = training_row(row["doc_id"], row["text"], kept, labels, config, rng)
        if made is not None:
            out.append(made)
    return _table(out)


def label_model_rows(
    batch: pa.Table, model: LabelModel, labels: Sequence[str], config: MergeConfig, seed: int = 0
) -> pa.Table:
    """Batch function over collected rows: the label model's P(label) per candidate span -> training rows.

    Soft targets keep every candidate's probability as its target; otherwise the spans with P at least
    `min_score` are kept, the most probable first, without overlaps."""
    scored = apply_label_model(
        batch.select(["doc_id", "text", "spans", "covered_by"]), model, sources_column=None
    )
    out = []
    for row in scored.to_pylist():
        rng = random.Random(f"{seed}:{text_id(row['text'])}")
        spans = row["spans"] or []
        if not config.soft_targets:
            kept: list[dict] = []
            floor = config.score_floor(label_model=True)
            for s in sorted((s for s in spans if s["score"] >= floor), key=lambda s: -s["score"]):
                if all(s["end"] <= k["start"] or k["end"] <= s["start"] for k in kept):
                    kept.append(s)
            spans = sorted(kept, key=lambda s: (s["start"], s["end"]))
        made = training_row(row["doc_id"], row["text"], spans, labels, config, rng)
        if made is not None:
            out.append(made)
    return _table(out)


def merge(
    weak: ray.data.Dataset,
    labels: Sequence[str],
    config: MergeConfig,
    synth: ray.data.Dataset | None = None,
    seed: int = 0,
) -> ray.data.Dataset:
    """GLiNER-labeled documents (+ synth NER rows) -> training rows by the union policy (lazy)."""
    sources = ["gliner"]  # the union policy does not read coverage beyond "the LLM answered"
    votes = collect(weak, labels, sources, synth)
    return votes.map_batches(
        partial(union_rows, labels=list(labels), config=config, seed=seed), batch_format="pyarrow"
    )


def balance_keep(row_labels: set[str], keep: Mapping[str, float], key: str) -> bool:
    """Whether a row survives class balance: a row holding any label under its share always does; a row
    whose labels are all over their share survives with the best of their keep rates (seeded by `key`)."""
    if not row_labels:
        return True
    rate = max(keep.get(label, 1.0) for label in row_labels)
    return rate >= 1.0 or random.Random(key).random() < rate


def balance_rates(per_label: Mapping[str, int], max_share: float) -> dict[str, float]:
    """Keep rate per label so that no label holds more than `max_share` of the spans (1.0: untouched)."""
    total = sum(per_label.values())
    if max_share >= 1.0 or not total:
        return {}
    rates = {}
    for label, n in per_label.items():
        others = total - n
        # after subsampling to rate r: r*n <= share * (r*n + others)  =>  r = share*others / ((1-share)*n)
        allowed = max_share * others / ((1.0 - max_share) * n) if n else 1.0
        if allowed < 1.0:
            rates[label] = max(allowed, 0.0)
    return rates


def balance_batch(batch: pa.Table, keep: Mapping[str, float], seed: int = 0) -> pa.Table:
    rows = batch.to_pylist()
    kept = [
        r
        for r in rows
        if balance_keep({s["label"] for s in r["spans"] or []}, keep, f"{seed}:balance:{r['doc_id']}")
    ]
    return _table(kept)


def label_statistics(rows: Iterable[dict]) -> dict:
    """Counts per label, spans per row, empty rows: computed while streaming over training rows."""
    per_label: Counter[str] = Counter()
    origins: Counter[str] = Counter()
    histogram = [0] * SCORE_BINS  # span scores in [0, 1], fixed bins: O(1) memory on any corpus
    n_rows = n_empty = n_spans = 0
    for row in rows:
        n_rows += 1
        spans = row["spans"] or []
        n_spans += len(spans)
        n_empty += not spans
        per_label.update(s["label"] for s in spans)
        origins.update(s["origin"] for s in spans)
        for s in spans:
            histogram[min(int(s["score"] * SCORE_BINS), SCORE_BINS - 1)] += 1
    return {
        "score_histogram": histogram,
        "rows": n_rows,
        "spans": n_spans,
        "empty_rows": n_empty,
        "spans_per_row": n_spans / n_rows if n_rows else 0.0,
        "per_label": dict(per_label.most_common()),
        "per_origin": dict(origins),
    }


def score_quantile(histogram: Sequence[int], q: float) -> float:
    """Approximate q-quantile (0..1) of span scores from `label_statistics`' histogram (bin upper edge)."""
    total = sum(histogram)
    if not total:
        return 0.0
    seen = 0
    for i, count in enumerate(histogram):
        seen += count
        if seen >= q * total:
            return (i + 1) / len(histogram)
    return 1.0
