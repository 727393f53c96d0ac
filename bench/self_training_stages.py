"""Wall time per stage of one self-training job on the embedded default config.

    python bench/self_training_stages.py            # pipelines.loop.self_training.run(PipelineConfig())
    python bench/self_training_stages.py --iterations 1

Runs the same job as `python -m jobs self-train` (the embedded default: sample corpus, gold
seed/dev sets, MiniLM, local Ray, MLflow on SQLite) in a temporary storage folder, and times
each stage. The pipeline itself records `seconds_weak_label`, `seconds_merge` and
`seconds_train` per iteration in MLflow; the other stages (read, evaluate, register, the seed
model) are timed here by wrapping the functions `pipelines.loop.self_training` calls, without
editing it. Nothing is changed in the pipeline's behaviour.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SPENT: dict[str, float] = defaultdict(float)
CALLS: dict[str, int] = defaultdict(int)


def timed(stage: str, fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            SPENT[stage] += time.perf_counter() - start
            CALLS[stage] += 1

    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--iterations", type=int, default=None, help="override loop.iterations")
    args = parser.parse_args()

    import ray
    import torch

    from pipelines import PipelineConfig
    from pipelines.loop import self_training as st

    # stages the pipeline does not time itself (it times weak_label, merge and train per iteration)
    st.read_documents = timed("read", st.read_documents)
    st.read_gold = timed("read", st.read_gold)
    st.ensure_ray = timed("ray start", st.ensure_ray)
    st.log_model = timed("register", st.log_model)
    st.promote = timed("register", st.promote)
    st.SelfTraining.evaluate = timed("evaluate", st.SelfTraining.evaluate)
    st.SelfTraining.seed_model = timed("seed model (train on gold seed)", st.SelfTraining.seed_model)

    with tempfile.TemporaryDirectory() as tmp:
        config = PipelineConfig(storage_path=tmp)
        if args.iterations is not None:
            config.loop.iterations = args.iterations
        load = os.getloadavg()
        start = time.perf_counter()
        summary = st.run(config)
        total = time.perf_counter() - start
        load_after = os.getloadavg()
        ray.shutdown()

    iteration = defaultdict(float)
    for result in summary.iterations:
        for name, seconds in result.seconds.items():
            iteration[name] += seconds
    print(
        f"\n# embedded default config: {len(summary.iterations)} iteration(s), "
        f"torch threads {torch.get_num_threads()}, load average before {load[0]:.2f} "
        f"after {load_after[0]:.2f}, {os.cpu_count()} CPUs"
    )
    print(f"{'stage':<36} | {'calls':>5} | {'seconds':>8} | {'share':>6}")
    print("-" * 66)
    rows = [
        ("ray start", SPENT["ray start"], CALLS["ray start"]),
        ("read (corpus + gold)", SPENT["read"], CALLS["read"]),
        ("seed model (train on gold seed)", SPENT["seed model (train on gold seed)"], 1),
        ("weak-label (all iterations)", iteration["weak_label"], len(summary.iterations)),
        ("merge (all iterations)", iteration["merge"], len(summary.iterations)),
        ("train (all iterations)", iteration["train"], len(summary.iterations)),
        ("evaluate (dev, all models)", SPENT["evaluate"], CALLS["evaluate"]),
        ("register (MLflow log_model + alias)", SPENT["register"], CALLS["register"]),
    ]
    accounted = sum(seconds for _, seconds, _ in rows)
    rows.append(("other (MLflow runs, params, copies)", total - accounted, 0))
    for name, seconds, calls in rows:
        print(f"{name:<36} | {calls:>5} | {seconds:>8.1f} | {seconds / total:>5.0%}")
    print(f"{'total':<36} | {'':>5} | {total:>8.1f} | {1:>5.0%}")
    for result in summary.iterations:
        per = ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items())
        print(f"# iteration {result.iteration}: {result.train_rows} training rows; {per}")


if __name__ == "__main__":
    main()
