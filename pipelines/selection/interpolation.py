"""Weight interpolation between an iteration's start model and the model trained from it (WiSE-FT).

Fine-tuned on its own weak labels, a model learns some labels better and forgets others (the seed's
knowledge of a label the weak rows rarely hold). Averaging the two sets of weights,

    theta(lam) = (1 - lam) * theta_start + lam * theta_trained,      0 < lam <= 1,

keeps what both know (Wortsman et al., "Robust fine-tuning of zero-shot models", CVPR 2022): the two
share their initialisation, so the path between them stays in one basin. `interpolate_model` scores
each `lam` of `loop.interpolation` on the calibration rows (`eval.calibration_gold`, default the dev
set) — with per-label thresholds calibrated for it when `eval.calibrate` is on, the way the model
will predict — and rewrites the trained checkpoint with the best one (ties: the larger `lam`).

"Best" answers to the promotion guard (`pipelines.selection.promotion`): a weight under which a watched label
(at least `loop.guard_min_support` gold spans) scores more than `loop.guard_max_drop` F1 below the start
model on the same rows is chosen only when every weight is. A larger step that buys micro F1 by
forgetting a label would be refused at promotion anyway; a smaller one that keeps it may not be.

The choice is made on gold rows, like the thresholds: report on rows it did not see.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import torch

from gliner_core.gliner import GLiNER
from pipelines.config import PipelineConfig
from pipelines.data.read import read_gold
from pipelines.data.storage import local_copy, save_model
from pipelines.reports import InterpolationReport
from pipelines.selection.evaluate import calibrate, evaluate_rows, model_threshold
from pipelines.selection.promotion import describe_losses, guard_losses, label_scores


def interpolate_state(
    start: Mapping[str, torch.Tensor], trained: Mapping[str, torch.Tensor], lam: float
) -> dict[str, torch.Tensor]:
    """(1 - lam) * start + lam * trained for floating-point tensors; others (counters, ids) from `trained`."""
    if start.keys() != trained.keys():
        missing = sorted(set(start) ^ set(trained))[:5]
        raise ValueError(f"cannot interpolate models with different parameters (e.g. {missing})")
    mixed = {}
    for name, value in trained.items():
        base = start[name]
        if base.shape != value.shape:
            raise ValueError(f"cannot interpolate {name}: shape {tuple(base.shape)} vs {tuple(value.shape)}")
        mixed[name] = torch.lerp(base, value, lam) if value.is_floating_point() else value.clone()
    return mixed


@dataclass
class Selection:
    """A model's scores on the selection rows."""

    micro_f1: float
    per_label: dict[str, tuple[float, int]]  # label -> (F1, gold spans)


def selection_score(config: PipelineConfig, model: GLiNER, rows: Sequence[Mapping]) -> Selection:
    """Scores on `rows` as the model would predict after this iteration: with thresholds calibrated on
    them when `eval.calibrate` is on, else at the model's own (or the configured) threshold."""
    if config.eval.calibrate:
        result = calibrate(config, model, rows)
        per_label = {label: (c.f1_after, c.support) for label, c in result.per_label.items()}
        return Selection(result.micro_f1_after, per_label)
    threshold = model_threshold(model, config.eval.threshold)
    report = evaluate_rows(model, rows, config.prompts(), threshold, "selection")
    return Selection(report.micro_f1, label_scores(report))


def choose_weight(scores: Mapping[float, float], guarded: Collection[float]) -> float:
    """The weight with the best score among those not `guarded` (all of them when every one is); ties go
    to the larger weight."""
    allowed = [lam for lam in scores if lam not in guarded] or list(scores)
    return max(allowed, key=lambda lam: (scores[lam], lam))


def interpolate_model(
    config: PipelineConfig, start_model: str, trained_model: str, grid: Sequence[float] | None = None
) -> InterpolationReport:
    """Score theta(lam) for each lam of `grid` (default `loop.interpolation`) and save the best in place of
    `trained_model` (left untouched when lam = 1 wins)."""
    started = time.perf_counter()
    grid = sorted(set(grid if grid is not None else config.loop.interpolation))
    if not grid or any(not 0.0 < lam <= 1.0 for lam in grid):
        raise ValueError(f"interpolation weights must be in (0, 1], got {grid}")
    rows = read_gold(config.eval.calibration_gold or config.data.dev_gold)
    start = GLiNER.from_pretrained(local_copy(start_model)).state_dict()
    model = GLiNER.from_pretrained(local_copy(trained_model))
    model.eval()
    trained = {name: value.detach().clone() for name, value in model.state_dict().items()}
    model.load_state_dict(start)
    before = selection_score(config, model, rows)
    scores: dict[float, float] = {}
    guarded: dict[float, str] = {}  # lam -> the watched labels it loses, when it loses any
    for lam in grid:
        model.load_state_dict(interpolate_state(start, trained, lam))
        selection = selection_score(config, model, rows)
        scores[lam] = selection.micro_f1
        lost = guard_losses(selection.per_label, before.per_label, config.loop)
        if lost:
            guarded[lam] = describe_losses(lost)
    chosen = choose_weight(scores, guarded)
    if chosen != 1.0:
        model.load_state_dict(interpolate_state(start, trained, chosen))
        save_model(model, trained_model)
    return InterpolationReport(
        scores=scores,
        chosen=chosen,
        rows=len(rows),
        calibrated=config.eval.calibrate,
        seconds=time.perf_counter() - started,
        start_score=before.micro_f1,
        guarded=guarded,
    )
