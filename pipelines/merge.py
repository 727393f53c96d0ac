"""Merge stage: LLM spans + GLiNER spans per document -> training rows.

Per document (identical texts are merged into one document first):
  agreement   the same (start, end, label) from both sources: one span, score
              max(scores) + boost;
  conflicts   spans that overlap with different boundaries or labels: the
              policy picks (union: best score wins; llm_first / gliner_first:
              that source wins; agreement_only: only agreed spans survive);
  filter      spans under `min_score` are dropped.
A training row offers the row's own labels plus `negatives_per_row` labels
sampled from the label set, so the model also learns "none of these here".

Training row contract: `doc_id, text, spans: list<span>, labels: list<string>, weight: float32`.
"""

from __future__ import annotations

import logging
import numbers
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import partial

import pandas as pd
import pyarrow as pa
import ray.data

from pipelines.config import MergeConfig
from pipelines.read import text_id
from pipelines.spans import SPANS_TYPE

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
    candidates = [s for s in candidates if s["score"] >= config.min_score]

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


def merge_group(
    group: pd.DataFrame, labels: Sequence[str], config: MergeConfig, seed: int = 0
) -> pd.DataFrame:
    """`map_groups` function: all rows of one text (its GLiNER row, any LLM rows) -> one training row."""
    text = group["text"].iloc[0]
    rng = random.Random(f"{seed}:{text_id(text)}")  # same row, same choice, on any worker
    gliner: list[dict] = []
    llm: list[dict] = []
    dropped = 0
    for origin, spans in zip(group["origin"], group["spans"], strict=True):
        given = [dict(s) for s in spans] if spans is not None else []
        good = [s for s in given if valid_span(s, text, labels)]
        dropped += len(given) - len(good)
        (llm if origin == "llm" else gliner).extend(good)
    if dropped:
        log.warning("merge: %d span(s) with offsets outside the text or an unknown label dropped", dropped)
    has_llm = bool((group["origin"] == "llm").any())
    spans = merge_spans(gliner, llm, config, has_llm)
    if not spans and rng.random() < config.drop_empty_rows:
        return pd.DataFrame({name: [] for name in TRAINING_SCHEMA.names})
    offered = offered_labels(spans, labels, config.negatives_per_row, rng) or [rng.choice(list(labels))]
    weight = sum(s["score"] for s in spans) / len(spans) if spans else 1.0
    return pd.DataFrame(
        {
            "doc_id": [group["doc_id"].iloc[0]],
            "text": [text],
            "spans": [[{**s, "score": float(s["score"])} for s in spans]],
            "labels": [offered],
            "weight": [float(weight)],
        }
    )


def _tag(batch: pd.DataFrame, origin: str) -> pd.DataFrame:
    out = batch[["doc_id", "text", "spans"]].copy()
    out["origin"] = origin
    out["text_key"] = [text_id(t) for t in out["text"]]
    return out


def merge(
    weak: ray.data.Dataset,
    labels: Sequence[str],
    config: MergeConfig,
    synth: ray.data.Dataset | None = None,
    seed: int = 0,
) -> ray.data.Dataset:
    """GLiNER-labeled documents (+ synth NER rows with status ok) -> training rows (lazy)."""
    rows = weak.map_batches(partial(_tag, origin="gliner"), batch_format="pandas")
    if synth is not None:
        ner = synth.filter(lambda row: row["task"] == "ner" and row["status"] == "ok")
        rows = rows.union(ner.map_batches(partial(_tag, origin="llm"), batch_format="pandas"))
    by_text = partial(merge_group, labels=list(labels), config=config, seed=seed)
    return rows.groupby("text_key").map_groups(by_text, batch_format="pandas")


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
