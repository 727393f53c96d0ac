"""Span-level NER evaluation with strict matching (same start, end and label).

Spans are `(start, end, label)` tuples, one collection per document; extra
fields after the label (a score, say) are ignored, and a span listed twice in a
document counts once. Pure Python.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

Span = tuple[int, int, str]


@dataclass
class LabelScore:
    """Counts and scores for one label."""

    label: str
    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float
    support: int  # gold spans with this label (tp + fn)


@dataclass
class SpanReport:
    """Micro and macro averages plus one `LabelScore` per label."""

    micro_precision: float
    micro_recall: float
    micro_f1: float
    macro_precision: float
    macro_recall: float
    macro_f1: float
    per_label: dict[str, LabelScore] = field(default_factory=dict)

    def to_dict(self) -> dict[str, float]:
        """Flat metrics for logging: `micro_f1`, `macro_f1`, ..., `f1/<label>`, `support/<label>`."""
        metrics: dict[str, float] = {
            "micro_precision": self.micro_precision,
            "micro_recall": self.micro_recall,
            "micro_f1": self.micro_f1,
            "macro_precision": self.macro_precision,
            "macro_recall": self.macro_recall,
            "macro_f1": self.macro_f1,
        }
        for label, score in self.per_label.items():
            metrics[f"precision/{label}"] = score.precision
            metrics[f"recall/{label}"] = score.recall
            metrics[f"f1/{label}"] = score.f1
            metrics[f"support/{label}"] = float(score.support)
        return metrics

    def format_table(self, digits: int = 4) -> str:
        """A readable aligned table: one row per label, then micro and macro rows."""
        support = sum(score.support for score in self.per_label.values())
        rows: list[tuple[str, ...]] = [("label", "precision", "recall", "f1", "support")]
        for score in self.per_label.values():
            rows.append(_row(score.label, score.precision, score.recall, score.f1, score.support, digits))
        rows.append(_row("micro", self.micro_precision, self.micro_recall, self.micro_f1, support, digits))
        rows.append(_row("macro", self.macro_precision, self.macro_recall, self.macro_f1, support, digits))
        width = max(len(row[0]) for row in rows)
        widths = [max(len(row[i]) for row in rows) for i in range(1, 5)]
        lines = [
            "  ".join(
                [row[0].ljust(width), *(cell.rjust(w) for cell, w in zip(row[1:], widths, strict=True))]
            )
            for row in rows
        ]
        lines.insert(len(lines) - 2, "-" * len(lines[0]))
        return "\n".join(lines)


def _row(label: str, p: float, r: float, f: float, support: int, digits: int) -> tuple[str, ...]:
    return (label, f"{p:.{digits}f}", f"{r:.{digits}f}", f"{f:.{digits}f}", str(support))


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


def _f1(precision: float, recall: float) -> float:
    return _ratio(2 * precision * recall, precision + recall)


def _as_span_set(spans: Iterable[Span]) -> set[Span]:
    """Normalise one document's spans to a set of `(int, int, str)`."""
    return {(int(span[0]), int(span[1]), str(span[2])) for span in spans}


def _count(
    gold: Sequence[Iterable[Span]], predicted: Sequence[Iterable[Span]]
) -> tuple[Counter[str], Counter[str], Counter[str]]:
    """True positives, false positives and false negatives per label over all documents."""
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for gold_doc, pred_doc in zip(gold, predicted, strict=True):
        gold_set, pred_set = _as_span_set(gold_doc), _as_span_set(pred_doc)
        tp.update(label for _, _, label in gold_set & pred_set)
        fp.update(label for _, _, label in pred_set - gold_set)
        fn.update(label for _, _, label in gold_set - pred_set)
    return tp, fp, fn


def _label_score(label: str, tp: int, fp: int, fn: int) -> LabelScore:
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    return LabelScore(label, tp, fp, fn, precision, recall, _f1(precision, recall), tp + fn)


def evaluate_spans(
    gold: Sequence[Iterable[Span]],
    predicted: Sequence[Iterable[Span]],
    labels: Sequence[str] | None = None,
) -> SpanReport:
    """Strict span-level precision, recall and F1, micro- and macro-averaged.

    `gold[i]` and `predicted[i]` are the `(start, end, label)` spans of document i.
    Without `labels`, every label seen in gold or predictions is scored (sorted by
    name). With `labels`, exactly those are scored, in that order: spans with other
    labels are ignored everywhere, and listed labels that never occur score 0.
    Micro averages pool the counts; macro averages are unweighted means of the
    per-label scores (macro F1 is the mean of per-label F1s). Division by zero gives 0.0.
    """
    if len(gold) != len(predicted):
        raise ValueError(f"gold has {len(gold)} documents but predicted has {len(predicted)}")
    tp, fp, fn = _count(gold, predicted)
    names = list(dict.fromkeys(labels)) if labels is not None else sorted(set(tp) | set(fp) | set(fn))
    per_label = {name: _label_score(name, tp[name], fp[name], fn[name]) for name in names}
    total_tp = sum(score.tp for score in per_label.values())
    total_fp = sum(score.fp for score in per_label.values())
    total_fn = sum(score.fn for score in per_label.values())
    micro_p, micro_r = _ratio(total_tp, total_tp + total_fp), _ratio(total_tp, total_tp + total_fn)
    scores = list(per_label.values())
    return SpanReport(
        micro_precision=micro_p,
        micro_recall=micro_r,
        micro_f1=_f1(micro_p, micro_r),
        macro_precision=_ratio(sum(s.precision for s in scores), len(scores)),
        macro_recall=_ratio(sum(s.recall for s in scores), len(scores)),
        macro_f1=_ratio(sum(s.f1 for s in scores), len(scores)),
        per_label=per_label,
    )
