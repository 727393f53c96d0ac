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

    def summary(self) -> str:
        line = f"{self.rows} training rows, {self.spans} spans ({_counts(self.per_label)})"
        if self.replay_rows:
            line += f", {self.replay_rows} of them gold (replay)"
        if self.label_model is not None:
            line += f"; label model: {self.label_model.method}, {self.label_model.candidates} candidates"
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
        return Tracked(
            metrics=metrics,
            params={"train_rows_path": self.path, "train_rows": self.rows},
            json_artifacts=artifacts,
        )


@dataclass
class TrainReport:
    """The train stage: the best epoch's checkpoint (by dev micro F1) and the run's history."""

    model_path: str  # best epoch's model (gliner_core checkpoint directory)
    metrics: dict[str, float]  # that epoch's reported metrics
    dev_threshold: float  # the one threshold dev F1 is scored at while training (eval.threshold)
    history: list[dict[str, Any]] = field(default_factory=list)  # every report, in order
    seconds: float = 0.0
    rows: int = 0
    unsent_metrics: str | None = None  # JSONL of step metrics MLflow never received (see replay_metrics)

    @property
    def dev_f1(self) -> float | None:
        value = self.metrics.get("dev_micro_f1")
        return None if value is None or value < 0 else float(value)

    def summary(self) -> str:
        dev = (
            f", best epoch's dev micro F1 {self.dev_f1:.4f} at threshold {self.dev_threshold:g}"
            if self.dev_f1 is not None
            else ""
        )
        return f"{self.rows} rows, {int(self.metrics.get('step', 0))} steps{dev}"

    def tracked(self) -> Tracked:
        return Tracked(metrics={"train_seconds": self.seconds, "seconds_train": self.seconds})


@dataclass
class EvalReport:
    """The evaluate stage: strict span P/R/F1 per label on gold rows."""

    name: str  # "dev", "test": the prefix of its metrics
    scores: SpanReport
    threshold: float | None  # None: the checkpoint's calibrated per-label thresholds
    sample_html: str | None = None  # gold vs predicted spans of the first rows, for a person to read
    seconds: float = 0.0

    @property
    def micro_f1(self) -> float:
        return self.scores.micro_f1

    def per_label_f1(self) -> dict[str, float]:
        return {label: s.f1 for label, s in self.scores.per_label.items()}

    def summary(self) -> str:
        at = "calibrated thresholds" if self.threshold is None else f"threshold {self.threshold}"
        return f"{self.name} micro F1 {self.micro_f1:.4f} ({at})"

    def tracked(self) -> Tracked:
        texts = {f"{self.name}_report.txt": self.scores.format_table()}
        if self.sample_html:
            texts[f"{self.name}_sample_predictions.html"] = self.sample_html
        return Tracked(
            metrics={f"{self.name}_{k}": v for k, v in self.scores.to_dict().items()},
            text_artifacts=texts,
        )


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
