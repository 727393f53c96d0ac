"""DDP with two Ray Train workers on CPU (gloo): the ranks stay in step and in sync, and two workers
train what one worker trains on the same global batches.

Each run trains a tiny GLiNER (2-layer BERT, no dropout) on sample rows that offer one label each
(so the prompt does not depend on which rank builds the batch), plus rows without words, with a
row count that leaves one rank's part of the last batch of each epoch empty. Before the fix a rank
skipped a batch without words on its own and the other rank waited at the gradient all-reduce
forever; Ray Train's default split also dropped a row. The runs are guarded by a timeout.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest
import ray.data
import torch
from safetensors.torch import load_file

from gliner_core import GLiNER
from pipelines.config import SAMPLE_DIR, TrainConfig
from pipelines.data.read import read_gold
from pipelines.training.train_worker import StepRecord, TrainSpec
from pipelines.training.trainer import train_model

SAMPLE = SAMPLE_DIR
LABELS = {"person": "person", "organisation": "organisation", "location": "location", "date": "date"}
EPOCHS, GLOBAL_BATCH = 2, 4
TIMEOUT_S = 420  # a hung all-reduce never returns: fail the run instead of the suite

pytestmark = [pytest.mark.integration, pytest.mark.timeout(TIMEOUT_S)]


def training_rows() -> list[dict]:
    """9 rows with words (3 global batches of 4, 4, 1 per epoch) and 3 without."""
    gold = [r for r in read_gold(str(SAMPLE / "gold_seed.jsonl")) if r["spans"]][:9]
    rows = [
        {
            "doc_id": f"row-{i:02d}",
            "text": r["text"],
            "labels": [r["spans"][0]["label"]],
            "weight": 1.0,
            "spans": [{**s, "score": 1.0, "origin": "gold"} for s in r["spans"]],
        }
        for i, r in enumerate(gold)
    ]
    empty = [
        {"doc_id": f"empty-{i}", "text": text, "labels": ["person"], "weight": 1.0, "spans": []}
        for i, text in enumerate(["", "   ", "\n\t"])
    ]
    return rows + empty


WITH_WORDS = {f"row-{i:02d}" for i in range(9)}


class Recorder:
    """record_hook: one JSON line per (rank, step) with the rows trained and a hash of the weights."""

    def __init__(self, path: str):
        self.path = path

    def __call__(self, record: StepRecord) -> None:
        digest = hashlib.sha256()
        for p in record.module.parameters():
            digest.update(p.detach().cpu().numpy().tobytes())
        line = {
            "epoch": record.epoch,
            "batch": record.batch,
            "step": record.step,
            "rank": record.rank,
            "ids": record.row_ids,
            "global_rows": record.global_rows,
            "loss": record.loss,
            "weights": digest.hexdigest(),
        }
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")


def kill_rank_once(marker: str, step: int = 5, rank: int = 1):
    """Step hook: the first time `rank` reaches `step`, its process dies (an OOM kill, a lost node)."""

    def hook(current: int, current_rank: int) -> None:
        if current == step and current_rank == rank and not os.path.exists(marker):
            Path(marker).write_text("killed")
            time.sleep(3)  # the controller has registered the step-4 checkpoint by now
            os._exit(1)

    return hook


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, tiny_backbone) -> str:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny-gliner")
    GLiNER.from_backbone(tiny_backbone, hidden_size=32, max_len=48, dropout=0.0).save_pretrained(path)
    return str(path)


def run(tmp_path, name: str, model: str, workers: int, **hooks):
    config = TrainConfig(
        max_epochs=EPOCHS,
        batch_size=GLOBAL_BATCH // workers,
        num_workers=workers,
        cpus_per_worker=0.5,  # two workers and Ray Data's tasks on 2 CPUs
        torch_threads=1,
        lr_encoder=1e-3,
        lr_heads=3e-3,
        warmup_steps=0,
        checkpoint_every=2,
        max_failures=1,
    )
    data = training_rows()
    record = tmp_path / f"{name}.jsonl"
    result = train_model(
        ray.data.from_items(data),
        TrainSpec(config, model, LABELS, [], num_rows=len(data), seed=7),
        run_name=name,
        storage_path=str(tmp_path / "ray"),
        output_dir=str(tmp_path / name),
        record_hook=Recorder(str(record)),
        **hooks,
    )
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    return result, lines


def weights(result) -> dict[str, torch.Tensor]:
    return load_file(str(Path(result.model_path) / "model.safetensors"))


@pytest.fixture(scope="module")
def single_and_double(tmp_path_factory, ray_local, tiny_model):
    """The one-worker and the two-worker run, side by side (Ray Train runs them in threads, as Tune
    does): together they take 1.5 of the 2 CPUs, leaving Ray Data its share, and each spends most of
    its time starting up, so side by side they take less than one after the other."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        one = pool.submit(run, tmp_path_factory.mktemp("single"), "single", tiny_model, 1)
        two = pool.submit(run, tmp_path_factory.mktemp("double"), "double", tiny_model, 2)
        return one.result(), two.result()


@pytest.fixture(scope="module")
def single(single_and_double):
    return single_and_double[0]


@pytest.fixture(scope="module")
def double(single_and_double):
    return single_and_double[1]


def test_two_ranks_take_the_same_steps_and_hold_identical_weights(double):
    result, lines = double
    steps_per_epoch = 3  # 9 rows with words in global batches of 4: 4, 4, 1
    for rank in (0, 1):
        mine = [line for line in lines if line["rank"] == rank]
        assert [line["step"] for line in mine] == list(range(1, EPOCHS * steps_per_epoch + 1))
    by_step = {}
    for line in lines:
        by_step.setdefault(line["step"], []).append(line)
    for step, pair in by_step.items():
        assert len(pair) == 2
        assert pair[0]["weights"] == pair[1]["weights"], f"ranks differ after step {step}"
        assert pair[0]["loss"] == pair[1]["loss"]
    # the last batch of each epoch has one row: rank 1 ran a zero-weight step instead of skipping it
    assert any(line["rank"] == 1 and line["ids"] == [] and line["global_rows"] == 1 for line in lines)
    assert result.history[-1]["step"] == EPOCHS * steps_per_epoch
    assert result.history[-1]["rows_without_words"] == 3


def test_rank_shards_cover_every_row_with_words_once_per_epoch(double):
    _, lines = double
    for epoch in range(EPOCHS):
        trained = [i for line in lines if line["epoch"] == epoch for i in line["ids"]]
        assert sorted(trained) == sorted(WITH_WORDS)  # count and ids: none twice, none dropped
        for rank in (0, 1):
            mine = [line for line in lines if line["epoch"] == epoch and line["rank"] == rank]
            shard = [i for line in mine for i in line["ids"]]
            assert 4 <= len(shard) <= 5


def test_two_workers_match_one_worker_on_the_same_global_batches(single, double):
    one, one_lines = single
    two, two_lines = double
    curve_one = [line["loss"] for line in one_lines]
    curve_two = [line["loss"] for line in sorted(two_lines, key=lambda x: x["step"]) if line["rank"] == 0]
    assert len(curve_one) == len(curve_two) == 6
    # the same rows in each global batch; the sums only group differently (per rank, then all-reduced)
    for a, b in zip(curve_one, curve_two, strict=True):
        assert b == pytest.approx(a, rel=1e-4)
    assert curve_one[-1] < curve_one[0]  # and it learns
    first, second = weights(one), weights(two)
    assert first.keys() == second.keys()
    for name in first:
        torch.testing.assert_close(second[name], first[name], rtol=0, atol=1e-4, msg=name)


def test_a_rank_killed_mid_epoch_resumes_in_step_and_ends_where_an_unbroken_run_ends(
    tmp_path, ray_local, tiny_model, double
):
    unbroken, _ = double
    marker = tmp_path / "killed.marker"
    result, lines = run(tmp_path, "killed", tiny_model, 2, step_hook=kill_rank_once(str(marker)))
    assert marker.exists(), "the worker was never killed"
    final = result.history[-1]
    assert final["resumed_from_step"] == 4  # the step-4 checkpoint, not the start
    assert final["step"] == 6 and final["epoch"] == 1  # no batch lost or repeated
    after = [line for line in lines if line["step"] > 4 and line["ids"]]
    assert {line["step"] for line in after} == {5, 6}
    # resuming restores weights, optimizer, schedule and the place in the plan: the run ends with the
    # weights of the run that was never interrupted
    resumed, reference = weights(result), weights(unbroken)
    for name in reference:
        torch.testing.assert_close(resumed[name], reference[name], rtol=0, atol=1e-6, msg=name)
