"""Ray Train fine-tuning: learns, checkpoints in gliner_core format, survives a killed worker."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import ray.data
import torch

from gliner_core import GLiNER
from pipelines.config import SAMPLE_DIR, TrainConfig
from pipelines.data.read import read_gold
from pipelines.training.train_worker import TrainSpec
from pipelines.training.trainer import train_model

SAMPLE = SAMPLE_DIR
LABELS = {"person": "person", "organisation": "organisation", "location": "location", "date": "date"}


def rows(n: int) -> list[dict]:
    gold = read_gold(str(SAMPLE / "gold_seed.jsonl"))[:n]
    return [
        {
            "doc_id": str(i),
            "text": r["text"],
            "labels": list(LABELS),
            "weight": 1.0,
            "spans": [{**s, "score": 1.0, "origin": "gold"} for s in r["spans"]],
        }
        for i, r in enumerate(gold)
    ]


@pytest.fixture(scope="module")
def base_model(tmp_path_factory, tiny_backbone) -> str:
    """Random heads on the tiny test encoder: resuming is machinery, not learning."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("base")
    GLiNER.from_backbone(tiny_backbone, hidden_size=64, max_len=64).save_pretrained(path)
    return str(path)


def kill_once(marker: str):
    """Step hook: the first time step 5 is reached, the worker process dies (like an OOM kill).

    It waits a moment first so the controller has registered the step-4 checkpoint, as it
    would have in a real run where failures do not follow a report within milliseconds.
    """

    def hook(step: int, rank: int) -> None:
        if step == 5 and not os.path.exists(marker):
            Path(marker).write_text("killed")
            time.sleep(3)
            os._exit(1)

    return hook


@pytest.mark.slow
def test_training_resumes_after_a_worker_is_killed(ray_local, base_model, tmp_path):
    data = rows(24)
    dev = read_gold(str(SAMPLE / "gold_dev.jsonl"))[:8]
    config = TrainConfig(
        max_steps=12,
        eval_every=6,
        batch_size=4,
        checkpoint_every=2,
        max_failures=1,
        lr_heads=1e-3,
        lr_encoder=1e-4,
    )
    result = train_model(
        ray.data.from_items(data),
        TrainSpec(config, base_model, LABELS, dev, num_rows=len(data)),
        run_name="killed",
        storage_path=str(tmp_path / "ray"),
        output_dir=str(tmp_path / "best"),
        step_hook=kill_once(str(tmp_path / "killed.marker")),
    )
    assert (tmp_path / "killed.marker").exists(), "the worker was never killed"
    final = result.history[-1]
    assert final["resumed_from_step"] == 4  # restarted from the step-4 checkpoint, not from scratch
    # the budget: 24 rows / 4 per step, two passes; none lost or repeated
    assert result.steps == 12 and result.stopped == "reached the budget (12 steps)"
    model = GLiNER.from_pretrained(result.model_path)
    assert model.predict_entities("Maria Lindqvist joined Helix Biotech.", list(LABELS), threshold=0.0)
    assert "dev_micro_f1" in result.metrics and result.dev_score is not None
    # the console line says where the kept checkpoint was taken and what it scored
    assert f"best at step {result.best_step}: dev score {result.dev_score:.4f}" in result.summary()
    assert result.best_step in (6, 12) and "budget (12 steps)" in result.summary()
