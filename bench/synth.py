"""Synth throughput: the local transformers engine (xgrammar-constrained) on the CPU, plus the
numbers behind the paper estimate for vLLM (prompt sizes per task).

    python bench/synth.py                           # tiny random Llama, sample corpus, all tasks
    python bench/synth.py --batch-sizes 1 4 16 --max-tokens 128 --threads 2
    python bench/synth.py --model /path/to/llama    # any local HF chat model instead of the tiny one
    python bench/synth.py --ray                     # the same through the Ray Data stage (run_synth)

The tiny model (2 layers, hidden 64, random weights) measures the engine's overhead — chat
template, batching, grammar masking, grounding — not a real LLM's speed. Prompt sizes are
reported in characters and in tokens of Llama 3's tokenizer estimated at 4.2 characters per
token (the tiny tokenizer's counts are not Llama 3's).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from synth import (  # noqa: E402
    GenerationConfig,
    LocalEngineConfig,
    NerTask,
    OpenIeTask,
    OpenNerTask,
    QaTask,
    RelationTask,
    SummaryTask,
    SynthConfig,
)
from synth.engines.local import LocalEngine  # noqa: E402
from synth.labeler import Labeler  # noqa: E402
from synth.tiny import build_tiny_llama  # noqa: E402

CORPUS = ROOT / "pipelines" / "sample" / "corpus.jsonl"
CHARS_PER_LLAMA3_TOKEN = 4.2
TASKS = {
    "ner": NerTask(labels=["person", "organisation", "location", "date"]),
    "open_ner": OpenNerTask(),
    "qa": QaTask(),
    "open_ie": OpenIeTask(),
    "summary": SummaryTask(),
    "relations": RelationTask(
        relations=["works for", "located in"], entity_labels=["person", "organisation"]
    ),
}


def documents(n: int) -> list[dict[str, str]]:
    rows = [json.loads(line) for line in CORPUS.read_text().splitlines() if line.strip()]
    return [{"doc_id": r["doc_id"], "text": r["text"], "source": "sample"} for r in rows[:n]]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="local HF chat model (default: build the tiny random Llama)")
    parser.add_argument("--docs", type=int, default=32)
    parser.add_argument("--tasks", nargs="+", default=["ner", "summary"], choices=sorted(TASKS))
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ray", action="store_true", help="also time run_synth on a local Ray instance")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="synth-bench-"))
    model = args.model or str(build_tiny_llama(tmp / "tiny"))
    docs = documents(args.docs)
    tasks = [TASKS[t] for t in args.tasks]
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{args.threads} threads; model {'tiny random Llama' if not args.model else model}"
    )
    print(f"# {len(docs)} documents x {len(tasks)} tasks, max_tokens {args.max_tokens}\n")

    # prompt sizes (what a real model would read), per task
    base = SynthConfig(tasks=tasks, engine=LocalEngineConfig(model=model))
    labeler = Labeler(base)
    print("| task | prompt chars/doc | est. Llama 3 prompt tokens/doc | of which shared prefix |")
    print("| --- | ---: | ---: | ---: |")
    for name, spec in labeler.specs.items():
        chars = [sum(len(m["content"]) for m in spec.messages(d["text"])) for d in docs]
        shared = sum(len(m["content"]) for m in spec.messages("")) - len(spec.user_message(""))
        mean = sum(chars) / len(chars)
        print(
            f"| {name} | {mean:.0f} | {mean / CHARS_PER_LLAMA3_TOKEN:.0f} | "
            f"{shared / CHARS_PER_LLAMA3_TOKEN:.0f} |"
        )
    print()

    print(
        "| batch | requests | s | docs/s | requests/s | gen tok/s | prompt tok/req | gen tok/req | statuses |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for batch in args.batch_sizes:
        config = SynthConfig(
            tasks=tasks,
            engine=LocalEngineConfig(model=model, batch_size=batch),
            generation=GenerationConfig(max_tokens=args.max_tokens),
        )
        labeler = Labeler(config)
        engine = LocalEngine(config.engine)
        requests = [(d, name) for d in docs for name in config.task_names]
        engine.generate([labeler.request(config.task_names[0], docs[0]["text"])])  # warm-up (grammar compile)
        start = time.perf_counter()
        completions = engine.generate([labeler.request(name, d["text"]) for d, name in requests])
        statuses: Counter[str] = Counter()
        for (d, name), completion in zip(requests, completions, strict=True):
            statuses[labeler.row({**d, "task": name}, completion)["status"]] += 1
        seconds = time.perf_counter() - start
        gen = sum(c.completion_tokens for c in completions)
        prompt = sum(c.prompt_tokens for c in completions)
        n = len(requests)
        print(
            f"| {batch} | {n} | {seconds:.2f} | {len(docs) / seconds:.2f} | {n / seconds:.2f} | "
            f"{gen / seconds:.0f} | {prompt / n:.0f} | {gen / n:.0f} | "
            + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items()))
            + " |"
        )

    if args.ray:
        import logging

        import ray

        from synth import run_synth

        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level=logging.WARNING)
        batch = max(args.batch_sizes)
        config = SynthConfig(
            tasks=tasks,
            engine=LocalEngineConfig(model=model, batch_size=batch, num_cpus=1, torch_threads=args.threads),
            generation=GenerationConfig(max_tokens=args.max_tokens),
            cache_dir=str(tmp / "cache"),
        )
        for label in ("cold", "cached"):
            report = run_synth(ray.data.from_items(docs), config, str(tmp / f"rows-{label}"))
            print(
                f"\nRay stage ({label}), batch {batch}: {report.rows} rows in {report.seconds:.1f} s, "
                f"{report.cached} cached\n{report.table()}"
            )
        ray.shutdown()


if __name__ == "__main__":
    main()
