"""Learning curve of a GLiNER student: steps -> dev F1, for CoNLL-2003 sentences labelled by gold or by a
teacher (spaCy's small English model, its types mapped to ours), through the pipeline's own train stage.

    python bench/learning_curve.py                                   # 2,000 sentences, gold and spaCy, seed 0
    python bench/learning_curve.py --rows 2000 --labels gold --seeds 0 1 2 --max-steps 3000
    python bench/learning_curve.py --quick                           # 300 sentences, 300 steps: a smoke run

Data (../shared/data, or GLINER_DATA): `--rows` sentences of CoNLL-2003 train (a seeded shuffle), the four
CoNLL types as person, organisation, location, miscellaneous; the first `--dev` CoNLL dev sentences, split
by a hash of their text into half A (early stopping, the best checkpoint, calibrated thresholds) and half
B (reported: nothing is chosen on it). The teacher's map is written here, in our own words, from spaCy's
type definitions (never from CoNLL's spans): PERSON -> person; ORG -> organisation; GPE, LOC, FAC ->
location; NORP, EVENT, WORK_OF_ART, LAW, LANGUAGE, PRODUCT -> miscellaneous; the numeric types are dropped.

Each run trains with the job's `seed_train` settings (`--max-steps` and `--eval-every` override) on one
worker and prints one line per dev score (step, seconds so far, dev score on A); then the best checkpoint,
calibrated on A, is scored on B, with the label-permutation check. The teacher alone is scored on B too.
Every result is a JSON line in `<work>/learning_curve.jsonl`; the tables go to docs/self_training.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import DATA  # noqa: E402
from bench.crossner_data import split_dev, write_jsonl  # noqa: E402

LABELS = ["person", "organisation", "location", "miscellaneous"]
SPACY_MAP = {
    "PERSON": "person",
    "ORG": "organisation",
    "GPE": "location",
    "LOC": "location",
    "FAC": "location",
    **{kind: "miscellaneous" for kind in ("NORP", "EVENT", "WORK_OF_ART", "LAW", "LANGUAGE", "PRODUCT")},
}


def gold_row(example) -> dict:
    return {
        "text": example.text,
        "spans": [{"start": e.start, "end": e.end, "label": e.label} for e in example.entities],
    }


def sentences(rows: int, dev: int, seed: int):
    """(train examples, dev half A rows, dev half B rows)."""
    from gliner_core.data import load_crossner

    train = load_crossner(DATA, "conll2003", "train")
    random.Random(seed).shuffle(train)
    a, b = split_dev(load_crossner(DATA, "conll2003", "dev")[:dev])
    return train[:rows], [gold_row(x) for x in a], [gold_row(x) for x in b]


def teacher_spans(texts: list[str]) -> list[list[dict]]:
    """spaCy's spans on `texts`, mapped (pipelines.weak.ner_models, as the weak-label stage runs it)."""
    import pyarrow as pa

    from pipelines.config import NerModelConfig
    from pipelines.weak.ner_models import NerLabeler

    config = NerModelConfig(name="spacy", model="en_core_web_sm", label_map=SPACY_MAP)
    table = pa.table({"doc_id": [str(i) for i in range(len(texts))], "text": texts})
    return NerLabeler([config], None, {})(table).column("spans").to_pylist()


def training_rows(examples, source: str, seed: int) -> list[dict]:
    rng = random.Random(f"{seed}:labels")
    texts = [x.text for x in examples]
    spans = [gold_row(x)["spans"] for x in examples] if source == "gold" else teacher_spans(texts)
    return [
        {
            "doc_id": f"{source}:{i}",
            "text": text,
            "spans": [{**s, "score": 1.0, "origin": source} for s in row],
            "labels": rng.sample(LABELS, len(LABELS)),
            "weight": 1.0,
        }
        for i, (text, row) in enumerate(zip(texts, spans, strict=True))
    ]


def score_teacher(dev_b: list[dict]) -> float:
    from pipelines import score

    predicted = teacher_spans([row["text"] for row in dev_b])
    return score(dev_b, predicted, LABELS).micro_f1


def run(source: str, seed: int, args, work: Path) -> dict:
    """Train on `source` rows; the curve from the train stage's reports, the best model's F1 on B."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipelines import PipelineConfig, calibrate_model, ensure_ray, evaluate_model, train_on_rows

    examples, dev_a, dev_b = sentences(args.rows, args.dev, seed)
    out = work / f"{source}-s{seed}"
    files = out / "data"
    write_jsonl(dev_a, files / "dev_A.jsonl")
    rows = training_rows(examples, source, seed)
    files.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), files / "rows.parquet")
    overrides = {"max_steps": args.max_steps, "eval_every": args.eval_every, "torch_threads": args.threads}
    config = PipelineConfig.model_validate(
        {
            "name": f"curve-{source}",
            "seed": seed,
            "storage_path": str(out / "runs"),
            "data": {"labels": LABELS, "dev_gold": str(files / "dev_A.jsonl"), "seed_gold": None},
            "seed_train": {k: v for k, v in overrides.items() if v is not None},
        }
    )
    ensure_ray(None)
    started = time.perf_counter()
    report = train_on_rows(
        config, str(files / "rows.parquet"), str(out / "train"), settings=config.seed_train
    )
    curve = [
        {
            "step": int(h["step"]),
            "seconds": round(float(h.get("train_seconds", 0.0)), 1),
            "dev_a": h["dev_score"],
        }
        for h in report.history
        if h.get("dev_score", -1) >= 0
    ]
    for point in curve:
        where = f"step {point['step']:>5}  {point['seconds']:>7.1f} s"
        print(f"  {source:<5} seed {seed}  {where}  dev A {point['dev_a']:.4f}")
    calibrate_model(config, report.model_path)
    final = evaluate_model(config, report.model_path, dev_b, "B")
    return {
        "labels": source,
        "seed": seed,
        "rows": len(rows),
        "best_step": report.best_step,
        "steps": report.steps,
        "stopped": report.stopped,
        "train_seconds": round(time.perf_counter() - started, 1),
        "dev_a_best": report.dev_score,
        "dev_b_micro_f1": final.micro_f1,
        "dev_b_per_label": final.per_label_f1(),
        "order_spread": final.order_spread,
        "converged": final.converged,
        "curve": curve,
        "model": report.model_path,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--dev", type=int, default=600, help="first N CoNLL dev sentences (halves A and B)")
    parser.add_argument("--labels", nargs="+", default=["gold", "spacy"], choices=["gold", "spacy"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--eval-every", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch threads of the training worker")
    parser.add_argument("--work", type=Path, default=Path("/tmp/gliner-learning-curve"))
    parser.add_argument("--quick", action="store_true", help="300 sentences, 300 steps, gold only")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.max_steps, args.eval_every, args.labels = 300, 300, 100, ["gold"]
    args.work.mkdir(parents=True, exist_ok=True)
    results = []
    teacher = score_teacher(sentences(args.rows, args.dev, 0)[2]) if "spacy" in args.labels else None
    for source in args.labels:
        for seed in args.seeds:
            result = run(source, seed, args, args.work)
            results.append(result)
            with open(args.work / "learning_curve.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(result) + "\n")
    print()
    print(
        "| labels | seed | rows | best step | steps | train s | dev A (best) | dev B micro F1 | converged |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        run_cells = f"{r['labels']} | {r['seed']} | {r['rows']} | {r['best_step']} | {r['steps']}"
        scores = f"{r['dev_a_best']:.4f} | {r['dev_b_micro_f1']:.4f} | {r['converged']}"
        print(f"| {run_cells} | {r['train_seconds']} | {scores} |")
    if teacher is not None:
        print(f"\nthe teacher (spaCy en_core_web_sm, mapped) alone on dev B: micro F1 {teacher:.4f}")


if __name__ == "__main__":
    main()
