"""What every Ray Train worker runs: load the rows, restore, train epoch by epoch, checkpoint.

    train_loop({"spec": TrainSpec(...), "step_hook": None, "record_hook": None})   # what TorchTrainer runs

Every worker holds the training rows (an Arrow table: `TrainingRows`) and follows the same
deterministic plan per epoch (`pipelines.training.batching.epoch_plan`): global batches of
`batch_size x world` rows, length-bucketed, rank r training on every world-th row of each. So the
ranks agree on every step without talking: none can skip or add a step on its own (a rank whose part
of the last batch is empty runs a zero-weight step on a filler row, so the gradient all-reduce always
has every rank), rows without words are left out of the plan, and each row is trained once per epoch
across the ranks. The loss of a step is the sum over the rank's rows times `world / global rows`,
which DDP's gradient average turns into the mean over the global batch: two workers with batch 8
compute what one worker with batch 16 computes.

Each step asks the model for a batch (`GLiNER.training_batch`) and optimizer groups
(`GLiNER.parameter_groups`), and steps AdamW (encoder / head learning rates, linear warmup then
decay, gradient clipping, bf16 autocast on GPU) on the smoothed focal/BCE loss. Rank 0 scores the
gold dev rows each epoch and reports a checkpoint (the model in gliner_core format plus optimizer
state); after a worker failure Ray restarts the group and training resumes from the latest
checkpoint at the same place in the same plan (batch order, label order and dropout are seeded per
step), without repeating or skipping a batch.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import tempfile
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import ray.train
import ray.train.torch
import torch

from pipelines.config import TrainConfig
from pipelines.console import emit, progress_line
from pipelines.training.batching import epoch_plan, rank_rows

log = logging.getLogger(__name__)

MODEL_DIR = "model"
STATE_FILE = "train_state.pt"
ROW_COLUMNS = ("doc_id", "text", "spans", "labels", "weight")
StepHook = Callable[[int, int], None]  # (step, rank): tests use it to kill a worker mid-epoch


@dataclass
class StepRecord:
    """What one rank did in one step (for `record_hook`: tests check shards and weights with it)."""

    epoch: int
    batch: int  # the global batch's number in the epoch's plan (1-based)
    step: int  # optimizer steps taken, this one included
    rank: int
    world: int
    row_ids: list[str]  # the rows this rank trained on (empty: a zero-weight filler step)
    global_rows: int  # rows in the global batch, all ranks together
    loss: float  # the global batch's mean loss
    module: torch.nn.Module


RecordHook = Callable[[StepRecord], None]


@dataclass
class TrainSpec:
    """Everything one training run needs, on every worker."""

    config: TrainConfig
    start_model: str  # gliner_core checkpoint folder (local or URI) to fine-tune
    labels: dict[str, str]  # label -> prompt, for dev scoring and negative sampling
    dev: list[dict] = field(default_factory=list)  # gold rows scored every eval_every steps (empty: none)
    label_pool: list[str] = field(
        default_factory=list
    )  # negatives for rows without a label set (default: labels)
    soft_targets: bool = False  # a span's score is its target (else 1)
    eval_threshold: float = 0.5  # the default threshold of the dev score's calibration
    threshold_floor: float = 0.1  # no calibrated threshold below this (eval.threshold_floor)
    calibration_min_support: int = 5  # labels with fewer dev spans keep eval_threshold
    num_rows: int = 0  # training rows in the dataset
    seed: int = 0
    tracking_uri: str | None = None  # step metrics go to this MLflow run (rank 0)
    run_id: str | None = None
    metrics_spool: str | None = None  # where metrics MLflow never received are kept
    metrics_flush_timeout_s: float = 30.0
    progress_stage: str = "train"  # the console stage whose bar this run moves


class TrainingRows:
    """All training rows, held by every worker: columns `ROW_COLUMNS` in one deterministic order,
    and the number of words of each row (0: nothing to learn, left out of the plan)."""

    def __init__(self, table: pa.Table):
        from gliner_core.text import split_words

        keys = [c for c in ("doc_id", "text") if c in table.column_names]
        table = table.select([c for c in ROW_COLUMNS if c in table.column_names])
        # the same order on every rank, whatever order the blocks arrived in
        self.table = table.take(pc.sort_indices(table, [(k, "ascending") for k in keys]))
        texts = self.table.column("text").to_pylist()
        self.lengths = [len(split_words(t)) if isinstance(t, str) else 0 for t in texts]
        self.ids = (
            [str(i) for i in self.table.column("doc_id").to_pylist()]
            if "doc_id" in self.table.column_names
            else [str(i) for i in range(len(texts))]
        )

    def __len__(self) -> int:
        return self.table.num_rows

    @property
    def trainable(self) -> int:
        return sum(1 for n in self.lengths if n > 0)

    def rows(self, indices: Sequence[int]) -> list:
        from gliner_core.training import TrainingRow

        taken = self.table.take(pa.array(list(indices), pa.int64()))
        return [TrainingRow.from_dict(r) for r in taken.to_pylist()]


def load_rows() -> TrainingRows:
    """This worker's copy of every training row (the dataset is not split: see `trainer.py`)."""
    shard = ray.train.get_dataset_shard("train")
    tables = list(shard.iter_batches(batch_size=4096, batch_format="pyarrow"))
    if not tables:
        raise ValueError("no training rows")
    rows = TrainingRows(pa.concat_tables(tables, promote_options="default"))
    if not rows.trainable:
        raise ValueError(f"none of the {len(rows)} training rows has a word: nothing to train on")
    return rows


@dataclass
class WorkerState:
    """A worker's model and optimizer, and where in the schedule it stands."""

    model: Any  # gliner_core.GLiNER
    module: torch.nn.Module  # the model as trained: DistributedDataParallel-wrapped when world > 1
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    epoch: int = 0  # the epoch to train next
    step: int = 0  # optimizer steps taken
    skip: int = 0  # batches of `epoch` already trained before a failure
    resumed_from: int = 0  # the step of the checkpoint this worker resumed from
    best_score: float = -1.0  # the best dev score so far
    best_step: int = 0  # ... and the step it was scored at
    since_best: int = 0  # dev scores since the best one
    stop: str = ""  # why training stops ('' while it goes on)

    def progress(self) -> dict[str, Any]:
        """What a checkpoint keeps of the run's progress, beside the optimizer and scheduler."""
        keys = ("step", "best_score", "best_step", "since_best", "stop")
        return {key: getattr(self, key) for key in keys}


def worker_threads(config: TrainConfig, local_workers: int) -> int:
    """Torch threads of one worker: `torch_threads`, or its share of its node's cores (at least the CPUs it
    holds): while the workers train, the node's Ray Data tasks are done, and a worker holding 1 CPU of an
    otherwise idle node would leave its other cores unused."""
    if config.torch_threads:
        return config.torch_threads
    share = (os.cpu_count() or 1) // max(1, local_workers)
    return max(1, int(config.cpus_per_worker), share)


def step_seed(*parts: object) -> int:
    """A seed from a step's coordinates, the same in every process (unlike `hash` of a str)."""
    return zlib.crc32(":".join(map(str, parts)).encode())


def warmup_schedule(warmup_steps: int, budget: int) -> Callable[[int], float]:
    """Learning-rate factor: linear warmup over `warmup_steps`, then linear decay to 0 at `budget` steps
    (the run may stop earlier, when its dev score stops improving)."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return max(0.0, (budget - step) / max(1, budget - warmup_steps))

    return factor


def restore(spec: TrainSpec, budget: int) -> WorkerState:
    """The model and optimizer from the latest checkpoint of this run, else from `spec.start_model`."""
    from gliner_core import GLiNER
    from pipelines.data.storage import local_copy

    saved = None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:  # resume after a failure (or a re-run of the same run name)
        with checkpoint.as_directory() as directory:
            model = GLiNER.from_pretrained(Path(directory) / MODEL_DIR)
            saved = torch.load(Path(directory) / STATE_FILE, map_location="cpu", weights_only=True)
    else:
        model = GLiNER.from_pretrained(local_copy(spec.start_model))
        model.set_thresholds(None)  # thresholds calibrated for the start model do not fit the new one
    model.train()
    # DDP when world > 1, moved to the worker's device. Some parameters never get a gradient (the
    # encoder's pooler; a bi-encoder's word LSTM): DDP must not wait for them (Hugging Face's Trainer
    # makes the same choice by default)
    module = ray.train.torch.prepare_model(model, parallel_strategy_kwargs={"find_unused_parameters": True})
    config = spec.config
    # fused: one kernel over all parameters instead of a Python loop over ~130 tensors (4x faster step
    # on CPU here; what Hugging Face's Trainer uses by default with torch >= 2.8)
    optimizer = torch.optim.AdamW(
        model.parameter_groups(config.lr_encoder, config.lr_heads, config.weight_decay), fused=True
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_schedule(config.warmup_steps, budget))
    state = WorkerState(model, module, optimizer, scheduler)
    if saved is not None:
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        state.epoch, state.skip = saved["epoch"], saved["epoch_batches"]
        for key, value in saved["progress"].items():
            setattr(state, key, value)
        state.resumed_from = state.step
    return state


def train_step(
    state: WorkerState,
    spec: TrainSpec,
    rows: list,
    global_rows: int,
    world: int,
    filler: Any,
    rng: random.Random,
    device,
) -> float:
    """One optimizer step, taken by every rank together; returns the global batch's mean loss.

    `rows` are this rank's part of a global batch of `global_rows` rows; when it is empty the rank
    runs the model on `filler` with weight 0, so that it still joins DDP's gradient all-reduce."""
    from gliner_core.training import training_loss

    config = spec.config
    batch = state.model.training_batch(
        rows or [filler], spec.label_pool or list(spec.labels), rng, spec.soft_targets
    )
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if device.type == "cuda"
        else torch.autocast("cpu", enabled=False)
    )
    with autocast:
        loss_sum = training_loss(
            state.module,
            batch,
            device,
            alpha=config.focal_alpha,
            gamma=config.focal_gamma,
            label_smoothing=config.label_smoothing,
            reduction="sum",
        )
    if not rows:
        loss_sum = loss_sum * 0.0
    state.optimizer.zero_grad(set_to_none=True)
    # DDP averages gradients over the ranks: scaling by world / global_rows makes the result the
    # gradient of the mean loss over the whole global batch
    (loss_sum * (world / global_rows)).backward()
    total = loss_sum.detach().float().reshape(1)
    if world > 1:
        torch.distributed.all_reduce(total)
    loss = float(total.item()) / global_rows
    if not math.isfinite(loss):  # the same value on every rank: they all stop here together
        raise FloatingPointError(
            f"training loss is {loss} at step {state.step + 1}: lower the learning rates "
            f"(train.lr_encoder {config.lr_encoder}, train.lr_heads {config.lr_heads}) or check the rows"
        )
    torch.nn.utils.clip_grad_norm_(state.module.parameters(), config.max_grad_norm)
    state.optimizer.step()
    state.scheduler.step()
    state.step += 1
    return loss


def score_on_dev(state: WorkerState, spec: TrainSpec) -> tuple[dict[str, float], str]:
    """The dev score: micro F1 with per-label thresholds calibrated on the dev rows (a score that does not
    hang on one threshold, which early in training sits far from every label's best); the F1 at
    `eval_threshold` and per label beside it. Returns (metrics, a table for a person)."""
    from gliner_core.calibration import calibrate_thresholds

    state.model.eval()
    result = calibrate_thresholds(
        state.model,
        spec.dev,
        spec.labels,
        default_threshold=spec.eval_threshold,
        floor=spec.threshold_floor,
        min_support=spec.calibration_min_support,
        objective="micro",
    )
    state.model.train()
    metrics = {"dev_score": result.micro_f1_after, "dev_micro_f1": result.micro_f1_before}
    metrics |= {f"dev_f1/{name}": row.f1_after for name, row in result.per_label.items()}
    return metrics, result.table()


def save_and_report(
    state: WorkerState, rank: int, metrics: dict[str, float], position: tuple[int, int], table: str = ""
) -> None:
    """Report metrics from every rank (a barrier); rank 0 adds the checkpoint: the model, the optimizer
    and where to resume, `position` = (epoch, batches of it done)."""
    metrics = {**metrics, "epoch": state.epoch, "step": state.step, "resumed_from_step": state.resumed_from}
    if rank != 0:
        ray.train.report(metrics, checkpoint=None)
        return
    with tempfile.TemporaryDirectory() as directory:
        state.model.save_pretrained(Path(directory) / MODEL_DIR)
        torch.save(
            {
                "epoch": position[0],  # where to resume: this epoch's plan,
                "epoch_batches": position[1],  # after its first batches
                "progress": state.progress(),
                "optimizer": state.optimizer.state_dict(),
                "scheduler": state.scheduler.state_dict(),
            },
            Path(directory) / STATE_FILE,
        )
        (Path(directory) / "metrics.json").write_text(json.dumps(metrics, default=str))
        (Path(directory) / "dev_report.txt").write_text(table)
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(directory))


class Worker:
    """One Ray Train worker's run: its rank, its copy of the rows, the epoch plans, its model and
    optimizer, and (rank 0) the metric sender and the judge of when to stop."""

    def __init__(self, spec: TrainSpec, step_hook: StepHook | None, record_hook: RecordHook | None):
        from pipelines.training.metrics_sink import MetricsSink

        self.spec, self.config = spec, spec.config
        self.step_hook, self.record_hook = step_hook, record_hook
        context = ray.train.get_context()
        self.rank, self.world = context.get_world_rank(), context.get_world_size()
        torch.set_num_threads(worker_threads(self.config, context.get_local_world_size()))
        self.device = ray.train.torch.get_device()
        self.data = load_rows()
        self.global_batch = self.config.batch_size * self.world
        self._plans: dict[int, list[list[int]]] = {}
        epochs = self.config.max_epochs
        self.budget = min(
            self.config.max_steps, epochs * len(self.plan(0)) if epochs else self.config.max_steps
        )
        self.state = restore(spec, self.budget)
        self.filler = self.data.rows([next(i for i, n in enumerate(self.data.lengths) if n > 0)])[0]
        if self.rank == 0 and self.data.trainable < len(self.data):
            left_out = len(self.data) - self.data.trainable
            log.warning("%d of %d training rows have no word: left out", left_out, len(self.data))
        self.sink = (
            MetricsSink(
                spec.tracking_uri,
                spec.run_id,
                spec.metrics_spool,
                flush_timeout_s=spec.metrics_flush_timeout_s,
            )
            if self.rank == 0
            else None
        )
        self.started = time.perf_counter()
        self.samples = 0
        self.losses: list[float] = []

    def plan(self, epoch: int) -> list[list[int]]:
        """The epoch's global batches (row indices), the same on every rank; one epoch's plan is kept."""
        if epoch not in self._plans:
            self._plans.clear()
            self._plans[epoch] = epoch_plan(
                self.data.lengths, self.global_batch, self.spec.seed, epoch, self.config.bucket_window
            )
        return self._plans[epoch]

    def run(self) -> None:
        """Step through the epochs' plans until the budget is spent or the dev score stops improving;
        a dev score (and a checkpoint) every `eval_every` steps and at the end."""
        state, config = self.state, self.config
        while not state.stop:
            batches = self.plan(state.epoch)
            # resumed mid-epoch: the first `skip` batches of this epoch's plan were trained before a failure
            for done in range(state.skip + 1, len(batches) + 1):
                self.losses.append(self.step(done, batches[done - 1]))
                self.show()
                at_end = state.step >= self.budget
                position = (state.epoch + 1, 0) if done == len(batches) else (state.epoch, done)
                if at_end or state.step % config.eval_every == 0:
                    self.checkpoint(position, scored=True)
                elif config.checkpoint_every and state.step % config.checkpoint_every == 0:
                    self.checkpoint(position, scored=False)
                if state.stop:
                    return
            state.skip = 0
            state.epoch += 1

    def step(self, batch: int, global_rows: list[int]) -> float:
        """Global batch number `batch` of the epoch: this rank's part of it, one optimizer step."""
        state, spec = self.state, self.spec
        mine = rank_rows(global_rows, self.rank, self.world)
        # label order, negative sampling and dropout: seeded by the step's place in the plan
        rng = random.Random(step_seed("rows", spec.seed, state.epoch, batch, self.rank))
        torch.manual_seed(step_seed("torch", spec.seed, state.epoch, batch, self.rank))
        rows = self.data.rows(mine)
        loss = train_step(state, spec, rows, len(global_rows), self.world, self.filler, rng, self.device)
        self.samples += len(global_rows)
        if self.record_hook is not None:
            ids = [self.data.ids[i] for i in mine]
            where = (state.epoch, batch, state.step, self.rank, self.world)
            self.record_hook(StepRecord(*where, ids, len(global_rows), loss, state.module))
        if self.step_hook is not None:
            self.step_hook(state.step, self.rank)
        return loss

    def show(self) -> None:
        """Step metrics to MLflow (rank 0), and every 10 steps a progress line for the console's bar."""
        state, losses = self.state, self.losses
        if self.sink:
            lr = float(state.scheduler.get_last_lr()[-1])
            self.sink.log({"train_loss": losses[-1], "lr_heads": lr}, state.step)
        if self.rank == 0 and state.step % 10 == 0:
            recent = sum(losses[-10:]) / len(losses[-10:])
            info: dict[str, float | str] = {"loss": recent}
            if state.best_score >= 0:
                info["best"] = state.best_score
            emit(progress_line(self.spec.progress_stage, state.step, self.budget, **info))

    def checkpoint(self, position: tuple[int, int], scored: bool) -> None:
        """Report and checkpoint (every rank joins); with `scored`, rank 0 scores the dev rows first and
        judges whether to stop, and every rank learns its verdict."""
        state, spec = self.state, self.spec
        seconds = time.perf_counter() - self.started
        recent = self.losses[-self.config.eval_every :]
        metrics = {
            "train_loss": sum(recent) / len(recent) if recent else float("nan"),
            "train_seconds": seconds,
            "train_samples_per_second": self.samples / seconds if seconds > 0 else 0.0,
            "rows_without_words": float(len(self.data) - self.data.trainable),
        }
        table = ""
        if spec.dev:
            metrics["dev_score"] = -1.0  # never the best: a checkpoint kept for resuming only
            if scored and self.rank == 0:
                scores, table = score_on_dev(state, spec)
                metrics |= scores
                self.judge(scores["dev_score"])
        if scored and state.step >= self.budget and not state.stop:
            state.stop = f"reached the budget ({self.budget} steps)"
        self.share_verdict()
        if state.stop:
            metrics["stopped"] = state.stop  # type: ignore[assignment]
        save_and_report(state, self.rank, metrics, position, table)
        if self.sink:
            self.sink.log({k: v for k, v in metrics.items() if isinstance(v, (int, float))}, state.step)
            self.sink.flush()

    def judge(self, score: float) -> None:
        """Rank 0, after a dev score: a new best, or one more score without a gain; stop after `patience`
        of those (once past `min_steps`)."""
        state, config = self.state, self.config
        if score > state.best_score + config.min_gain:
            state.best_score, state.best_step, state.since_best = score, state.step, 0
        else:
            state.since_best += 1
        best = f"best {state.best_score:.4f} at step {state.best_step}"
        emit(f"[train] step {state.step}: dev score {score:.4f} ({best})")
        if state.since_best >= config.patience and state.step >= config.min_steps:
            state.stop = f"converged: no gain over {config.min_gain} in {config.patience} dev scores"

    def share_verdict(self) -> None:
        """Every rank stops where rank 0 says (DDP ranks must take the same steps)."""
        if self.world > 1:
            flag = torch.tensor([1 if self.state.stop else 0], device=self.device)
            torch.distributed.broadcast(flag, src=0)
            if flag.item() and not self.state.stop:
                self.state.stop = "rank 0 stopped"


def train_loop(loop_config: dict) -> None:
    """The function `TorchTrainer` runs on every worker:
    `{"spec": TrainSpec, "step_hook": hook or None, "record_hook": hook or None}`."""
    worker = Worker(loop_config["spec"], loop_config.get("step_hook"), loop_config.get("record_hook"))
    worker.run()
    if worker.sink:
        worker.sink.close()
