"""How models are scored on gold rows, which one a loop keeps, and when it stops."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from pipelines.config.base import Section


class EvalConfig(Section):
    """How models are scored on gold rows, and the thresholds a registered model predicts with."""

    threshold: float = Field(0.5, ge=0.0, le=1.0, description="span score threshold for dev/test scoring")
    calibrate: bool = Field(
        True,
        description="after each training, per-label thresholds that maximise each label's F1 on "
        "calibration_gold, stored with the checkpoint and used by weak labeling, evaluate and predict",
    )
    calibration_gold: str | None = Field(
        None, description="gold rows to calibrate on (default: data.dev_gold)"
    )
    threshold_floor: float = Field(0.1, ge=0.0, le=1.0, description="no calibrated threshold below this")
    calibration_min_support: int = Field(
        5, ge=1, description="labels with fewer gold spans keep eval.threshold"
    )
    order_tolerance: float = Field(
        0.02,
        ge=0.0,
        le=1.0,
        description="label-permutation check of every evaluation: per-label F1 with the labels' prompt "
        "order rotated may differ by at most this (labels with loop.guard_min_support gold spans); a "
        "model beyond it has not learned which label is which (not converged) and is never promoted",
    )


class LoopConfig(Section):
    iterations: int = Field(2, ge=0, description="self-training iterations after the seed")
    patience: int = Field(1, ge=1, description="stop after this many iterations without improvement")
    min_improvement: float = Field(0.0, ge=0.0, description="F1 gain that counts as improvement")
    start_from: str = Field(
        "champion",
        description="'champion' (the registry's, else seed training), 'seed', a checkpoint folder, "
        "models:/NAME@ALIAS or models:/NAME/VERSION, or a hub id such as urchade/gliner_small-v2.1",
    )
    retrain_from: Literal["previous", "base"] = Field(
        "previous", description="iteration k+1 starts from model k, or from the start model"
    )
    replay: float = Field(
        0.25, ge=0.0, description="gold seed rows mixed into each iteration's rows, as a share of them"
    )
    interpolation: list[float] = Field(
        default_factory=lambda: [0.25, 0.5, 0.75, 1.0],
        description="weights lam in (0, 1] of the trained model tried after each iteration's training: "
        "(1 - lam) x start + lam x trained, the best on the calibration rows kept among those within the "
        "promotion guard (WiSE-FT); [] = off",
    )
    guard_min_support: int = Field(
        10, ge=1, description="promotion guard: labels with at least this many dev spans are watched"
    )
    guard_max_drop: float = Field(
        0.05, ge=0.0, le=1.0, description="promotion guard: no watched label may lose more dev F1 than this"
    )

    @field_validator("interpolation")
    @classmethod
    def _weights(cls, weights: list[float]) -> list[float]:
        bad = [w for w in weights if not 0.0 < w <= 1.0]
        if bad:
            raise ValueError(f"interpolation weights must be in (0, 1] (1 = the trained model), got {bad}")
        return sorted(set(weights))
