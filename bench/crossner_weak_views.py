"""Per prompt view: how many weak spans of each label a phase-2 run produced, and how many were right.

    python bench/crossner_weak_views.py --work /work/evidence_work --domain politics --run all-s0

Reads the run's weak labels (`<work>/<D>/seed0/<run>/job/*/iter_01/weak_labels`, before the merge)
and scores each (view, label) against the gold tags of D's train split, which the loop never sees:
spans, precision, and what the wrong ones are in gold (another label on the same span, or no entity).
A diagnostic of the weak labels only; nothing is chosen with it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.crossner_data import load_source  # noqa: E402

DATA = Path(os.environ.get("GLINER_DATA", ROOT.parent / "shared" / "data"))


def view_table(weak_rows: list[dict], gold: dict[str, dict[tuple[int, int], str]]) -> list[str]:
    spans: Counter[tuple[str, str]] = Counter()
    right: Counter[tuple[str, str]] = Counter()
    wrong: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for row in weak_rows:
        by_span = gold.get(row["text"], {})
        for span in row["spans"] or []:
            key = (span["label"], span["origin"])
            spans[key] += 1
            truth = by_span.get((span["start"], span["end"]))
            if truth == span["label"]:
                right[key] += 1
            else:
                wrong[key][truth or "(no entity)"] += 1
    lines = [
        "| label | view | spans | precision | the wrong ones in gold (top 3) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for key in sorted(spans):
        top = ", ".join(f"{label} {n}" for label, n in wrong[key].most_common(3))
        lines.append(f"| {key[0]} | {key[1]} | {spans[key]} | {100 * right[key] / spans[key]:.0f} | {top} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", default="/work/evidence_work")
    parser.add_argument("--domain", required=True)
    parser.add_argument("--run", required=True, help="a phase-2 run folder name, e.g. all-s0")
    args = parser.parse_args()
    import pyarrow.parquet as pq

    found = sorted((Path(args.work) / args.domain / "seed0" / args.run / "job").glob("*/iter_01/weak_labels"))
    if not found:
        sys.exit(f"error: no weak labels under {args.work}/{args.domain}/seed0/{args.run}/job")
    gold = {
        ex.text: {(e.start, e.end): e.label for e in ex.entities}
        for ex in load_source(DATA, args.domain, "train")
    }
    print(f"{args.domain} {args.run}: weak spans per view vs D's train tags ({found[-1]})\n")
    print("\n".join(view_table(pq.read_table(found[-1]).to_pylist(), gold)))


if __name__ == "__main__":
    main()
