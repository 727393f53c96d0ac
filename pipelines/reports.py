"""What each stage returns: a typed report with a one-line summary for the console and what MLflow keeps.

`Tracked` is the MLflow side (metrics, params, artifacts); `pipelines.loop.tracked.log_report` is the one
place that sends it. Reports hold plain data only, so stages stay free of MLflow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gliner_core.metrics import SpanReport


@dataclass
class Tracked:
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    json_artifacts: dict[str, Any] = field(default_factory=dict)  # file name -> JSON-able object
    text_artifacts: dict[str, str] = field(default_factory=dict)  # file name -> text


def _counts(per_label: dict[str, int]) -> str:
    return ", ".join(f"{label} {n}" for label, n in per_label.items()) or "none"


@dataclass
class WeakLabelReport:
    """The weak-label stage: documents labeled by GLiNER, written as Parquet under `path`."""

    path: str
    documents: int
    spans: int
    per_label: dict[str, int]
    score_quantiles: dict[str, float]  # p10 / p50 / p90 of span scores
    statistics: dict[str, Any]  # `merge.label_statistics` of the weak labels
    seconds: float

    def summary(self) -> str:
        return f"{self.documents} documents, {self.spans} spans ({_counts(self.per_label)})"

    def tracked(self) -> Tracked:
        return Tracked(
            metrics={
                "weak_documents": self.documents,
                "weak_spans": self.spans,
                "weak_spans_per_doc": self.spans / self.documents if self.documents else 0.0,
                "weak_label_docs_per_s": self.documents / self.seconds if self.seconds else 0.0,
                "seconds_weak_label": self.seconds,
                **{f"weak_score_{q}": v for q, v in self.score_quantiles.items()},
            },
            json_artifacts={"weak_label_statistics.json": self.statistics},
        )


@dataclass
class MergeReport:
    """The merge stage: training rows (LLM ∪ GLiNER spans, filtered), written as Parquet under `path`."""

    path: str
    rows: int
    spans: int
    per_label: dict[str, int]
    statistics: dict[str, Any]  # `merge.label_statistics` of the training rows
    seconds: float
    per_label_before_balance: dict[str, int] | None = None  # spans per label before class balance
    replay_rows: int = 0  # gold rows mixed in
    label_model: Any = None  # `label_model.LabelModelReport` when a label model resolved the votes
    label_model_params: dict[str, Any] | None = None  # the fitted `LabelModel`
    quality: Any = None  # `weak.quality.QualityReport` on `data.corpus_gold`, when given

    def summary(self) -> str:
        line = f"{self.rows} training rows, {self.spans} spans ({_counts(self.per_label)})"
        if self.replay_rows:
            line += f", {self.replay_rows} of them gold (replay)"
        if self.label_model is not None:
            line += f"; label model: {self.label_model.method}, {self.label_model.candidates} candidates"
        if self.quality is not None and self.quality.sources:
            scored = ", ".join(f"{name} {s.micro_f1:.3f}" for name, s in self.quality.sources.items())
            line += f"; F1 on {self.quality.documents} corpus gold documents: {scored}"
        return line

    def tracked(self) -> Tracked:
        metrics = {
            "train_rows": self.rows,
            "train_spans": self.spans,
            "replay_rows": self.replay_rows,
            "seconds_merge": self.seconds,
            **{f"train_spans_{label}": n for label, n in self.per_label.items()},
        }
        artifacts: dict[str, Any] = {"label_statistics.json": self.statistics}
        if self.per_label_before_balance is not None:
            metrics.update(
                {f"train_spans_before_balance_{k}": v for k, v in self.per_label_before_balance.items()}
            )
        if self.label_model is not None:
            metrics.update(self.label_model.metrics())
            artifacts["label_model_report.json"] = self.label_model.model_dump()
            artifacts["label_model.json"] = self.label_model_params
        texts = {}
        if self.quality is not None:
            metrics.update(self.quality.metrics())
            texts["weak_label_quality.txt"] = self.quality.table()
        return Tracked(
            metrics=metrics,
            params={"train_rows_path": self.path, "train_rows": self.rows},
            json_artifacts=artifacts,
            text_artifacts=texts,
        )


@dataclass
class TrainReport:
    """The train stage: the best checkpoint by dev score (calibrated micro F1) and the run's history."""

    model_path: str  # the best checkpoint's model (gliner_core checkpoint directory)
    metrics: dict[str, float]  # what was reported with that checkpoint (its step, dev scores)
    dev_threshold: float  # the threshold the dev F1 beside the score is taken at (eval.threshold)
    steps: int = 0  # optimizer steps taken in all
    stopped: str = ""  # why training stopped (converged, or the budget)
    history: list[dict[str, Any]] = field(default_factory=list)  # the kept checkpoints' reports, by step
    seconds: float = 0.0
    rows: int = 0
    unsent_metrics: str | None = None  # JSONL of step metrics MLflow never received (see replay_metrics)

    @property
    def dev_score(self) -> float | None:
        value = self.metrics.get("dev_score")
        return None if value is None or value < 0 else float(value)

    @property
    def best_step(self) -> int:
        return int(self.metrics.get("step", 0))

    def summary(self) -> str:
        line = f"{self.rows} rows, {self.steps} steps"
        if self.dev_score is not None:
            line += f"; best at step {self.best_step}: dev score {self.dev_score:.4f} (calibrated micro F1)"
        return f"{line}; {self.stopped}" if self.stopped else line

    def tracked(self) -> Tracked:
        metrics = {"train_seconds": self.seconds, "seconds_train": self.seconds, "train_steps": self.steps}
        if self.dev_score is not None:
            metrics |= {"train_best_dev_score": self.dev_score, "train_best_step": self.best_step}
        return Tracked(metrics=metrics, params={"train_stopped": self.stopped[:250]} if self.stopped else {})


@dataclass
class EvalReport:
    """The evaluate stage: strict span P/R/F1 per label on gold rows, and the label-permutation check."""

    name: str  # "dev", "test": the prefix of its metrics
    scores: SpanReport
    threshold: float | None  # None: the checkpoint's calibrated per-label thresholds
    sample_html: str | None = None  # gold vs predicted spans of the first rows, for a person to read
    seconds: float = 0.0
    order_spread: dict[str, float] | None = None  # label -> |F1 - F1 with the label order rotated|
    order_tolerance: float = 0.02  # the most a watched label's spread may be (eval.order_tolerance)
    order_min_support: int = 10  # labels with this many gold spans are watched (loop.guard_min_support)

    @property
    def micro_f1(self) -> float:
        return self.scores.micro_f1

    def per_label_f1(self) -> dict[str, float]:
        return {label: s.f1 for label, s in self.scores.per_label.items()}

    def order_failures(self) -> dict[str, float]:
        """Watched labels whose F1 moves by more than the tolerance when the label order is rotated."""
        spread = self.order_spread or {}
        support = {label: s.support for label, s in self.scores.per_label.items()}
        return {
            label: value
            for label, value in spread.items()
            if support.get(label, 0) >= self.order_min_support and value > self.order_tolerance
        }

    @property
    def converged(self) -> bool:
        """Per-label F1 does not depend on the order of the labels (True when not checked)."""
        return not self.order_failures()

    def order_note(self) -> str:
        if self.order_spread is None:
            return ""
        failures = self.order_failures()
        if failures:
            worst = ", ".join(
                f"{label} {v:.3f}" for label, v in sorted(failures.items(), key=lambda kv: -kv[1])
            )
            return (
                f"NOT CONVERGED: per-label F1 changes with the label order ({worst} > "
                f"{self.order_tolerance}): the model has not learned which label is which"
            )
        return f"label order: F1 spread {max(self.order_spread.values(), default=0.0):.3f} (converged)"

    def summary(self) -> str:
        at = "calibrated thresholds" if self.threshold is None else f"threshold {self.threshold}"
        note = self.order_note()
        return f"{self.name} micro F1 {self.micro_f1:.4f} ({at})" + (f"; {note}" if note else "")

    def tracked(self) -> Tracked:
        texts = {f"{self.name}_report.txt": self.scores.format_table()}
        if self.sample_html:
            texts[f"{self.name}_sample_predictions.html"] = self.sample_html
        metrics = {f"{self.name}_{k}": v for k, v in self.scores.to_dict().items()}
        if self.order_spread is not None:
            metrics |= {f"{self.name}_order_spread/{k}": v for k, v in self.order_spread.items()}
            metrics[f"{self.name}_converged"] = float(self.converged)
        return Tracked(metrics=metrics, text_artifacts=texts)


@dataclass
class SynthStageReport:
    """The synth stage inside the loop: `synth.stage.SynthReport` (counts per task and status)."""

    report: Any  # synth.stage.SynthReport

    @property
    def rows(self) -> int:
        return self.report.rows

    @property
    def output(self) -> str:
        return self.report.output

    def table(self) -> str:
        return self.report.table()

    def summary(self) -> str:
        ok = sum(by_status.get("ok", 0) for by_status in self.report.counts.values())
        return f"{self.report.rows} LLM rows, {ok} ok, {sum(self.report.spans.values())} grounded spans"

    def tracked(self) -> Tracked:
        return Tracked(
            metrics=self.report.metrics(),
            params={"synth_rows_path": self.report.output},
            text_artifacts={"synth_report.md": self.report.table()},
        )


@dataclass
class InterpolationReport:
    """The interpolate stage: micro F1 on the selection rows for each weight `lam` of the trained model
    (0: the start model, 1: the trained one) and the one kept (`pipelines.selection.interpolation`)."""

    scores: dict[float, float]
    chosen: float
    rows: int
    calibrated: bool  # scored with thresholds calibrated on the rows
    seconds: float
    start_score: float = 0.0  # lam = 0, the start model, on the same rows
    guarded: dict[float, str] = field(default_factory=dict)  # lam -> watched labels it loses beyond the guard

    def summary(self) -> str:
        def tried(lam: float, f1: float) -> str:
            return f"{lam:g}: {f1:.4f}" + (f" (loses {self.guarded[lam]})" if lam in self.guarded else "")

        listed = ", ".join(tried(lam, f1) for lam, f1 in self.scores.items())
        how = "calibrated " if self.calibrated else ""
        kept = f"kept {self.chosen:g}"
        if self.guarded and self.chosen not in self.guarded:
            kept += " (the best within the promotion guard)"
        elif self.chosen in self.guarded:
            kept += " (every weight loses a watched label)"
        weights = f"0: {self.start_score:.4f}, {listed}"
        return f"{how}micro F1 on {self.rows} rows by trained-model weight ({weights}): {kept}"

    def tracked(self) -> Tracked:
        return Tracked(
            metrics={
                "interpolation_weight": self.chosen,
                "seconds_interpolate": self.seconds,
                "interpolation_f1/0": self.start_score,
                **{f"interpolation_f1/{lam:g}": f1 for lam, f1 in self.scores.items()},
            },
            json_artifacts={
                "interpolation.json": {
                    "start": self.start_score,
                    "scores": {f"{lam:g}": f1 for lam, f1 in self.scores.items()},
                    "loses_watched_labels": {f"{lam:g}": why for lam, why in self.guarded.items()},
                    "chosen": self.chosen,
                }
            },
        )


@dataclass
class CalibrationReport:
    """The calibrate stage: per-label thresholds that maximise F1 on the calibration rows, stored with
    the checkpoint (`gliner_core.calibration.CalibrationResult`)."""

    result: Any  # gliner_core.calibration.CalibrationResult
    rows: int
    seconds: float

    def summary(self) -> str:
        r = self.result
        moved = ", ".join(f"{label} {t:.2f}" for label, t in r.thresholds.items() if t != r.default_threshold)
        return (
            f"{moved or 'every label keeps ' + str(r.default_threshold)}; micro F1 on the {self.rows} "
            f"calibration rows {r.micro_f1_before:.4f} -> {r.micro_f1_after:.4f}"
        )

    def tracked(self) -> Tracked:
        return Tracked(
            metrics={f"calibration_{k}": v for k, v in self.result.to_dict().items()},
            json_artifacts={"calibration.json": self.result.to_dict()},
            text_artifacts={"calibration.txt": self.result.table()},
        )
