"""Scaling figures, measured side by side: weak labeling on 1 vs 2 Ray nodes, training with 1 vs 2 workers,
and the costs that decide what more nodes or workers buy (per document, per step, per all-reduce, Ray's
own start-up).

    python bench/scaling.py                  # all three parts, 2 interleaved repeats
    python bench/scaling.py --part train --repeats 3

On a 2-core machine "2 nodes" and "2 workers" share the same two cores as "1 node" and "1 worker":
the ratios show the overhead of distribution, not its gain. The cost model that turns the measured
costs into an estimate for real nodes is in docs/benchmarks.md.

- weak-label: the pipeline's stage (`read_documents` -> `weak_label` -> `write_parquet`) over
  `--docs` one-sentence CrossNER documents, MiniLM span model, 2 actors of 2 CPUs each, on a
  `ray.cluster_utils.Cluster` of one node with 6 logical CPUs, or of two nodes with 3 each (one actor
  per node, a CPU left on each for Ray Data's tasks). Each configuration in a fresh subprocess.
- train: `pipelines.training.trainer.train_model` (Ray Train, local Ray with 2 CPUs) on `--rows` CrossNER
  rows,
  MiniLM, one epoch, global batch 8: one worker (batch 8, 2 torch threads) or two (batch 4, 1 thread
  each, DDP over gloo). samples/s counts training steps only (the worker's own clock); "fit s" is the
  whole `fit()`, so "fit s - steps s" is Ray Train's start-up (worker group, placement, data
  ingest, checkpoint upload).
- all-reduce: two processes, gloo, `all_reduce` of a float32 tensor the size of the model's
  parameters (what DDP reduces per step), median of 10.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import bench.common as bc  # noqa: E402


def minilm_model(folder: str) -> str:
    import torch

    from gliner_core import GLiNER
    from pipelines import PipelineConfig, backbone_path

    torch.manual_seed(0)
    GLiNER.from_backbone(backbone_path("minilm"), **PipelineConfig().model.settings).save_pretrained(folder)
    return folder


def weak_label_worker(args: argparse.Namespace) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    import ray
    from ray.cluster_utils import Cluster

    from pipelines import MAIN_VIEW, WeakLabelConfig, read_documents, weak_label, write_parquet

    folder = tempfile.mkdtemp()
    texts = bc.sample_sentences(args.docs, seed=0, split="train")
    pq.write_table(pa.table({"text": texts}), f"{folder}/corpus.parquet")
    model = minilm_model(f"{folder}/model")
    nodes = int(args.nodes)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 6 // nodes})
    for _ in range(nodes - 1):
        cluster.add_node(num_cpus=6 // nodes)
    ray.init(address=cluster.address, logging_level="WARNING")
    cluster.wait_for_nodes()
    config = WeakLabelConfig(num_workers=2, cpus_per_worker=2, batch_size=16, threshold=0.9)
    labels = {label: label for label in ("person", "organisation", "location", "date")}
    started = time.perf_counter()
    documents = read_documents(f"{folder}/corpus.parquet")
    write_parquet(weak_label(documents, model, {MAIN_VIEW: labels}, config), f"{folder}/out")
    seconds = time.perf_counter() - started
    out = pq.read_table(f"{folder}/out")
    model_seconds = sum(out.column("label_seconds").to_pylist())
    from ray.util.state import list_actors

    nodes_used = {a.node_id for a in list_actors(detail=True, limit=1000) if "GLiNERLabeler" in a.class_name}
    ray.shutdown()
    cluster.shutdown()
    bc.emit(
        {
            "docs": out.num_rows,
            "seconds": seconds,
            "model_seconds": model_seconds,
            "actor_nodes": len(nodes_used),
        }
    )


def train_worker(args: argparse.Namespace) -> None:
    import ray
    import ray.data

    from bench.train_throughput import crossner_rows
    from pipelines import TrainConfig, TrainSpec, train_model

    world = int(args.workers)
    folder = tempfile.mkdtemp()
    model = minilm_model(f"{folder}/model")
    rows = crossner_rows(args.rows, 8, 0)
    labels = sorted({label for row in rows for label in row["labels"]})
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    config = TrainConfig(
        max_epochs=1,
        batch_size=8 // world,
        num_workers=world,
        cpus_per_worker=1.0 if world == 1 else 0.5,  # two workers and Ray Data's tasks on 2 CPUs
        torch_threads=2 // world,
        warmup_steps=0,
    )
    started = time.perf_counter()
    result = train_model(
        ray.data.from_items(rows),
        TrainSpec(config, model, {label: label for label in labels}, [], num_rows=len(rows)),
        run_name="scale",
        storage_path=f"{folder}/ray",
        output_dir=f"{folder}/best",
    )
    fit = time.perf_counter() - started
    ray.shutdown()
    last = result.history[-1]
    bc.emit(
        {
            "samples_per_s": last["train_samples_per_second"],
            "steps_seconds": last["train_seconds"],
            "fit_seconds": fit,
            "cpu_seconds": bc.cpu_seconds(),
        }
    )


def _all_reduce_rank(rank: int, port: int, numel: int, queue) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    tensor = torch.ones(numel)
    times = []
    for i in range(12):
        dist.barrier()
        started = time.perf_counter()
        dist.all_reduce(tensor)
        if i >= 2:
            times.append(time.perf_counter() - started)
    if rank == 0:
        queue.put(statistics.median(times))
    dist.destroy_process_group()


def all_reduce_worker(args: argparse.Namespace) -> None:
    import socket

    import torch.multiprocessing as mp

    from gliner_core import GLiNER
    from pipelines import PipelineConfig, backbone_path

    model = GLiNER.from_backbone(backbone_path("minilm"), **PipelineConfig().model.settings)
    numel = sum(p.numel() for p in model.model.parameters() if p.requires_grad)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    context = mp.get_context("spawn")
    queue = context.Queue()
    processes = [context.Process(target=_all_reduce_rank, args=(r, port, numel, queue)) for r in range(2)]
    for p in processes:
        p.start()
    seconds = queue.get(timeout=600)
    for p in processes:
        p.join()
    bc.emit({"numel": numel, "seconds": seconds})


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--part", choices=["weak-label", "train", "all-reduce", "all"], default="all")
    parser.add_argument("--docs", type=int, default=256)
    parser.add_argument("--rows", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--nodes", help=argparse.SUPPRESS)
    parser.add_argument("--workers", help=argparse.SUPPRESS)
    parser.add_argument("--worker", choices=["weak-label", "train", "all-reduce"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return {"weak-label": weak_label_worker, "train": train_worker, "all-reduce": all_reduce_worker}[
            args.worker
        ](args)
    script = Path(__file__).resolve()
    if args.part in ("weak-label", "all"):
        results = bc.interleaved(
            lambda v, r: bc.run_worker(script, ["weak-label", "--nodes", v, "--docs", str(args.docs)], 3600),
            ["1", "2"],
            args.repeats,
        )
        print(f"weak-label, {args.docs} documents, MiniLM, 2 actors; load average {bc.load_range(results)}")
        print("nodes | actor nodes | seconds | docs/s | model s/doc | overhead s (wall - model/2)")
        print("---: | ---: | ---: | ---: | ---: | ---:")
        for nodes, rs in results.items():
            seconds = bc.median([r["seconds"] for r in rs])
            per_doc = bc.median([r["model_seconds"] / r["docs"] for r in rs])
            overhead = bc.median([r["seconds"] - r["model_seconds"] / 2 for r in rs])
            print(
                f"{nodes} | {rs[0]['actor_nodes']} | {seconds:.1f} | {args.docs / seconds:.1f} | "
                f"{per_doc:.4f} | {overhead:.1f}"
            )
            print(f"#   {nodes} nodes: seconds per run {[round(r['seconds'], 1) for r in rs]}")
    if args.part in ("train", "all"):
        results = bc.interleaved(
            lambda v, r: bc.run_worker(script, ["train", "--workers", v, "--rows", str(args.rows)], 3600),
            ["1", "2"],
            args.repeats,
        )
        print(f"train, {args.rows} rows, MiniLM, global batch 8; load average {bc.load_range(results)}")
        print("workers | samples/s | vs 1 | steps s | fit s | start-up s (fit - steps)")
        print("---: | ---: | ---: | ---: | ---: | ---:")
        base = bc.median([r["samples_per_s"] for r in results["1"]])
        for workers, rs in results.items():
            rate = bc.median([r["samples_per_s"] for r in rs])
            steps = bc.median([r["steps_seconds"] for r in rs])
            fit = bc.median([r["fit_seconds"] for r in rs])
            print(
                f"{workers} | {rate:.2f} | {rate / base:.2f}x | {steps:.1f} | {fit:.1f} | "
                f"{bc.median([r['fit_seconds'] - r['steps_seconds'] for r in rs]):.1f}"
            )
            print(f"#   {workers} workers: samples/s per run {[round(r['samples_per_s'], 2) for r in rs]}")
    if args.part in ("all-reduce", "all"):
        result = bc.run_worker(script, ["all-reduce"], 1800)
        megabytes = result["numel"] * 4 / 2**20
        print(
            f"all-reduce (gloo, 2 processes, one host): {result['numel']:,} float32 ({megabytes:.0f} MiB) "
            f"in {1000 * result['seconds']:.0f} ms (median of 10; load {result['load_before']:.1f})"
        )


if __name__ == "__main__":
    main()
