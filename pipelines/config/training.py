"""How a model is trained (the seed on gold rows, each iteration on weak rows): until its dev score stops
improving, within a step budget."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from pipelines.config.base import Workers, deprecated


class TrainConfig(Workers):
    """Fine-tuning with Ray Train (`num_workers` > 1 trains data-parallel, DDP), to convergence: every
    `eval_every` steps the model is scored on the dev rows by its calibrated micro F1 (per-label
    thresholds that maximise each label's F1: a score that does not depend on one threshold); training
    stops once `patience` scores in a row have not beaten the best by `min_gain` (never before
    `min_steps`), or at `max_steps` (or `max_epochs` passes over the rows, if set), and the best
    checkpoint is kept. Few rows mean more passes, not fewer steps."""

    section = "train"

    max_steps: int = Field(1500, ge=1, description="the budget: optimizer steps at most")
    min_steps: int = Field(200, ge=0, description="no stop for lack of gain before this many steps")
    eval_every: int = Field(50, ge=1, description="steps between dev scores (and checkpoints)")
    patience: int = Field(3, ge=1, description="dev scores in a row without a gain before stopping")
    min_gain: float = Field(0.002, ge=0.0, description="what a dev score must beat the best by to count")
    max_epochs: int | None = Field(None, ge=1, description="also stop after this many passes over the rows")
    batch_size: int = Field(8, ge=1, description="rows per worker step")
    lr_encoder: float = Field(3e-5, gt=0.0)
    lr_heads: float = Field(5e-4, gt=0.0)
    weight_decay: float = Field(0.01, ge=0.0)
    warmup_steps: int = Field(
        50, ge=0, description="linear learning-rate warmup, then linear decay to 0 at the budget"
    )
    max_grad_norm: float = Field(1.0, gt=0.0)
    label_smoothing: float = Field(0.1, ge=0.0, lt=1.0, description="alpha: target = y(1-alpha) + alpha/2")
    focal_alpha: float = Field(0.75, description="focal loss positive weight; < 0 turns it off")
    focal_gamma: float = Field(2.0, ge=0.0, description="focal loss focusing; 0 turns it off")
    torch_threads: int | None = Field(
        None,
        ge=1,
        description="torch threads per worker (default: its share of its node's cores, at least its CPUs)",
    )
    bucket_window: int = Field(
        0,
        ge=0,
        description="length bucketing: rows sorted by length within windows of this many batches "
        "(0: plain shuffle)",
    )
    checkpoint_every: int = Field(
        0, ge=0, description="also checkpoint every N steps for resuming (0: at each dev score only)"
    )
    max_failures: int = Field(2, ge=0, description="worker failures survived by resuming from a checkpoint")

    @model_validator(mode="before")
    @classmethod
    def _old_budget(cls, data: Any) -> Any:
        """`epochs` (a fixed number of passes) is now a cap, `max_epochs`; `warmup_ratio` (a share of a
        budget the loop no longer fixes) is read as that share of `max_steps`."""
        if not isinstance(data, dict):
            return data
        where = cls.section
        if "epochs" in data:
            deprecated(
                f"{where}.epochs is deprecated and will be removed in the next release: use "
                f"{where}.max_epochs (a cap on the passes over the rows: training now runs until its dev "
                "score stops improving)"
            )
            data = {k: v for k, v in data.items() if k != "epochs"} | {"max_epochs": data["epochs"]}
        if "warmup_ratio" in data:
            deprecated(
                f"{where}.warmup_ratio is deprecated and will be removed in the next release: use "
                f"{where}.warmup_steps (read as that share of max_steps)"
            )
            steps = data.get("max_steps", cls.model_fields["max_steps"].default)
            ratio = float(data["warmup_ratio"])
            data = {k: v for k, v in data.items() if k != "warmup_ratio"}
            data["warmup_steps"] = round(ratio * steps)  # given by name: over a section default
        return data
