"""Training throughput with and without length-bucketed batches, and dev F1 with each.

    python bench/train_throughput.py                  # throughput: 256 rows, batch 8, 2 interleaved repeats
    python bench/train_throughput.py --f1 --seeds 0 1 2   # dev F1 of both, 3 seeds (Ray Train, 1 worker)

Throughput: each (variant, repeat) runs in a fresh subprocess, interleaved A/B/A/B. A variant is
`train.bucket_window` (0: plain shuffled batches, the behaviour before; 50: rows sorted by length
within windows of 50 batches). One epoch of the pipeline's own plan (`pipelines.training.batching`) and step
(`pipelines.training.train_worker.train_step`: batch building, forward, loss, backward, clipping, AdamW) on
a span model on all-MiniLM-L6-v2 (the default backbone and settings) over CrossNER training
sentences of all domains, each row offering its gold labels plus negatives (8 labels). Padding ratio
= padded / real tokens of the collated batches (prompt + words). "build %" is the share of step
time spent turning rows into tensors (word splitting, tokenisation, targets).

F1: `pipelines.training.trainer.train_model` (Ray Train, one worker) on CoNLL-2003 training sentences,
dev micro F1 on CoNLL-2003 dev sentences nobody tuned on, per seed and variant (best epoch).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import bench.common as bc  # noqa: E402

CONLL_LABELS = ["person", "organisation", "location", "miscellaneous"]  # as load_crossner names them


def crossner_rows(n: int, n_labels: int, seed: int) -> list[dict]:
    """Training rows (dicts, the pipeline's contract) from CrossNER train sentences of all domains."""
    from gliner_core.data import CROSSNER_LABELS, load_crossner

    examples = []
    for domain in sorted(p.name for p in (bc.DATA / "crossner").iterdir() if p.is_dir()):
        examples += [e for e in load_crossner(bc.DATA, domain, "train") if e.entities]
    pool = sorted(set(CROSSNER_LABELS.values()))
    rng = random.Random(seed)
    rows = []
    for i, example in enumerate(rng.sample(examples, n)):
        positives = sorted({e.label for e in example.entities})[:n_labels]
        negatives = rng.sample([label for label in pool if label not in positives], n_labels - len(positives))
        rows.append(
            {
                "doc_id": str(i),
                "text": example.text,
                "labels": positives + negatives,
                "weight": 1.0,
                "spans": [{"start": e.start, "end": e.end, "label": e.label} for e in example.entities],
            }
        )
    return rows


def throughput_worker(args: argparse.Namespace) -> None:
    import pyarrow as pa
    import torch

    from gliner_core import GLiNER
    from pipelines import (
        PipelineConfig,
        TrainConfig,
        TrainingRows,
        TrainSpec,
        WorkerState,
        backbone_path,
        epoch_plan,
        train_step,
        warmup_schedule,
    )

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    settings = PipelineConfig().model.settings
    model = GLiNER.from_backbone(backbone_path("minilm"), **settings)
    model.train()
    data = TrainingRows(pa.Table.from_pylist(crossner_rows(args.rows, args.labels, args.seed)))
    config = TrainConfig(batch_size=args.batch_size, bucket_window=args.window)
    optimizer = torch.optim.AdamW(model.parameter_groups(3e-5, 5e-4, 0.01), fused=True)
    plan = epoch_plan(data.lengths, args.batch_size, args.seed, 0, args.window)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_schedule(max(1, len(plan) // 10), len(plan))
    )
    state = WorkerState(model, model.model, optimizer, scheduler)
    labels = sorted({label for row in data.table.column("labels").to_pylist() for label in row})
    spec = TrainSpec(config, "", {label: label for label in labels})
    filler = data.rows([0])[0]
    device = torch.device("cpu")
    padded = real = 0
    for batch in plan:  # padding of the very batches trained (built once more, outside the clock)
        built = model.training_batch(data.rows(batch), labels, random.Random(0))
        padded += built.batch.attention_mask.numel()
        real += int(built.batch.attention_mask.sum())
    build = 0.0
    for i, batch in enumerate(plan[: args.warmup]):
        train_step(state, spec, data.rows(batch), len(batch), 1, filler, random.Random(i), device)
    started, cpu = time.perf_counter(), bc.cpu_seconds()
    samples = 0
    for i, batch in enumerate(plan[args.warmup :]):
        rows = data.rows(batch)
        t = time.perf_counter()
        model.training_batch(rows, labels, random.Random(i))  # what train_step builds first
        build += time.perf_counter() - t
        train_step(state, spec, rows, len(batch), 1, filler, random.Random(i), device)
        samples += len(batch)
    seconds, cpu = time.perf_counter() - started, bc.cpu_seconds() - cpu
    bc.emit(
        {
            "samples": samples,
            "seconds": seconds - build,  # the extra build above is not part of a step
            "cpu_seconds": cpu,
            "build_seconds": build,
            "padding_ratio": padded / real,
        }
    )


def f1_worker(args: argparse.Namespace) -> None:
    import tempfile

    import ray
    import ray.data
    import torch

    from gliner_core import GLiNER
    from gliner_core.data import load_crossner
    from pipelines import PipelineConfig, TrainConfig, TrainSpec, backbone_path, train_model

    def as_rows(examples, start=0):
        return [
            {
                "doc_id": str(start + i),
                "text": e.text,
                "labels": CONLL_LABELS,
                "weight": 1.0,
                "spans": [{"start": s.start, "end": s.end, "label": s.label} for s in e.entities],
            }
            for i, e in enumerate(examples)
        ]

    rng = random.Random(1234)  # the same rows for every seed and variant
    train = rng.sample(load_crossner(bc.DATA, "conll2003", "train"), args.rows)
    dev = rng.sample(load_crossner(bc.DATA, "conll2003", "dev"), args.dev_rows)
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    with tempfile.TemporaryDirectory() as folder:
        torch.manual_seed(args.seed)
        start = GLiNER.from_backbone(backbone_path("minilm"), **PipelineConfig().model.settings)
        start.save_pretrained(f"{folder}/start")
        config = TrainConfig(
            max_epochs=args.epochs, batch_size=args.batch_size, bucket_window=args.window, lr_encoder=5e-5,
            lr_heads=1e-3, label_smoothing=0.0, torch_threads=args.threads, cpus_per_worker=1,
        )  # fmt: skip
        labels = {label: label for label in CONLL_LABELS}
        gold = [{"text": r["text"], "spans": r["spans"]} for r in as_rows(dev)]
        result = train_model(
            ray.data.from_items(as_rows(train)),
            TrainSpec(config, f"{folder}/start", labels, gold, num_rows=len(train), seed=args.seed),
            run_name="f1",
            storage_path=f"{folder}/ray",
            output_dir=f"{folder}/best",
        )
    bc.emit({"dev_micro_f1": result.metrics["dev_micro_f1"], "seconds": result.seconds})


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--windows", type=int, nargs="+", default=[0, 50], help="bucket_window variants")
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--labels", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--f1", action="store_true", help="dev F1 per seed instead of throughput")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--dev-rows", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--window", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--worker", choices=["throughput", "f1"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "throughput":
        return throughput_worker(args)
    if args.worker == "f1":
        return f1_worker(args)
    script = Path(__file__).resolve()
    common = ["--rows", str(args.rows), "--batch-size", str(args.batch_size), "--threads", str(args.threads)]
    variants = [str(w) for w in args.windows]
    if args.f1:
        common += ["--epochs", str(args.epochs), "--dev-rows", str(args.dev_rows)]
        f1: dict[str, list[float]] = {v: [] for v in variants}
        for seed in args.seeds:  # interleaved: both variants per seed, order alternating
            for variant in variants if seed % 2 == 0 else reversed(variants):
                worker = ["f1", "--window", variant, "--seed", str(seed), *common]
                result = bc.run_worker(script, worker, timeout=3600)
                f1[variant].append(result["dev_micro_f1"])
                f1_value = result["dev_micro_f1"]
                print(f"# seed {seed} window {variant}: dev micro F1 {f1_value:.4f}", flush=True)
        print("bucket_window | dev micro F1 (mean ± std) | per seed")
        print("--- | --- | ---")
        for variant, values in f1.items():
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            rounded = [round(v, 4) for v in values]
            print(f"{variant} | {statistics.mean(values):.4f} ± {spread:.4f} | {rounded}")
        return
    common += ["--labels", str(args.labels), "--warmup", str(args.warmup), "--seed", str(args.seed)]

    def run(variant: str, repeat: int) -> dict:
        return bc.run_worker(script, ["throughput", "--window", variant, *common], timeout=3600)

    results = bc.interleaved(run, variants, args.repeats)
    base = variants[0]
    rate = {v: bc.median([r["samples"] / r["seconds"] for r in rs]) for v, rs in results.items()}
    cpu = {v: bc.median([r["samples"] / r["cpu_seconds"] for r in rs]) for v, rs in results.items()}
    print(f"load average {bc.load_range(results)}; {args.rows} rows, batch {args.batch_size}")
    print("bucket_window | padded / real tokens | samples/s | vs plain | samples/CPU-s | vs plain | build %")
    print("--- | ---: | ---: | ---: | ---: | ---: | ---:")
    for v, rs in results.items():
        pad = bc.median([r["padding_ratio"] for r in rs])
        build = bc.median([r["build_seconds"] / r["seconds"] for r in rs])
        print(
            f"{v} | {pad:.2f} | {rate[v]:.2f} | {rate[v] / rate[base]:.2f}x | {cpu[v]:.2f} | "
            f"{cpu[v] / cpu[base]:.2f}x | {100 * build:.1f}"
        )
        print(f"#   {v}: samples/s per run {[round(r['samples'] / r['seconds'], 2) for r in rs]}")


if __name__ == "__main__":
    main()
