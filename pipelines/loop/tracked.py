"""One way to run a stage: its line on the console and its report in MLflow.

    report = run_stage(console, "merge", stages.merge_training_rows, config, weak.path, folder)

prints `✓ merge  <report.summary()>  (12.3 s)` (or `✗ merge … ` when it raises; a progress bar while it
runs), and logs `report.tracked()` (metrics, params, artifacts) into the active MLflow run, if any:
`log_report` is the one place a stage's report reaches MLflow.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import mlflow

from pipelines.console import Console
from pipelines.reports import Tracked

Report = TypeVar("Report")


def run_stage(console: Console, name: str, stage: Callable[..., Report], *args: Any, **kwargs: Any) -> Report:
    """`stage(*args, **kwargs)` shown as one console line and logged to the active MLflow run."""
    with console.stage(name) as line:
        report = stage(*args, **kwargs)
        if mlflow.active_run() is not None:
            log_report(report)
        line.done(report.summary())  # type: ignore[attr-defined]
    return report


def log_report(report: Any) -> None:
    """Everything a stage's report asks MLflow to keep (`report.tracked()`), in the active run."""
    tracked: Tracked = report.tracked()
    if tracked.metrics:
        mlflow.log_metrics({k: float(v) for k, v in tracked.metrics.items()})
    if tracked.params:
        mlflow.log_params(tracked.params)
    for name, data in tracked.json_artifacts.items():
        mlflow.log_text(json.dumps(data, indent=2, default=str), name)
    for name, text in tracked.text_artifacts.items():
        mlflow.log_text(text, name)
