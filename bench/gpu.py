"""GPU figures for one device: prediction words/s and training samples/s in bf16 with length-bucketed
batches, MFU against the encoder's FLOP count, and the largest training batch that fits.

    bash bench/gpu.sh                                  # the whole set on cuda:0 (a few minutes)
    python bench/gpu.py --device cpu --quick           # the same code paths on CPU, to check the script

NOT RUN YET: no GPU was lent to the session that wrote it (see docs/benchmarks.md). On CPU it only
proves the script works; its numbers there mean nothing.

- Model: a span GLiNER on `--backbone` (default: the packaged all-MiniLM-L6-v2, so nothing
  downloads; give a local DeBERTa-v3 folder for the production encoder) with the pipeline's default
  settings (hidden 384, max_len 256), random heads.
- Texts: CrossNER sentences (train, all domains) when ../shared/data exists, else the sample corpus.
- Prediction: `batch_predict_entities` (bf16 autocast on cuda), 5 labels, batch sizes `--batch-sizes`;
  words/s counts the words of the texts.
- Training: the pipeline's step (`pipelines.training.train_worker.train_step`: batch building, bf16 autocast
  forward, loss, backward, clipping, fused AdamW) on the pipeline's plan (`pipelines.training.batching`,
  bucket window 50) at each batch size; samples/s after `--warmup` steps.
- MFU: encoder FLOPs only (the heads are small next to it): 2 x parameters x tokens per forward
  (prediction), 6 x parameters x tokens per training step (forward + backward), tokens = real
  (unpadded) tokens of the collated batch, plus attention (4 x layers x hidden x seq^2 per forward
  sequence), over `--peak-tflops` (H100/H200 SXM dense bf16: 989).
- Largest batch: doubling the training batch until CUDA runs out of memory, then bisecting.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LABELS = ["person", "organisation", "location", "date", "miscellaneous"]


def texts_and_rows(n: int, seed: int) -> tuple[list[str], list[dict]]:
    import bench.common as bc

    rng = random.Random(seed)
    if (bc.DATA / "crossner").is_dir():
        from bench.train_throughput import crossner_rows

        rows = crossner_rows(n, 8, seed)
        return [r["text"] for r in rows], rows
    from pipelines import read_gold

    gold = read_gold(str(ROOT / "pipelines" / "sample" / "gold_seed.jsonl"))
    picked = [rng.choice(gold) for _ in range(n)]
    rows = [
        {"doc_id": str(i), "text": g["text"], "labels": LABELS[:4], "weight": 1.0, "spans": g["spans"]}
        for i, g in enumerate(picked)
    ]
    return [r["text"] for r in rows], rows


def encoder_flops(model, input_ids, attention_mask, training: bool) -> float:
    """Encoder FLOPs of one forward (or forward + backward) over the real tokens of a batch."""
    encoder = model.model.token_rep_layer
    params = sum(p.numel() for n, p in encoder.named_parameters() if "embeddings" not in n)
    config = encoder.bert_layer.model.config
    tokens = int(attention_mask.sum())
    lengths = attention_mask.sum(dim=1).tolist()
    attention = sum(4 * config.num_hidden_layers * config.hidden_size * n * n for n in lengths)
    forward = 2 * params * tokens + attention
    return 3 * forward if training else forward


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def predict(model, texts, batch_size: int, device) -> dict:
    import torch

    from gliner_core.text import split_words

    words = sum(len(split_words(t)) for t in texts)
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if device.type == "cuda"
        else torch.autocast("cpu", enabled=False)
    )
    with autocast:
        model.batch_predict_entities(texts[: batch_size * 2], LABELS, batch_size=batch_size)  # warm-up
        sync(device)
        started = time.perf_counter()
        model.batch_predict_entities(texts, LABELS, batch_size=batch_size)
        sync(device)
    seconds = time.perf_counter() - started
    # FLOPs from the collated prediction batches (the same windows the predictor builds)
    from gliner_core.training import TrainingRow

    flops = 0.0
    for i in range(0, len(texts), batch_size):
        chunk = [TrainingRow(t, [], LABELS) for t in texts[i : i + batch_size]]
        built = model.training_batch(chunk, LABELS, random.Random(0))
        flops += encoder_flops(model, built.batch.input_ids, built.batch.attention_mask, training=False)
    return {"words_per_s": words / seconds, "tflops": flops / seconds / 1e12}


def train(model, rows, batch_size: int, steps: int, warmup: int, device) -> dict:
    import pyarrow as pa
    import torch

    from pipelines import (
        TrainConfig,
        TrainingRows,
        TrainSpec,
        WorkerState,
        epoch_plan,
        train_step,
        warmup_schedule,
    )

    data = TrainingRows(pa.Table.from_pylist(rows))
    labels = sorted({label for row in rows for label in row["labels"]})
    config = TrainConfig(batch_size=batch_size)
    plan = []
    epoch = 0
    while len(plan) < steps + warmup:
        plan += [b for b in epoch_plan(data.lengths, batch_size, 0, epoch, 50) if len(b) == batch_size]
        epoch += 1
    optimizer = torch.optim.AdamW(model.parameter_groups(3e-5, 5e-4, 0.01), fused=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_schedule(max(1, (steps + warmup) // 10), steps + warmup)
    )
    state = WorkerState(model, model.model, optimizer, scheduler)
    spec = TrainSpec(config, "", {label: label for label in labels})
    filler = data.rows([0])[0]
    model.train()
    flops, samples = 0.0, 0
    for i, batch in enumerate(plan[: steps + warmup]):
        if i == warmup:
            sync(device)
            started = time.perf_counter()
        rows_i = data.rows(batch)
        train_step(state, spec, rows_i, len(batch), 1, filler, random.Random(i), device)
        if i >= warmup:
            built = model.training_batch(rows_i, labels, random.Random(i))
            flops += encoder_flops(model, built.batch.input_ids, built.batch.attention_mask, training=True)
            samples += len(batch)
    sync(device)
    seconds = time.perf_counter() - started
    model.eval()
    del optimizer, scheduler, state
    return {"samples_per_s": samples / seconds, "tflops": flops / seconds / 1e12}


def largest_batch(model_path: str, rows, device, start: int, limit: int) -> int:
    import torch

    from gliner_core import GLiNER

    def fits(batch_size: int) -> bool:
        model = GLiNER.from_pretrained(model_path, map_location=str(device))
        try:
            train(model, rows * (1 + 3 * batch_size // len(rows)), batch_size, 2, 1, device)
            return True
        except torch.cuda.OutOfMemoryError:
            return False
        finally:
            del model
            torch.cuda.empty_cache()

    low, high = 0, start
    while high <= limit and fits(high):
        low, high = high, high * 2
    high = min(high, limit + 1)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--backbone", default="minilm")
    parser.add_argument("--texts", type=int, default=2048)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--peak-tflops", type=float, default=989.0)
    parser.add_argument("--max-batch", type=int, default=4096, help="search limit for the largest batch")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the script, not the GPU")
    args = parser.parse_args()
    if args.quick:
        args.texts, args.batch_sizes, args.steps, args.warmup, args.max_batch = 32, [8], 2, 1, 0

    import tempfile

    import torch

    from gliner_core import GLiNER
    from pipelines import PipelineConfig, backbone_path

    device = torch.device(args.device)
    torch.manual_seed(0)
    texts, rows = texts_and_rows(args.texts, 0)
    folder = tempfile.mkdtemp()
    settings = PipelineConfig().model.settings
    GLiNER.from_backbone(backbone_path(args.backbone), **settings).save_pretrained(folder)
    info = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "backbone": args.backbone,
    }
    print(json.dumps(info))
    print("batch | predict words/s | predict MFU | train samples/s | train MFU")
    print("---: | ---: | ---: | ---: | ---:")
    peak = args.peak_tflops
    for batch_size in args.batch_sizes:
        model = GLiNER.from_pretrained(folder, map_location=str(device))
        model.eval()
        p = predict(model, texts, batch_size, device)
        t = train(model, rows, batch_size, args.steps, args.warmup, device)
        print(
            f"{batch_size} | {p['words_per_s']:.0f} | {100 * p['tflops'] / peak:.1f}% | "
            f"{t['samples_per_s']:.1f} | {100 * t['tflops'] / peak:.1f}%",
            flush=True,
        )
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if device.type == "cuda" and args.max_batch:
        largest = largest_batch(folder, rows, device, max(args.batch_sizes), args.max_batch)
        print(f"largest training batch that fits (bf16 autocast, fp32 weights + AdamW): {largest}")
        print(f"peak memory: {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB")


if __name__ == "__main__":
    main()
