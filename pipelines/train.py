"""Fine-tuning stage: Ray Train `TorchTrainer` over training-row Parquet shards.

Each worker reads only its shard (`ray.train.get_dataset_shard`), builds
batches with `gliner_core.training`, and steps AdamW (separate encoder / head
learning rates, linear warmup then decay, gradient clipping, bf16 autocast on
GPU) on the smoothed focal/BCE loss. Rank 0 evaluates on the gold dev set each
epoch and reports a checkpoint (the model in `gliner_core` format plus
optimizer state); after a worker failure Ray restarts the group and training
resumes from the latest checkpoint.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray.train
import torch
from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from pipelines.config import TrainConfig
from pipelines.storage import redact_uri

log = logging.getLogger(__name__)

MODEL_DIR = "model"
STATE_FILE = "train_state.pt"
ENCODER_PREFIX = "token_rep_layer.bert_layer."


@dataclass
class TrainResult:
    model_path: str  # best epoch's model (gliner_core checkpoint directory)
    metrics: dict[str, float]  # that epoch's reported metrics
    history: list[dict[str, Any]] = field(default_factory=list)  # every report, in order
    seconds: float = 0.0
    unsent_metrics: str | None = None  # JSONL of step metrics MLflow never received (see replay_metrics)


def _param_groups(module: torch.nn.Module, config: TrainConfig) -> list[dict]:
    encoder, heads, no_decay = [], [], []
    for name, param in module.named_parameters():
        if not param.requires_grad:
            continue
        if name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name:
            no_decay.append((name, param))
        elif name.startswith(ENCODER_PREFIX):
            encoder.append(param)
        else:
            heads.append(param)
    enc_nd = [p for n, p in no_decay if n.startswith(ENCODER_PREFIX)]
    head_nd = [p for n, p in no_decay if not n.startswith(ENCODER_PREFIX)]
    groups = [
        {"params": encoder, "lr": config.lr_encoder, "weight_decay": config.weight_decay},
        {"params": enc_nd, "lr": config.lr_encoder, "weight_decay": 0.0},
        {"params": heads, "lr": config.lr_heads, "weight_decay": config.weight_decay},
        {"params": head_nd, "lr": config.lr_heads, "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


def _schedule(total_steps: int, warmup_ratio: float) -> Callable[[int], float]:
    warmup = max(1, int(total_steps * warmup_ratio))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return factor


class _MetricsSink:
    """Step metrics to MLflow from rank 0, buffered: training never waits for the tracking server.

    `log` only appends to an in-memory buffer; a background thread sends it in batches. When the
    server is unreachable the metrics stay buffered and are retried with backoff (the outage and
    the recovery are logged once each); when training ends, the thread gets `flush_timeout_s` to
    send what is left, and whatever still could not be sent is written to `spool` (JSONL, one
    metric per line) for `replay_metrics` — a metric is never dropped silently. A worker killed
    while the server is down loses its unsent buffer, but Ray Train resumes from the last
    checkpoint and logs those steps again.
    """

    BATCH = 1000  # MLflow's limit of metrics per log_batch request
    RETRY_MAX_S = 5.0

    def __init__(
        self,
        tracking_uri: str | None,
        run_id: str | None,
        spool: str | None = None,
        interval_s: float = 1.0,
        flush_timeout_s: float = 30.0,
    ):
        self.client = None
        self.uri = redact_uri(tracking_uri or "")  # for messages only
        self.run_id = run_id
        self.spool = spool
        self.interval_s = interval_s
        self.flush_timeout_s = flush_timeout_s
        self.pending: list = []
        self.sent = 0
        self.failed = False  # the server is unreachable right now
        self.outages = 0
        self.last_error = ""
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        if tracking_uri and run_id:
            from mlflow.tracking import MlflowClient

            # the sink retries on its own schedule: one HTTP attempt per try, with a bounded wait
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
            self.client = MlflowClient(tracking_uri)
            self._thread = threading.Thread(target=self._run, name="mlflow-metrics", daemon=True)
            self._thread.start()

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        if self.client is None:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        with self._lock:
            self.pending += [Metric(k, float(v), now, step) for k, v in metrics.items()]

    def flush(self) -> None:
        """Ask the background thread to send now (it does not wait)."""
        self._wake.set()

    def _send_some(self) -> bool:
        """Send the oldest buffered batch; False when the server could not be reached."""
        assert self.client is not None and self.run_id is not None
        with self._lock:
            batch = self.pending[: self.BATCH]
        if not batch:
            return True
        try:
            self.client.log_batch(self.run_id, metrics=batch)
        except Exception as error:  # the tracking server is down: keep the metrics, try again later
            self.last_error = redact_uri(f"{type(error).__name__}: {error}"[:500])
            if not self.failed:
                self.outages += 1
                log.warning(
                    "MLflow unreachable at %s (%s); training goes on, metrics are buffered and retried",
                    self.uri,
                    self.last_error,
                )
            self.failed = True
            return False
        with self._lock:
            del self.pending[: len(batch)]
            self.sent += len(batch)
        if self.failed:
            log.warning("MLflow reachable again at %s; sending the buffered metrics", self.uri)
            self.failed = False
        return True

    def _run(self) -> None:
        wait = self.interval_s
        while not self._closing.is_set():
            self._wake.wait(wait)
            self._wake.clear()
            if self._closing.is_set():
                break
            while self.pending and self._send_some():
                pass
            wait = min(self.RETRY_MAX_S, wait * 2) if self.failed else self.interval_s
        deadline = time.monotonic() + self.flush_timeout_s
        while self.pending and time.monotonic() < deadline:
            if not self._send_some():
                time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))

    def close(self) -> str | None:
        """Stop the thread after a last flush; returns the spool file when metrics were left unsent."""
        if self._thread is None:
            return None
        self._closing.set()
        self._wake.set()
        self._thread.join(
            self.flush_timeout_s + float(os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")) + 5
        )
        self._thread = None
        with self._lock:
            left, self.pending = self.pending, []
        if not left:
            if self.outages:
                log.warning("MLflow outage(s) during training: %d; no metric was lost", self.outages)
            return None
        path = self.spool or os.path.join(tempfile.gettempdir(), f"unsent-mlflow-metrics-{self.run_id}.jsonl")
        _append_jsonl(
            path,
            [
                {
                    "run_id": self.run_id,
                    "key": m.key,
                    "value": m.value,
                    "timestamp": m.timestamp,
                    "step": m.step,
                }
                for m in left
            ],
        )
        log.error(
            "MLflow unreachable at %s at the end of training (%s): %d metrics could not be sent and "
            "are saved in %s; send them with pipelines.train.replay_metrics(%r, tracking_uri)",
            self.uri,
            self.last_error,
            len(left),
            path,
            path,
        )
        return path


def _append_jsonl(path: str, records: Sequence[Mapping[str, Any]]) -> None:
    """Append records to a JSONL file, local or on any pyarrow filesystem (read back and rewritten)."""
    text = "".join(json.dumps(r) + "\n" for r in records)
    if "://" not in path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(text)
        return
    import pyarrow.fs

    fs, inner = pyarrow.fs.FileSystem.from_uri(path)
    old = b""
    if fs.get_file_info(inner).type == pyarrow.fs.FileType.File:
        with fs.open_input_stream(inner) as f:
            old = f.read()
    with fs.open_output_stream(inner) as f:
        f.write(old + text.encode("utf-8"))


def _read_jsonl(path: str) -> list[dict]:
    if "://" not in path:
        text = Path(path).read_text(encoding="utf-8")
    else:
        import pyarrow.fs

        fs, inner = pyarrow.fs.FileSystem.from_uri(path)
        with fs.open_input_stream(inner) as f:
            text = f.read().decode("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _exists(path: str) -> bool:
    if "://" not in path:
        return os.path.isfile(path)
    import pyarrow.fs

    fs, inner = pyarrow.fs.FileSystem.from_uri(path)
    return fs.get_file_info(inner).type == pyarrow.fs.FileType.File


def replay_metrics(path: str, tracking_uri: str) -> int:
    """Send the metrics a training run could not log (its `unsent_metrics` file); returns how many.

    MLflow stores a metric (key, value, timestamp, step) once, so replaying twice does not duplicate.
    The file is removed once everything is sent.
    """
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    records = _read_jsonl(path)
    by_run: dict[str, list] = {}
    for r in records:
        by_run.setdefault(r["run_id"], []).append(Metric(r["key"], r["value"], r["timestamp"], r["step"]))
    for run_id, metrics in by_run.items():
        for i in range(0, len(metrics), _MetricsSink.BATCH):
            client.log_batch(run_id, metrics=metrics[i : i + _MetricsSink.BATCH])
    if "://" not in path:
        os.remove(path)
    return len(records)


def train_loop(loop_config: dict) -> None:
    """Runs on every Ray Train worker."""
    from gliner_core import GLiNER
    from gliner_core.training import TrainingRow, make_training_batch, training_loss
    from pipelines.evaluate import evaluate

    config = TrainConfig.model_validate(loop_config["train"])
    labels: dict[str, str] = loop_config["labels"]
    dev: list[dict] = loop_config["dev"]
    step_hook = loop_config.get("step_hook")
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    torch.set_num_threads(config.torch_threads or max(1, int(config.cpus_per_worker)))
    torch.manual_seed(config.seed + rank)
    rng = random.Random(config.seed * 1000 + rank)

    start_epoch, step, skip, state = 0, 0, 0, None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:  # resume after a failure (or a re-run of the same run name)
        with checkpoint.as_directory() as directory:
            model = GLiNER.from_pretrained(Path(directory) / MODEL_DIR)
            state = torch.load(Path(directory) / STATE_FILE, map_location="cpu", weights_only=True)
        start_epoch, step, skip = state["epoch"], state["step"], state["epoch_batches"]
    else:
        model = GLiNER.from_pretrained(loop_config["start_model"])
    device = ray.train.torch.get_device()
    model.train()
    module = ray.train.torch.prepare_model(model.model)  # DDP when world > 1, moved to `device`

    # fused: one kernel over all parameters instead of a Python loop over ~130 tensors (4x faster step on
    # CPU here; what Hugging Face's Trainer uses by default with torch >= 2.8)
    optimizer = torch.optim.AdamW(_param_groups(model.model, config), fused=True)
    rows_per_worker = math.ceil(loop_config["num_rows"] / world)
    total_steps = max(1, config.epochs * math.ceil(rows_per_worker / config.batch_size))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(total_steps, config.warmup_ratio))
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
    sink = (
        _MetricsSink(
            loop_config.get("tracking_uri"),
            loop_config.get("run_id"),
            loop_config.get("metrics_spool"),
            flush_timeout_s=loop_config.get("metrics_flush_timeout_s", 30.0),
        )
        if rank == 0
        else None
    )
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if device.type == "cuda"
        else torch.autocast("cpu", enabled=False)
    )
    label_pool = list(labels)
    shard = ray.train.get_dataset_shard("train")

    def report(epoch: int, batches: int, metrics: dict[str, float], with_dev: bool) -> None:
        """Metrics from every rank (a barrier); rank 0 adds dev scores and the checkpoint."""
        table = ""
        metrics = {
            **metrics,
            "epoch": epoch,
            "step": step,
            "resumed_from_step": state["step"] if state else 0,
        }
        if dev and not with_dev:
            metrics["dev_micro_f1"] = -1.0  # a mid-epoch checkpoint: never the best, kept while latest
        if rank != 0:
            ray.train.report(metrics, checkpoint=None)
            return
        if with_dev and dev:
            model.eval()
            report_ = evaluate(model, dev, labels, config.eval_threshold)
            model.train()
            metrics.update({f"dev_{k}": v for k, v in report_.to_dict().items()})
            table = report_.format_table()
            print(
                f"[train] epoch {epoch + 1}/{config.epochs} step {step}: dev micro F1 {report_.micro_f1:.4f}",
                flush=True,
            )
        with tempfile.TemporaryDirectory() as directory:
            model.save_pretrained(Path(directory) / MODEL_DIR)
            torch.save(
                {
                    "epoch": epoch + 1 if with_dev else epoch,  # where to resume
                    "epoch_batches": 0 if with_dev else batches,  # batches of that epoch already trained
                    "step": step,
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                },
                Path(directory) / STATE_FILE,
            )
            (Path(directory) / "metrics.json").write_text(json.dumps(metrics, default=str))
            (Path(directory) / "dev_report.txt").write_text(table)
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(directory))
        if sink:
            sink.log({k: v for k, v in metrics.items() if isinstance(v, (int, float))}, step)
            sink.flush()

    started = time.perf_counter()
    for epoch in range(start_epoch, config.epochs):
        losses: list[float] = []
        batches = 0
        for batch in shard.iter_batches(
            batch_size=config.batch_size,
            batch_format="pyarrow",
            local_shuffle_buffer_size=max(64, 8 * config.batch_size),
        ):
            batches += 1
            if batches <= skip:  # resumed mid-epoch: these batches were trained before the failure
                continue
            rows = [TrainingRow.from_dict(r) for r in batch.to_pylist()]
            try:
                tb = make_training_batch(
                    rows, model.inputs, label_pool, rng, model.tokenizer.pad_token_id or 0
                )
            except ValueError:
                continue  # no row with any word in this batch
            with autocast:
                loss = training_loss(
                    module,
                    tb,
                    device,
                    alpha=config.focal_alpha,
                    gamma=config.focal_gamma,
                    label_smoothing=config.label_smoothing,
                    reduction="sum",
                ) / len(rows)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.model.parameters(), config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            step += 1
            losses.append(loss.item())
            if sink:
                sink.log({"train_loss": loss.item(), "lr_heads": float(scheduler.get_last_lr()[-1])}, step)
            if rank == 0 and step % 10 == 0:
                rate = step / (time.perf_counter() - started)
                print(
                    f"[train] epoch {epoch + 1}/{config.epochs} step {step}/{total_steps} "
                    f"loss {sum(losses[-10:]) / len(losses[-10:]):.3f} ({rate:.2f} steps/s)",
                    flush=True,
                )
            if step_hook is not None:
                step_hook(step, rank)
            if config.checkpoint_every and step % config.checkpoint_every == 0:
                report(epoch, batches, {"train_loss": sum(losses) / len(losses)}, with_dev=False)
        skip = 0
        mean_loss = sum(losses) / len(losses) if losses else float("nan")
        seconds = time.perf_counter() - started
        report(epoch, batches, {"train_loss": mean_loss, "train_seconds": seconds}, with_dev=True)
    if sink:
        sink.close()


def train_model(
    train_rows: ray.data.Dataset,
    num_rows: int,
    start_model: str,
    labels: Mapping[str, str],
    dev: Sequence[Mapping],
    config: TrainConfig,
    run_name: str,
    storage_path: str,
    output_dir: str,
    tracking: tuple[str, str] | None = None,
    step_hook: Callable[[int, int], None] | None = None,
    metrics_flush_timeout_s: float = 30.0,
) -> TrainResult:
    """Fine-tune `start_model` on `train_rows`; the best epoch (dev micro F1) is copied to `output_dir`."""
    started = time.perf_counter()
    spool = f"{storage_path.rstrip('/')}/{run_name}/unsent_mlflow_metrics.jsonl"
    resources = {"CPU": config.cpus_per_worker}
    if config.use_gpu:
        resources["GPU"] = 1
    trainer = TorchTrainer(
        train_loop,
        train_loop_config={
            "train": config.model_dump(),
            "labels": dict(labels),
            "dev": [dict(r) for r in dev],
            "start_model": start_model,
            "num_rows": num_rows,
            "tracking_uri": tracking[0] if tracking else None,
            "run_id": tracking[1] if tracking else None,
            "step_hook": step_hook,
            "metrics_spool": spool,
            "metrics_flush_timeout_s": metrics_flush_timeout_s,
        },
        scaling_config=ScalingConfig(
            num_workers=config.num_workers, use_gpu=config.use_gpu, resources_per_worker=resources
        ),
        run_config=RunConfig(
            name=run_name,
            storage_path=storage_path,
            failure_config=FailureConfig(max_failures=config.max_failures),
            # keeps the best epoch by dev F1 and the latest checkpoint (Ray never deletes the latest)
            checkpoint_config=CheckpointConfig(
                num_to_keep=1, checkpoint_score_attribute="dev_micro_f1", checkpoint_score_order="max"
            )
            if dev
            else CheckpointConfig(num_to_keep=1),
        ),
        datasets={"train": train_rows},
    )
    result = trainer.fit()
    if result.error:
        raise RuntimeError(f"training failed: {result.error}") from result.error
    history = (
        list(result.metrics_dataframe.to_dict("records")) if result.metrics_dataframe is not None else []
    )
    best = result.checkpoint
    best_metrics = dict(result.metrics or {})
    if dev and result.best_checkpoints:
        scored = [(c, m) for c, m in result.best_checkpoints if "dev_micro_f1" in m]
        if scored:
            best, best_metrics = max(scored, key=lambda cm: cm[1]["dev_micro_f1"])
    if best is None:
        raise RuntimeError("training produced no checkpoint")
    os.makedirs(output_dir, exist_ok=True)
    best.to_directory(output_dir)
    unsent = spool if tracking and _exists(spool) else None
    if unsent:
        log.error(
            "training finished, but MLflow (%s) did not receive every step metric: the rest are in %s; "
            "send them with pipelines.train.replay_metrics(%r, %r)",
            redact_uri(tracking[0]) if tracking else None,
            unsent,
            unsent,
            redact_uri(tracking[0]) if tracking else None,
        )
    return TrainResult(
        model_path=str(Path(output_dir) / MODEL_DIR),
        metrics={k: v for k, v in best_metrics.items() if isinstance(v, (int, float))},
        history=history,
        seconds=time.perf_counter() - started,
        unsent_metrics=unsent,
    )
