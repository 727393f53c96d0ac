"""Weight interpolation (WiSE-FT) on the CrossNER evidence checkpoints: seed and student, mixed.

    nice -n 5 python bench/crossner_interpolation.py --variants all hard lf --domains politics music science

For each phase-2 student `<work>/<D>/seed0/<variant>-s<k>/model` (bench/self_training_crossner.py) and
each weight lam of `--grid`, the weights (1 - lam) x generalist + lam x student are scored the way the
loop's interpolate stage scores them
(`pipelines.selection.interpolation.selection_score`: thresholds calibrated on
dev half A, micro F1 on half A), then scored on half B with those thresholds. The loop keeps the lam with
the best half-A score (ties: the larger) among those under which no watched label (at least
`loop.guard_min_support` half-A spans) loses more than `loop.guard_max_drop` F1 against the calibrated
generalist on half A — any lam when every one does — and promotes it only when its half-A score beats the
generalist's and the guard holds (`pipelines.selection.promotion`). The table reports half B of both
choices (by
micro F1 alone, as before 2026-12-02, and within the guard), which chose nothing. Every (D, variant, k,
lam) lands as one JSON line in `<work>/interpolation.jsonl`, the generalist as variant "start", lam 0
(re-runs skip what is there).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.crossner_data import prepare_domain  # noqa: E402
from bench.self_training_crossner import DATA, seed_dir  # noqa: E402

GRID = (0.25, 0.5, 0.75, 1.0)
START = "start"  # the records of the calibrated generalist itself (lam = 0)


def domain_config(files, k: int, work: Path):
    """The variant config's eval section is what scoring reads: calibration on half A, floor 0.1."""
    from bench.crossner_variants import VARIANTS, variant_config

    return variant_config(
        VARIANTS["calibrated"],
        name="interpolation",
        seed=k,
        labels=files.readable,
        corpus=files.corpus,
        dev_a=files.dev_a,
        start_model="unused",
        storage=work / "_interpolation",
        tracking_uri=f"sqlite:///{work}/_interpolation/mlflow.db",
    )


def score_one(model, config, dev_a, dev_b) -> dict:
    """Thresholds calibrated on half A; half-A F1 (micro and per label, with support) and half-B F1."""
    from pipelines import calibrate, evaluate_rows

    result = calibrate(config, model, dev_a)
    result.apply(model)
    b = evaluate_rows(model, dev_b, config.prompts(), None, "B")
    return {
        "A": result.micro_f1_after,
        "A_per_label": {label: [c.f1_after, c.support] for label, c in result.per_label.items()},
        "B": b.micro_f1,
        "B_per_label": {n[3:]: v for n, v in b.scores.to_dict().items() if n.startswith("f1/")},
    }


def score_grid(work: Path, domain: str, variant: str, k: int, grid, out: Path, done: set) -> None:
    from gliner_core import GLiNER
    from pipelines import interpolate_state, read_gold

    student = seed_dir(work, domain) / f"{variant}-s{k}" / "model"
    if variant != START and not (student / "gliner_config.json").exists():
        print(f"[{domain} {variant}-s{k}] no checkpoint at {student}: skipped", flush=True)
        return
    files = prepare_domain(DATA, domain, work / domain / "data")
    config = domain_config(files, k, work)
    dev_a, dev_b = read_gold(str(files.dev_a)), read_gold(str(files.dev_b))
    generalist = seed_dir(work, domain) / "generalist" / "model"
    start = GLiNER.from_pretrained(generalist).state_dict()
    model = GLiNER.from_pretrained(generalist if variant == START else student)
    model.eval()
    trained = {n: v.detach().clone() for n, v in model.state_dict().items()}
    for lam in grid:
        if (domain, variant, k, lam) in done:
            continue
        started = time.perf_counter()
        model.load_state_dict(interpolate_state(start, trained, lam))
        record = {"domain": domain, "variant": variant, "seed": k, "lam": lam}
        record |= score_one(model, config, dev_a, dev_b)
        record["seconds"] = time.perf_counter() - started
        with out.open("a") as f:
            f.write(json.dumps(record) + "\n")
        print(f"[{domain} {variant}-s{k}] lam {lam}: A {record['A']:.4f} B {record['B']:.4f}", flush=True)


def _labels(record: dict) -> dict[str, tuple[float, int]]:
    """Half-A F1 and support per label (empty for records written before they were kept: no guard)."""
    return {label: (f1, support) for label, (f1, support) in record.get("A_per_label", {}).items()}


def guarded_choice(rows: list[dict], start: dict) -> tuple[dict, dict]:
    """(best lam by half-A micro F1, the loop's choice: best lam within the promotion guard against
    `start` on half A; `pipelines.selection.interpolation.choose_weight`)."""
    from pipelines import LoopConfig, choose_weight, guard_losses

    by_lam = {r["lam"]: r for r in rows}
    scores = {lam: r["A"] for lam, r in by_lam.items()}
    guarded = [lam for lam, r in by_lam.items() if guard_losses(_labels(r), _labels(start), LoopConfig())]
    return by_lam[choose_weight(scores, [])], by_lam[choose_weight(scores, guarded)]


def promoted(row: dict, start: dict) -> bool:
    """The loop's decision on half A (`pipelines.selection.promotion`) against the calibrated generalist."""
    from pipelines import LoopConfig, decide_on_scores

    return decide_on_scores(row["A"], _labels(row), start["A"], _labels(start), LoopConfig()).promote


def start_scores(work: Path, domain: str) -> tuple[float, float]:
    """The calibrated generalist (lam = 0): its calibrated half-A F1 and its half-B F1."""
    folder = seed_dir(work, domain) / "generalist-calibrated"
    lines = (folder / "calibration.txt").read_text().splitlines()
    a = float(next(line for line in lines if line.startswith("micro")).split()[-1])
    b = json.loads((folder / "eval.json").read_text())["B"]["micro_f1"]
    return a, b


def table(work: Path, records: list[dict], domains, variants, seeds) -> str:
    def ms(values: list[float]) -> str:
        if not values:
            return "not run"
        if len(values) == 1:
            return f"{100 * values[0]:.1f} (n=1)"
        return f"{100 * statistics.mean(values):.1f} ± {100 * statistics.stdev(values):.1f} (n={len(values)})"

    lines = [
        "| domain | variant | calibrated generalist | student (lam = 1) | lam by micro F1 on A | "
        "after the promotion check | lam within the guard on A | after the promotion check | "
        "lam chosen (micro/guard) | promoted |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    means: dict[str, list[list[float]]] = {}
    for domain in domains:
        found = [r for r in records if (r["domain"], r["variant"]) == (domain, START)]
        start = found[0] if found else dict(zip(("A", "B"), start_scores(work, domain), strict=True))
        for variant in variants:
            cells: list[list[float]] = [[], [], [], [], []]  # student, micro, kept, guarded, kept
            lams, promotions = [], 0
            for k in seeds:
                rows = [r for r in records if (r["domain"], r["variant"], r["seed"]) == (domain, variant, k)]
                if not rows:
                    continue
                best, within = guarded_choice(rows, start)
                cells[0] += [r["B"] for r in rows if r["lam"] == 1.0]
                cells[1].append(best["B"])
                cells[2].append(best["B"] if promoted(best, start) else start["B"])
                cells[3].append(within["B"])
                cells[4].append(within["B"] if promoted(within, start) else start["B"])
                promotions += promoted(within, start)
                lams.append(f"{best['lam']:g}/{within['lam']:g}")
            means.setdefault(variant, []).append(
                [statistics.mean(v) if v else float("nan") for v in cells] + [start["B"]]
            )
            lines.append(
                f"| {domain} | {variant} | {100 * start['B']:.1f} | "
                + " | ".join(ms(v) for v in cells)
                + f" | {', '.join(lams) or '-'} | {promotions} of {len(lams)} |"
            )
    for variant, table_rows in means.items():
        cols = [statistics.mean(r[i] for r in table_rows) for i in range(6)]
        base = cols[5]
        lines.append(
            f"| **mean** | {variant} | {100 * base:.1f} | "
            + " | ".join(f"{100 * c:.1f} ({100 * (c - base):+.1f})" for c in cols[:5])
            + " | | |"
        )
    return "\n".join(lines)


def read_records(path: Path) -> list[dict]:
    """The scored (domain, variant, seed, lam) records, the first of each (a line written twice by two
    runs at once counts once)."""
    records: dict[tuple, dict] = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        record = json.loads(line)
        records.setdefault((record["domain"], record["variant"], record["seed"], record["lam"]), record)
    return list(records.values())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--domains", nargs="+", default=["politics", "music", "science"])
    parser.add_argument("--variants", nargs="+", default=["all"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="iteration seeds")
    parser.add_argument("--grid", nargs="+", type=float, default=list(GRID))
    parser.add_argument("--work", default="/work/evidence_work")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--torch-threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.torch_threads)
    work = Path(args.work)
    out = work / "interpolation.jsonl"
    records = read_records(out)
    if not args.report_only:
        done = {(r["domain"], r["variant"], r["seed"], r["lam"]) for r in records}
        for domain in args.domains:  # the calibrated generalist, per label: what the guard compares with
            score_grid(work, domain, START, 0, [0.0], out, done)
        for variant in args.variants:
            for domain in args.domains:
                for k in args.seeds:
                    score_grid(work, domain, variant, k, args.grid, out, done)
        records = read_records(out)
    print(table(work, records, args.domains, args.variants, args.seeds))


if __name__ == "__main__":
    main()
