"""Shared helpers for the benchmark scripts: real sentences, interleaved subprocess runs, memory.

Every measured configuration runs in a fresh subprocess (`python bench/<script>.py --worker ...`)
so that peak memory (`ru_maxrss`, the process's RSS high-water mark) belongs to that configuration
alone, and the two packages are interleaved A/B/A/B so that load from other jobs on a shared
machine falls on both alike; tables report the median of the repeats.
"""

from __future__ import annotations

import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("GLINER_DATA", ROOT.parent / "shared" / "data"))


def crossner_sentences(data_dir: Path = DATA, split: str = "dev") -> list[str]:
    """Every CrossNER sentence of `split` (all six domains), words joined by spaces."""
    sentences: list[str] = []
    for path in sorted(data_dir.glob(f"crossner/*/{split}.txt")):
        words: list[str] = []
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                words.append(line.split("\t")[0])
            elif words:
                sentences.append(" ".join(words))
                words = []
        if words:
            sentences.append(" ".join(words))
    return sentences


def sample_sentences(n: int, seed: int = 0, split: str = "dev") -> list[str]:
    sentences = crossner_sentences(split=split)
    rng = random.Random(seed)
    return [rng.choice(sentences) for _ in range(n)]


def peak_rss_mib() -> float:
    """This process's resident-set high-water mark (Linux: ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    """User + system CPU time of this process (all its threads) so far.

    On a shared machine wall time depends on what else runs; CPU time much less so (it still
    counts OpenMP threads' spin-waits, and caches and memory bandwidth are shared).
    """
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def reset_peak_rss() -> bool:
    """Reset this process's RSS high-water mark (Linux: `5` into /proc/self/clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def vm_hwm_mib(pid: int) -> float:
    """Peak RSS of any process by pid (VmHWM from /proc), 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0.0


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0.0


def run_worker(script: Path, worker_args: Sequence[str], timeout: float = 900) -> dict:
    """Run `script --worker ...` in a fresh interpreter; it prints one JSON line last."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    load = os.getloadavg()[0]
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(script), "--worker", *worker_args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"worker failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["load_before"] = load
    result["load_after"] = os.getloadavg()[0]
    result["process_s"] = time.perf_counter() - started
    return result


def interleaved(
    run: Callable[[str, int], dict], variants: Sequence[str], repeats: int
) -> dict[str, list[dict]]:
    """A/B/A/B...: `run(variant, repeat)` for every repeat, alternating the order each round."""
    results: dict[str, list[dict]] = {v: [] for v in variants}
    for r in range(repeats):
        order = list(variants) if r % 2 == 0 else list(reversed(variants))
        for variant in order:
            results[variant].append(run(variant, r))
    return results


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def load_range(results: dict[str, list[dict]]) -> str:
    loads = [x for rs in results.values() for r in rs for x in (r["load_before"], r["load_after"])]
    return f"{min(loads):.1f}-{max(loads):.1f}" if loads else "-"


def emit(result: dict) -> None:
    """Worker side: the last stdout line is the result."""
    print(json.dumps(result), flush=True)
