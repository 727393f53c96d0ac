"""Weak sources: label model accuracy on the synthetic corpus, and gazetteer matching speed.

  python bench/weak_sources.py            # 5 seeds x 2000 documents; gazetteers of 1k and 5k names
  python bench/weak_sources.py --quick    # 3 seeds x 500 documents; 1k names

Label model: per seed, a fresh synthetic corpus (tests/pipelines/synthetic_sources.py: sources with
known, label-dependent confusion), majority vote vs Dawid-Skene; accuracy = argmax class right over all
candidate spans, F1 = spans whose argmax is a label vs the true entity spans. Mean ± std over seeds.

Gazetteer: the same names matched over CrossNER dev sentences (../shared/data) by the Aho-Corasick
`Gazetteer` and by one compiled regex alternation (`\\b(?:longest|...|shortest)\\b`, IGNORECASE), run
interleaved A/B/A/B in one process; medians of the repeats. Build time (automaton / re.compile) apart.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import crossner_sentences  # noqa: E402
from pipelines import (
    Gazetteer,  # noqa: E402
    GazetteerConfig,
    LabelModelConfig,
    SourceConfig,
    fit_label_model,  # noqa: E402
)
from tests.pipelines.synthetic_sources import CLASSES, LABELS, SCOPES, make_corpus  # noqa: E402


def label_model_scores(documents: int, seed: int) -> dict[str, tuple[float, float]]:
    corpus = make_corpus(documents, seed)
    table = pa.Table.from_pylist(corpus.documents)
    ids = table.column("doc_id").to_pylist()
    out = {}
    for method in ("majority_vote", "dawid_skene"):
        config = LabelModelConfig(
            method=method, sources={k: SourceConfig(labels=v) for k, v in SCOPES.items()}
        )
        model, _ = fit_label_model([table], LABELS, config)
        alignment = model.aligner.align(table.column("spans").to_pylist())
        keys = zip(alignment.documents, alignment.starts.tolist(), alignment.ends.tolist(), strict=True)
        truth = np.array([CLASSES.index(corpus.truth[(ids[d], s, e)]) for d, s, e in keys])
        predicted = model.predict_proba(alignment.votes).argmax(axis=1)
        accuracy = float((predicted == truth).mean())
        true_entities = sum(1 for cls in corpus.truth.values() if cls != "none")
        hits = int(((predicted == truth) & (truth > 0)).sum())
        precision, recall = hits / max(int((predicted > 0).sum()), 1), hits / true_entities
        out[method] = (accuracy, 2 * precision * recall / max(precision + recall, 1e-12))
    return out


def bench_label_model(seeds: int, documents: int) -> None:
    runs = [label_model_scores(documents, seed) for seed in range(seeds)]
    print(f"\nlabel model, synthetic corpus: {seeds} seeds x {documents} documents")
    print("| method | candidate accuracy | entity span F1 |")
    print("| --- | --- | --- |")
    for method in ("majority_vote", "dawid_skene"):
        acc = [run[method][0] for run in runs]
        f1 = [run[method][1] for run in runs]
        print(
            f"| {method} | {statistics.mean(acc):.3f} ± {statistics.stdev(acc):.3f} "
            f"| {statistics.mean(f1):.3f} ± {statistics.stdev(f1):.3f} |"
        )


def bench_gazetteer(sizes: list[int], repeats: int) -> None:
    sentences = crossner_sentences()
    text_bytes = sum(len(s) for s in sentences)
    rng = random.Random(0)
    words = sorted({w for s in sentences for w in s.split() if w.isalpha() and len(w) > 3})
    megachars = text_bytes / 1e6
    print(
        f"\ngazetteer: {len(sentences)} CrossNER dev sentences ({megachars:.2f} M chars), {repeats} repeats"
    )
    header = ["names", "build AC s", "build regex s", "match AC s", "match regex s", "regex / AC"]
    print("| " + " | ".join([*header, "matches AC / regex"]) + " |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for size in sizes:
        names = {" ".join(rng.sample(words, rng.choice([1, 1, 2, 3]))) for _ in range(size)}
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "names.txt"
            path.write_text("\n".join(sorted(names)), encoding="utf-8")
            started = time.perf_counter()
            gazetteer = Gazetteer(GazetteerConfig(name="bench", label="x", path=str(path)))
            build_ac = time.perf_counter() - started
        started = time.perf_counter()
        alternation = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
        pattern = re.compile(rf"\b(?:{alternation})\b", re.IGNORECASE)
        build_re = time.perf_counter() - started
        times: dict[str, list[float]] = {"ac": [], "re": []}
        found: dict[str, int] = {}
        for _ in range(repeats):
            for kind in ("ac", "re"):  # interleaved
                started = time.perf_counter()
                if kind == "ac":
                    found[kind] = sum(len(gazetteer.find(s)) for s in sentences)
                else:
                    found[kind] = sum(1 for s in sentences for _ in pattern.finditer(s))
                times[kind].append(time.perf_counter() - started)
        ac, rx = statistics.median(times["ac"]), statistics.median(times["re"])
        print(
            f"| {len(names)} | {build_ac:.2f} | {build_re:.2f} | {ac:.3f} | {rx:.3f} | {rx / ac:.1f}x "
            f"| {found['ac']} / {found['re']} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        bench_label_model(seeds=3, documents=500)
        bench_gazetteer([1000], repeats=3)
    else:
        bench_label_model(seeds=5, documents=2000)
        bench_gazetteer([1000, 5000], repeats=3)


if __name__ == "__main__":
    main()
