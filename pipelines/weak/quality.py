"""Weak-label quality as a number: each weak source, and what the merge made of them, scored against
gold rows of the corpus itself (`data.corpus_gold`, e.g. a labelled sample of it; never the dev set).

    report = weak_label_quality(weak_labels_path, training_rows_path, corpus_gold, labels)
    report.table()       # one row per source and for the merged labels: P / R / F1, micro and per label

A source is a span `origin` (`gliner`, `gliner:names`, `ner:spacy`, `lf:gazetteer:countries`, `llm`);
its predictions are its spans on the documents the gold rows hold (matched by text). The merged labels
are the training rows' spans with a score of at least `min_score` (a label model's P(label), or the merge
policy's score); replayed gold rows are left out. Strict span match, as evaluation scores models.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import pyarrow.dataset as pads

from gliner_core.metrics import SpanReport, evaluate_spans
from pipelines.data.storage import filesystem

MERGED = "merged"  # the row for the training rows' spans


@dataclass
class QualityReport:
    """P/R/F1 of each source and of the merged labels on the corpus's gold documents."""

    documents: int  # gold documents found in the weak labels
    sources: dict[str, SpanReport] = field(default_factory=dict)  # origin (and MERGED) -> scores

    def metrics(self) -> dict[str, float]:
        """`weak_quality/<source>/{micro_precision,micro_recall,micro_f1,f1/<label>}` for MLflow."""
        out: dict[str, float] = {"weak_quality/documents": float(self.documents)}
        for source, scores in self.sources.items():
            flat = scores.to_dict()
            for key in ("micro_precision", "micro_recall", "micro_f1"):
                out[f"weak_quality/{source}/{key}"] = flat[key]
            for label, score in scores.per_label.items():
                out[f"weak_quality/{source}/f1/{label}"] = score.f1
        return out

    def table(self) -> str:
        labels = sorted({label for s in self.sources.values() for label in s.per_label})
        width = max([6, *map(len, self.sources)])
        lines = [
            f"{'source':<{width}}  {'P':>6}  {'R':>6}  {'F1':>6}  " + "  ".join(f"{lb:>12}" for lb in labels)
        ]
        for source, s in self.sources.items():
            per = "  ".join(
                f"{s.per_label[lb].f1:>12.3f}" if lb in s.per_label else f"{'-':>12}" for lb in labels
            )
            micro = f"{s.micro_precision:>6.3f}  {s.micro_recall:>6.3f}  {s.micro_f1:>6.3f}"
            lines.append(f"{source:<{width}}  {micro}  {per}")
        return "\n".join(lines)


def read_spans(path: str, columns: Sequence[str] = ("text", "spans")) -> Iterable[dict]:
    """Rows of a Parquet file or folder (local or URI), only `columns`."""
    fs, root = filesystem(path)
    for batch in pads.dataset(root, format="parquet", filesystem=fs).to_batches(columns=list(columns)):
        yield from batch.to_pylist()


def weak_label_quality(
    weak_labels: str,
    training_rows: str | None,
    gold: Sequence[Mapping],
    labels: Sequence[str],
    min_score: float = 0.5,
) -> QualityReport:
    """Score every source of the weak labels (and the training rows' spans) on the gold documents."""
    wanted = {row["text"]: [(s["start"], s["end"], s["label"]) for s in row["spans"]] for row in gold}
    by_source: dict[str, dict[str, list]] = defaultdict(dict)  # source -> text -> spans
    found: set[str] = set()
    for row in read_spans(weak_labels):
        if row["text"] not in wanted:
            continue
        found.add(row["text"])
        for span in row["spans"] or []:
            origin = span.get("origin") or "unknown"
            by_source[origin].setdefault(row["text"], []).append((span["start"], span["end"], span["label"]))
    if training_rows:
        for row in read_spans(training_rows, ("doc_id", "text", "spans")):
            if row["text"] in found and not str(row.get("doc_id", "")).startswith("gold:"):
                kept = [
                    (s["start"], s["end"], s["label"]) for s in row["spans"] or [] if s["score"] >= min_score
                ]
                by_source[MERGED][row["text"]] = kept
    texts = sorted(found)
    reports = {
        source: evaluate_spans([wanted[t] for t in texts], [spans.get(t, []) for t in texts], list(labels))
        for source, spans in sorted(by_source.items(), key=lambda kv: (kv[0] == MERGED, kv[0]))
    }
    return QualityReport(len(texts), reports)
