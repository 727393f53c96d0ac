"""Evidence that self-training improves a model: CrossNER domains, seed trained on CoNLL-2003.

    python bench/self_training_crossner.py --domains politics music --alphas 0 0.1 --iterations 2

1. seed: MiniLM GLiNER trained on `conll2003/train` (first --seed-rows sentences), selected on
   `conll2003/dev`;
2. per domain and label-smoothing alpha: the self-training loop (weak-label the domain's
   untagged `train` text with the current model → merge → fine-tune → evaluate) starting
   from the seed, with the domain's label set, evaluated on the domain's `dev` split.
Prints one table (seed F1, F1 after each iteration) and writes it to --out as markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gliner_core.data import load_crossner  # noqa: E402
from pipelines.config import PipelineConfig, TrainConfig  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def write_gold(examples, path: Path) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for ex in examples:
            spans = [{"start": e.start, "end": e.end, "label": e.label} for e in ex.entities]
            f.write(json.dumps({"text": ex.text, "spans": spans}) + "\n")


def train_seed(work: Path, rows: int, epochs: int) -> str:
    import ray.data

    from gliner_core import GLiNER
    from pipelines.read import read_gold
    from pipelines.self_training import backbone_path, ensure_ray
    from pipelines.train import train_model

    ensure_ray(None)
    train = load_crossner(DATA, "conll2003", "train")[:rows]
    labels = sorted({e.label for ex in train for e in ex.entities})
    write_gold(load_crossner(DATA, "conll2003", "dev")[:300], work / "conll_dev.jsonl")
    base = work / "base"
    GLiNER.from_backbone(backbone_path("minilm"), hidden_size=384, max_len=256, dropout=0.1).save_pretrained(
        base
    )
    items = [
        {
            "doc_id": str(i),
            "text": ex.text,
            "labels": labels,
            "weight": 1.0,
            "spans": [
                {"start": e.start, "end": e.end, "label": e.label, "score": 1.0, "origin": "gold"}
                for e in ex.entities
            ],
        }
        for i, ex in enumerate(train)
    ]
    config = TrainConfig(
        epochs=epochs,
        batch_size=8,
        lr_encoder=1e-4,
        lr_heads=1e-3,
        label_smoothing=0.0,
        cpus_per_worker=1,
        torch_threads=2,
    )
    result = train_model(
        ray.data.from_items(items),
        len(items),
        str(base),
        {lab: lab for lab in labels},
        read_gold(str(work / "conll_dev.jsonl")),
        config,
        "seed",
        str(work / "ray"),
        str(work / "seed"),
    )
    print(f"seed: conll2003 dev micro F1 {result.metrics.get('dev_micro_f1', float('nan')):.4f}", flush=True)
    return result.model_path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--domains", nargs="+", default=["politics", "music"])
    parser.add_argument("--alphas", nargs="+", type=float, default=[0.0, 0.1])
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--seed-rows", type=int, default=3000)
    parser.add_argument("--seed-epochs", type=int, default=1)
    parser.add_argument("--seed-model", default=None, help="reuse a seed checkpoint")
    parser.add_argument("--threshold", type=float, default=0.5, help="weak-label threshold")
    parser.add_argument(
        "--focal", action="store_true", help="focal loss on (alpha 0.75, gamma 2) in self-training"
    )
    parser.add_argument("--work", default="/tmp/crossner_selftrain")
    parser.add_argument("--out", default=None, help="append the markdown table here")
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"needs {DATA}")

    from pipelines.self_training import run

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    seed = args.seed_model or train_seed(work, args.seed_rows, args.seed_epochs)
    rows = []
    for domain in args.domains:
        train = load_crossner(DATA, domain, "train")
        dev = load_crossner(DATA, domain, "dev")
        labels = sorted({e.label for ex in train + dev for e in ex.entities})
        corpus = work / f"{domain}_corpus.jsonl"
        corpus.write_text("".join(json.dumps({"text": ex.text}) + "\n" for ex in train))
        write_gold(dev, work / f"{domain}_dev.jsonl")
        for alpha in args.alphas:
            config = PipelineConfig.model_validate(
                {
                    "name": f"{domain}-a{alpha}",
                    "storage_path": str(work / "runs"),
                    "data": {
                        "corpus": str(corpus),
                        "seed_gold": None,
                        "dev_gold": str(work / f"{domain}_dev.jsonl"),
                        "labels": labels,
                    },
                    "weak_label": {"threshold": args.threshold, "cpus_per_actor": 1},
                    "merge": {
                        "min_score": args.threshold,
                        "negatives_per_row": len(labels),
                        "drop_empty_rows": 0.5,
                    },
                    "train": {
                        "epochs": 2,
                        "batch_size": 8,
                        "label_smoothing": alpha,
                        "torch_threads": 2,
                        "focal_alpha": 0.75 if args.focal else -1.0,
                        "focal_gamma": 2.0 if args.focal else 0.0,
                    },
                    "loop": {"iterations": args.iterations, "patience": args.iterations, "start_from": seed},
                    "tracking": {
                        "experiment": "crossner-evidence",
                        "registered_model": f"crossner-{domain}",
                        "sample_predictions": 10,
                    },
                }
            )
            summary = run(config)
            rows.append((domain, alpha, summary))
            print(
                f"{domain} alpha={alpha}: " + ", ".join(f"{r.dev_f1:.4f}" for r in summary.iterations),
                flush=True,
            )

    header = (
        "| domain | labels | α | seed F1 | "
        + " | ".join(f"iter {k} F1" for k in range(1, args.iterations + 1))
        + " |"
    )
    lines = [header, "|" + " --- |" * (4 + args.iterations)]
    for domain, alpha, summary in rows:
        n_labels = len({e.label for ex in load_crossner(DATA, domain, "dev") for e in ex.entities})
        f1s = [f"{r.dev_f1:.4f}" for r in summary.iterations]
        lines.append(
            f"| {domain} | {n_labels} | {alpha} | {summary.start_f1:.4f} | " + " | ".join(f1s) + " |"
        )
    table = "\n".join(lines)
    print(table)
    print(f"total {time.time() - started:.0f} s")
    if args.out:
        with open(args.out, "a") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
