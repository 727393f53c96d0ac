"""How a model is trained (the seed on gold rows, each iteration on weak rows)."""

from __future__ import annotations

from pydantic import Field

from pipelines.config.base import Workers


class TrainConfig(Workers):
    """Fine-tuning with Ray Train: `num_workers` > 1 trains data-parallel (DDP)."""

    section = "train"

    epochs: int = Field(2, ge=1)
    batch_size: int = Field(8, ge=1, description="rows per worker step")
    lr_encoder: float = Field(3e-5, gt=0.0)
    lr_heads: float = Field(5e-4, gt=0.0)
    weight_decay: float = Field(0.01, ge=0.0)
    warmup_ratio: float = Field(0.1, ge=0.0, lt=1.0)
    max_grad_norm: float = Field(1.0, gt=0.0)
    label_smoothing: float = Field(0.1, ge=0.0, lt=1.0, description="alpha: target = y(1-alpha) + alpha/2")
    focal_alpha: float = Field(0.75, description="focal loss positive weight; < 0 turns it off")
    focal_gamma: float = Field(2.0, ge=0.0, description="focal loss focusing; 0 turns it off")
    torch_threads: int | None = Field(None, ge=1, description="torch threads per worker (default: its CPUs)")
    bucket_window: int = Field(
        0,
        ge=0,
        description="length bucketing: rows sorted by length within windows of this many batches "
        "(0: plain shuffle)",
    )
    checkpoint_every: int = Field(0, ge=0, description="also checkpoint every N steps (0: each epoch only)")
    max_failures: int = Field(2, ge=0, description="worker failures survived by resuming from a checkpoint")
