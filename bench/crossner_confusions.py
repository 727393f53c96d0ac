"""Where a seed's errors on a target domain come from: wrong label on the right span, or no span at all.

    python bench/crossner_confusions.py --work /work/evidence_work --domains politics music science --seeds 0

For each checkpoint <work>/<D>/seed<k>/<variant>/model, predicts D's dev half A (never B) at threshold
0.5 and counts every gold span as: found with its label, found with another label (which one), or
not found; and predictions that match no gold span. Prints one table per domain and variant.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def confusions(gold: list[dict], predictions: list[list[dict]]) -> dict:
    right = 0
    wrong_label: Counter[tuple[str, str]] = Counter()
    missed: Counter[str] = Counter()
    spurious: Counter[str] = Counter()
    for row, predicted in zip(gold, predictions, strict=True):
        by_span = {(e["start"], e["end"]): e["label"] for e in predicted}
        gold_spans = {(s["start"], s["end"]) for s in row["spans"]}
        for s in row["spans"]:
            label = by_span.get((s["start"], s["end"]))
            if label == s["label"]:
                right += 1
            elif label is not None:
                wrong_label[(s["label"], label)] += 1
            else:
                missed[s["label"]] += 1
        spurious.update(label for span, label in by_span.items() if span not in gold_spans)
    return {"right": right, "wrong_label": wrong_label, "missed": missed, "spurious": spurious}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", default="/work/evidence_work")
    parser.add_argument("--domains", nargs="+", default=["politics", "music", "science"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--variants", nargs="+", default=["conll-seed", "generalist"])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    from gliner_core import GLiNER
    from pipelines import predict_gold

    torch.set_num_threads(args.threads)
    work = Path(args.work)
    for domain in args.domains:
        data = work / domain / "data"
        labels = {name: name for name in json.loads((data / "labels.json").read_text())["labels"].values()}
        gold = [json.loads(line) for line in (data / "dev_A.jsonl").read_text().splitlines() if line.strip()]
        total = sum(len(r["spans"]) for r in gold)
        for variant in args.variants:
            for seed in args.seeds:
                model_dir = work / domain / f"seed{seed}" / variant / "model"
                if not model_dir.exists():
                    continue
                c = confusions(gold, predict_gold(GLiNER.from_pretrained(model_dir), gold, labels, 0.5))
                wrong = sum(c["wrong_label"].values())
                print(f"\n{domain} seed{seed} {variant} (half A, {total} gold spans, threshold 0.5)")
                print(
                    f"  right {c['right']} ({c['right'] / total:.0%}), right span wrong label {wrong} "
                    f"({wrong / total:.0%}), not found {sum(c['missed'].values())}, "
                    f"spurious {sum(c['spurious'].values())}"
                )
                top = ", ".join(f"{g} → {p} {n}" for (g, p), n in c["wrong_label"].most_common(8))
                print(f"  wrong labels (gold → predicted): {top}")
                print(f"  not found: {', '.join(f'{g} {n}' for g, n in c['missed'].most_common(8))}")
                print(f"  spurious: {', '.join(f'{g} {n}' for g, n in c['spurious'].most_common(6))}")


if __name__ == "__main__":
    main()
