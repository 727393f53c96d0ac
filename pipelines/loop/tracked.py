"""One way to run a stage: its line on the console and its report in MLflow.

    report = run_stage(console, "merge", stages.merge_training_rows, config, weak.path, folder)

prints `✓ merge  <report.summary()>  (12.3 s)` (or `✗ merge … ` when it raises; a progress bar while it
runs), and logs `report.tracked()` (metrics, params, artifacts) into the active MLflow run, if any.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import mlflow

from pipelines.console import Console
from pipelines.registry.tracking import log_report

Report = TypeVar("Report")


def run_stage(console: Console, name: str, stage: Callable[..., Report], *args: Any, **kwargs: Any) -> Report:
    """`stage(*args, **kwargs)` shown as one console line and logged to the active MLflow run."""
    with console.stage(name) as line:
        report = stage(*args, **kwargs)
        if mlflow.active_run() is not None:
            log_report(report)
        line.done(report.summary())  # type: ignore[attr-defined]
    return report
