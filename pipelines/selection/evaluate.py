"""Evaluation: strict span-level P/R/F1 of a model on gold rows, plus a readable sample table."""

from __future__ import annotations

import html
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from gliner_core import GLiNER
from gliner_core.metrics import SpanReport, evaluate_spans
from pipelines.reports import EvalReport

if TYPE_CHECKING:
    from gliner_core.calibration import CalibrationResult
    from pipelines.config import PipelineConfig


def model_threshold(model: GLiNER, fallback: float) -> float | None:
    """What to predict with: None (the checkpoint's calibrated per-label thresholds) when it has them,
    else `fallback`."""
    return None if model.config.label_thresholds else fallback


def predict_gold(
    model: GLiNER,
    gold: Sequence[Mapping],
    labels: Mapping[str, str],
    threshold: float | None,
    batch_size: int = 16,
) -> list[list[dict]]:
    return model.batch_predict_entities(
        [row["text"] for row in gold], dict(labels), batch_size=batch_size, threshold=threshold
    )


def score(
    gold: Sequence[Mapping], predictions: Sequence[Sequence[Mapping]], labels: Sequence[str]
) -> SpanReport:
    return evaluate_spans(
        [[(s["start"], s["end"], s["label"]) for s in row["spans"]] for row in gold],
        [[(e["start"], e["end"], e["label"]) for e in p] for p in predictions],
        list(labels),
    )


def evaluate(
    model: GLiNER, gold: Sequence[Mapping], labels: Mapping[str, str], threshold: float | None
) -> SpanReport:
    """Predict on gold texts and score; `labels` maps label -> prompt text."""
    return score(gold, predict_gold(model, gold, labels, threshold), list(labels))


def rotated(labels: Mapping[str, str], by: int = 1) -> dict[str, str]:
    """The same labels, their prompt order rotated by `by` (the first goes last)."""
    items = list(labels.items())
    by %= max(1, len(items))
    return dict(items[by:] + items[:by])


def label_order_spread(
    model: GLiNER,
    gold: Sequence[Mapping],
    labels: Mapping[str, str],
    threshold: float | None,
    scores: SpanReport,
) -> dict[str, float]:
    """The label-permutation check: per label, |F1 in `scores` (the labels in their order) - F1 with the
    labels' order rotated by one|. A model that has learned which label is which gives the same F1 in
    any order; one that has not yet predicts by a label's place in the prompt, and the spread shows it."""
    if len(labels) < 2:
        return {label: 0.0 for label in labels}
    other = evaluate(model, gold, rotated(labels), threshold)
    return {
        label: abs(score.f1 - other.per_label[label].f1)
        for label, score in scores.per_label.items()
        if label in other.per_label
    }


def sample_table_html(gold: Sequence[Mapping], predictions: Sequence[Sequence[Mapping]], limit: int) -> str:
    """Gold vs predicted entities, marked in the text, for a person to read."""

    def mark(text: str, spans: Sequence[Mapping], css: str) -> str:
        out, last = [], 0
        for s in sorted(spans, key=lambda s: s["start"]):
            if s["start"] < last:
                continue
            out.append(html.escape(text[last : s["start"]]))
            entity, label = html.escape(text[s["start"] : s["end"]]), html.escape(s["label"])
            out.append(f'<mark class="{css}">{entity}<sub>{label}</sub></mark>')
            last = s["end"]
        out.append(html.escape(text[last:]))
        return "".join(out)

    rows = []
    for row, predicted in list(zip(gold, predictions, strict=True))[:limit]:
        gold_set = {(s["start"], s["end"], s["label"]) for s in row["spans"]}
        pred_set = {(e["start"], e["end"], e["label"]) for e in predicted}
        verdict = (
            "exact"
            if gold_set == pred_set
            else f"{len(gold_set & pred_set)}/{len(gold_set)} found, {len(pred_set - gold_set)} extra"
        )
        gold_cell, pred_cell = mark(row["text"], row["spans"], "gold"), mark(row["text"], predicted, "pred")
        rows.append(f"<tr><td>{gold_cell}</td><td>{pred_cell}</td><td>{verdict}</td></tr>")
    style = (
        "mark.gold{background:#cfe8ff}mark.pred{background:#ffe3b3}"
        "td{vertical-align:top;padding:4px}sub{font-size:70%}"
    )
    return (
        f"<html><head><meta charset='utf-8'><style>{style}</style></head><body>"
        "<table border=1><tr><th>gold</th><th>predicted</th><th></th></tr>"
        + "".join(rows)
        + "</table></body></html>"
    )


def evaluate_rows(
    model: GLiNER,
    gold: Sequence[Mapping],
    labels: Mapping[str, str],
    threshold: float | None,
    name: str = "dev",
    sample_rows: int = 0,
) -> EvalReport:
    """The evaluate stage on gold rows already in memory: scores, and a sample table when asked;
    `threshold` None means the model's calibrated thresholds."""
    started = time.perf_counter()
    predictions = predict_gold(model, gold, labels, threshold)
    return EvalReport(
        name=name,
        scores=score(gold, predictions, list(labels)),
        threshold=threshold,
        sample_html=sample_table_html(gold, predictions, sample_rows) if sample_rows else None,
        seconds=time.perf_counter() - started,
    )


def calibrate(config: PipelineConfig, model: GLiNER, rows: Sequence[Mapping]) -> CalibrationResult:
    """Per-label thresholds of `model` that maximise micro F1 on gold `rows`, with the `eval` section's
    default, floor and minimum support (not applied to the model)."""
    from gliner_core.calibration import calibrate_thresholds

    return calibrate_thresholds(
        model,
        rows,
        config.prompts(),
        default_threshold=config.eval.threshold,
        floor=config.eval.threshold_floor,
        min_support=config.eval.calibration_min_support,
        objective="micro",
    )
