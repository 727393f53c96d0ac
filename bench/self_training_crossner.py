"""Evidence protocol for self-training, phase 1: leave-one-domain-out seeds and their baselines.

    nice -n 10 python bench/self_training_crossner.py --domains politics music science \
        --seeds 0 1 2 --rows 1280 --epochs 1 --work /work/evidence_work --out /work/evidence_work/baselines.md

For each target CrossNER domain D and training seed k (docs/self_training.md, "Protocol"):
  conll-seed   MiniLM GLiNER trained on CoNLL-2003 train only (selected on CoNLL dev); the same
               model for every D, trained once per k under <work>/_shared/seed<k>/conll-seed;
  generalist   trained on every gold train split except D's (bench/crossner_data.py: CoNLL, the
               other CrossNER domains, MIT Movie/Restaurant, mixed by MIX), negative labels sampled
               from the union of their label sets, selected on CoNLL dev + the other domains' dev.
Both use the pipeline's own trainer (`pipelines.training.trainer.train_model`, Ray Train) with the same number
of rows and epochs. Each checkpoint is evaluated on D's dev halves with D's labels: half B is
reported, half A is for selection/calibration (and the threshold 0.3 / 0.2 diagnostic).
Checkpoints: <work>/<D>/seed<k>/<variant>/model (printed at the end), with eval.json beside each.
Finished steps are skipped on a re-run (a model dir or eval.json that exists is reused).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.crossner_data import (  # noqa: E402
    MIX,
    DomainFiles,
    Example,
    SeedRow,
    conll_rows,
    generalist_rows,
    gold_record,
    offered_union,
    prepare_domain,
    selection_dev,
    write_gold,
    write_jsonl,
)
from bench.crossner_variants import VARIANTS as ST_VARIANTS  # noqa: E402

DATA = Path(os.environ.get("GLINER_DATA", ROOT.parent / "shared" / "data"))
VARIANTS = ("conll-seed", "generalist")
REPORT_THRESHOLD = 0.5
DIAGNOSTIC_THRESHOLDS = (0.3, 0.2)  # half A only: how much a lower threshold would recover
TRAIN_ATTEMPTS = 4  # a failed training run resumes from its latest checkpoint
CHECKPOINT_EVERY = 100  # steps between mid-epoch checkpoints (what a failed attempt resumes from)


# ---------------------------------------------------------------------------
# training: the one place that calls the pipeline's trainer


def train_with_pipeline(
    rows: Sequence[SeedRow],
    label_pool: Sequence[str],
    dev: Sequence[Example],
    start_model: str,
    out_dir: Path,
    run_name: str,
    storage: Path,
    epochs: int,
    seed: int,
    torch_threads: int,
) -> dict:
    """Fine-tune `start_model` on gold `rows` with Ray Train; the best epoch lands in `out_dir/model`.

    Each row carries the label set it is offered (`SeedRow.labels`; the trainer only shuffles its
    order). `label_pool` (every label some row is offered) is both the selection dev's label set and
    the trainer's negative pool for rows without a label set (none here).
    """
    import ray.data

    from pipelines import TrainConfig, TrainSpec, train_model

    items = [
        {
            "doc_id": str(i),
            "text": row.example.text,
            "labels": list(row.labels),
            "weight": 1.0,
            "spans": [
                {"start": e.start, "end": e.end, "label": e.label, "score": 1.0, "origin": "gold"}
                for e in row.example.entities
            ],
        }
        for i, row in enumerate(rows)
    ]
    config = TrainConfig(
        max_epochs=epochs,
        batch_size=8,
        lr_encoder=1e-4,
        lr_heads=1e-3,
        label_smoothing=0.0,
        cpus_per_worker=1,
        torch_threads=torch_threads,
        checkpoint_every=CHECKPOINT_EVERY,
    )
    spec = TrainSpec(
        config=config,
        start_model=start_model,
        labels={label: label for label in label_pool},
        dev=[gold_record(ex) for ex in dev],
        label_pool=list(label_pool),
        num_rows=len(items),
        seed=seed,
    )
    result = train_model(
        ray.data.from_items(items),
        spec,
        run_name=run_name,
        storage_path=str(storage),
        output_dir=str(out_dir),
    )
    return {
        "train_seconds": result.seconds,
        "selection_dev_micro_f1": result.metrics.get("dev_micro_f1"),
        "rows": len(items),
        "epochs": epochs,
        "steps": result.metrics.get("step"),
    }


def base_model(work: Path, seed: int) -> str:
    """MiniLM backbone + fresh GLiNER heads, initialised with torch seed `seed` (one per k)."""
    path = work / "_shared" / f"seed{seed}" / "base"
    if not (path / "gliner_config.json").exists():
        import torch

        from gliner_core import GLiNER
        from pipelines import backbone_path

        torch.manual_seed(seed)
        GLiNER.from_backbone(
            backbone_path("minilm"), hidden_size=384, max_len=256, dropout=0.1
        ).save_pretrained(path)
    return str(path)


def train_variant(args: argparse.Namespace, work: Path, domain: str | None, variant: str, seed: int) -> Path:
    """Train one seed model unless it exists; returns its `model` dir."""
    if variant == "conll-seed":
        out = work / "_shared" / f"seed{seed}" / variant
        rows = conll_rows(DATA, args.conll_rows, seed)
        dev = selection_dev(DATA, None, args.conll_dev)
        mix = {"conll2003": len(rows)}
        start = base_model(work, seed)
    else:
        assert domain is not None
        out = work / domain / f"seed{seed}" / variant
        rows, mix = generalist_rows(DATA, domain, args.rows, seed)
        dev = selection_dev(DATA, domain, args.select_per_source)
        start = (
            str(train_variant(args, work, None, "conll-seed", seed))
            if args.generalist_start == "conll-seed"
            else base_model(work, seed)
        )
    model = out / "model"
    if (model / "gliner_config.json").exists():
        return model
    print(f"[{domain or 'all'} seed{seed} {variant}] training on {len(rows)} rows {mix}", flush=True)
    # one run name per model: Ray Train resumes a run name from its latest checkpoint (a killed
    # attempt, this process's or an earlier one's); a finished run's storage is removed below
    run_name = f"{variant}-seed{seed}" if variant == "conll-seed" else f"{domain}-{variant}-seed{seed}"
    write_jsonl(
        [gold_record(r.example) | {"labels": r.labels, "source": r.source} for r in rows],
        out / "train_rows.jsonl",
    )
    write_gold(dev, out / "selection_dev.jsonl")
    for attempt in range(1, TRAIN_ATTEMPTS + 1):
        try:
            meta = train_with_pipeline(
                rows,
                offered_union(rows),
                dev,
                start,
                out,
                run_name,
                work / "ray",
                args.epochs,
                seed,
                args.torch_threads,
            )
            break
        except Exception as error:  # e.g. Ray's memory monitor killing the workers on a crowded machine
            if attempt == TRAIN_ATTEMPTS:
                raise
            print(f"[{run_name}] attempt {attempt} failed ({str(error)[:300]}); resuming in 60 s", flush=True)
            time.sleep(60)
    meta |= {"attempts": attempt, "start_model": start, "mix": mix, "selection_dev_rows": len(dev)}
    meta["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    (out / "train_meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    shutil.rmtree(work / "ray" / run_name, ignore_errors=True)  # the model is in `out`; drop optimizer state
    print(f"[{domain or 'all'} seed{seed} {variant}] {meta}", flush=True)
    return model


# ---------------------------------------------------------------------------
# evaluation on D's dev halves


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def above(predictions: Sequence[Sequence[Mapping]], threshold: float) -> list[list[Mapping]]:
    """Predictions decoded at a lower threshold, cut at `threshold`.

    Greedy flat decoding takes candidates best-first, so the spans it keeps above `threshold` are the
    ones it keeps when decoding at `threshold` itself: one prediction pass serves every threshold.
    """
    return [[e for e in row if e["score"] > threshold] for row in predictions]


def evaluate_model(model_path: Path, files: DomainFiles) -> dict:
    """Micro and per-label scores on halves A and B at 0.5, and on A at the diagnostic thresholds."""
    from gliner_core import GLiNER
    from pipelines import predict_gold, score

    model = GLiNER.from_pretrained(model_path)
    labels = {name: name for name in files.readable}
    low = min(DIAGNOSTIC_THRESHOLDS)
    result: dict = {}
    started = time.perf_counter()
    for half, path in (("A", files.dev_a), ("B", files.dev_b)):
        gold = read_rows(path)
        predictions = predict_gold(model, gold, labels, low)
        for threshold in (REPORT_THRESHOLD, *DIAGNOSTIC_THRESHOLDS):
            if half == "B" and threshold != REPORT_THRESHOLD:
                continue
            report = score(gold, above(predictions, threshold), list(labels))
            result[f"{half}@{threshold}"] = report.to_dict()
    result["eval_seconds"] = time.perf_counter() - started
    return result


def evaluation(model: Path, files: DomainFiles, out: Path) -> dict:
    path = out / "eval.json"
    if path.exists():
        return json.loads(path.read_text())
    result = evaluate_model(model, files)
    path.write_text(json.dumps(result, indent=1) + "\n")
    return result


# ---------------------------------------------------------------------------
# tables


def mean_std(values: Sequence[float]) -> str:
    if not values:
        return "-"
    mean = 100 * statistics.mean(values)
    if len(values) == 1:
        return f"{mean:.1f}"  # one run: no spread to show
    return f"{mean:.1f} ± {100 * statistics.stdev(values):.1f}"


def tables(results: dict, domains: Sequence[str], label_maps: Mapping[str, Mapping[str, str]]) -> str:
    """Markdown: micro F1 per domain and variant (mean ± std over seeds, x100), then per-label F1 on B."""
    lines = [
        "| domain | variant | seeds | F1 B @0.5 (reported) | P B | R B | F1 A @0.5 | F1 A @0.3 | F1 A @0.2 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    averages: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for domain in domains:
        for variant in VARIANTS:
            runs = results.get(domain, {}).get(variant, [])
            if not runs:
                continue

            def col(key: str, metric: str = "micro_f1", runs: list = runs) -> list[float]:
                return [r[key][metric] for r in runs]

            averages[variant].append(statistics.mean(col("B@0.5")))
            lines.append(
                f"| {domain} | {variant} | {len(runs)} | **{mean_std(col('B@0.5'))}** | "
                f"{mean_std(col('B@0.5', 'micro_precision'))} | {mean_std(col('B@0.5', 'micro_recall'))} | "
                f"{mean_std(col('A@0.5'))} | {mean_std(col('A@0.3'))} | {mean_std(col('A@0.2'))} |"
            )
    for variant, values in averages.items():
        if values:
            lines.append(
                f"| **mean of {len(values)} domains** | {variant} | "
                f"| **{100 * statistics.mean(values):.1f}** | | | | | |"
            )
    out = ["\n".join(lines)]
    for domain in domains:
        per_variant = results.get(domain, {})
        if not per_variant:
            continue
        rows = [
            f"| label ({domain}) | support B | "
            + " | ".join(f"{v} F1 B" for v in VARIANTS if v in per_variant)
            + " |",
            "| --- | --- |" + " --- |" * sum(v in per_variant for v in VARIANTS),
        ]
        for name in label_maps[domain].values():
            first = next(iter(per_variant.values()))[0]["B@0.5"]
            cells = [
                mean_std([r["B@0.5"][f"f1/{name}"] for r in per_variant[v]])
                for v in VARIANTS
                if v in per_variant
            ]
            rows.append(f"| {name} | {int(first[f'support/{name}'])} | " + " | ".join(cells) + " |")
        out.append("\n".join(rows))
    return "\n\n".join(out)


def timing_table(work: Path, domains: Sequence[str], seeds: Sequence[int]) -> str:
    """Training time per model (Ray Train run, start to model copied out) and evaluation time."""
    lines = [
        "| model | runs | steps | train s (mean, min-max) | eval s per domain (mean) |",
        "| --- | --- | --- | --- | --- |",
    ]
    groups = {"conll-seed": [work / "_shared" / f"seed{k}" / "conll-seed" for k in seeds]}
    groups |= {f"{d} generalist": [work / d / f"seed{k}" / "generalist" for k in seeds] for d in domains}
    for name, dirs in groups.items():
        metas = [
            json.loads((d / "train_meta.json").read_text()) for d in dirs if (d / "train_meta.json").exists()
        ]
        if not metas:
            continue
        seconds = [m["train_seconds"] for m in metas]
        variant = "conll-seed" if name == "conll-seed" else "generalist"
        evals = [
            json.loads(p.read_text())["eval_seconds"]
            for d in domains
            for k in seeds
            if (p := work / d / f"seed{k}" / variant / "eval.json").exists()
            and (variant == "conll-seed" or d in name)
        ]
        eval_s = statistics.mean(evals) if evals else float("nan")
        lines.append(
            f"| {name} | {len(metas)} | {metas[0]['steps']} | {statistics.mean(seconds):.0f} "
            f"({min(seconds):.0f}-{max(seconds):.0f}) | {eval_s:.0f} |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# phase 2: one self-training iteration per variant, from the generalist seed of D


SEED_MODEL = 0  # the seed model k every variant starts from (only k = 0 was affordable here)


def seed_dir(work: Path, domain: str) -> Path:
    return work / domain / f"seed{SEED_MODEL}"


def mix_replay_rows(work: Path, domain: str) -> tuple[list[dict], list[str]]:
    """The generalist's own gold training rows (the leave-D-out mix, each with the label set it was
    offered, family guard included) as replay rows, and the union of those sets."""
    rows = read_rows(seed_dir(work, domain) / "generalist" / "train_rows.jsonl")
    replay = [
        {
            "doc_id": f"gold:{row['source']}:{i}",
            "text": row["text"],
            "spans": [{**span, "score": 1.0, "origin": "gold"} for span in row["spans"]],
            "labels": list(row["labels"]),
            "weight": 1.0,
        }
        for i, row in enumerate(rows)
    ]
    return replay, sorted({label for row in rows for label in row["labels"]})


def scores(report) -> dict:
    return report.scores.to_dict()


def calibrated_start(work: Path, domain: str, config, dev_b: Path) -> str:
    """The generalist seed with per-label thresholds calibrated on dev half A (a copy; made once), and
    its scores on half B beside it (`eval.json`)."""
    from pipelines import calibrate_model, evaluate_model, read_gold

    out = seed_dir(work, domain) / "generalist-calibrated"
    model = out / "model"
    if not (model / "gliner_config.json").exists():
        partial = out / "model.partial"
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(seed_dir(work, domain) / "generalist" / "model", partial)
        report = calibrate_model(config, str(partial))
        (out / "calibration.txt").write_text(report.result.table() + "\n")
        partial.rename(model)
    if not (out / "eval.json").exists():
        b = evaluate_model(config, str(model), read_gold(str(dev_b)), "B")
        (out / "eval.json").write_text(json.dumps({"B": scores(b)}, indent=1) + "\n")
    return str(model)


def weak_label_quality(rows_path: str, gold: Mapping[str, Sequence], labels: Sequence[str]) -> dict:
    """The iteration's weak training rows (replay rows left out) against the gold tags of D's train split,
    which the loop never sees: spans per label (all, and with score >= 0.5) and P/R/F1 of the spans
    with score >= 0.5 on the rows kept. A diagnostic only; nothing is chosen with it."""
    import pyarrow.parquet as pq

    from pipelines import score

    rows = [r for r in pq.read_table(rows_path).to_pylist() if not str(r["doc_id"]).startswith("gold:")]
    counts: dict[str, int] = {}
    confident: dict[str, int] = {}
    predictions, gold_rows = [], []
    for row in rows:
        spans = row["spans"] or []
        for span in spans:
            counts[span["label"]] = counts.get(span["label"], 0) + 1
        kept = [s for s in spans if s["score"] >= REPORT_THRESHOLD]
        for span in kept:
            confident[span["label"]] = confident.get(span["label"], 0) + 1
        predictions.append(kept)
        entities = gold.get(row["text"], [])
        gold_rows.append({"spans": [{"start": e.start, "end": e.end, "label": e.label} for e in entities]})
    report = score(gold_rows, predictions, list(labels))
    return {
        "rows": len(rows),
        "spans": counts,
        "confident_spans": confident,
        "vs_train_gold": report.to_dict(),
    }


def run_variant(work: Path, domain: str, variant: str, k: int, files: DomainFiles, cache: dict) -> dict:
    """One iteration of the pipeline's loop for `variant` with iteration seed `k`; its checkpoint lands
    in `<work>/<D>/seed0/<variant>-s<k>/model`, its scores in `eval.json` beside it."""
    import mlflow

    from bench.crossner_data import load_source
    from bench.crossner_variants import VARIANTS, variant_config
    from pipelines import NothingToTrain, SelfTraining, evaluate_model, read_corpus, read_gold, use_experiment

    out = seed_dir(work, domain) / f"{variant}-s{k}"
    if (out / "eval.json").exists():
        return json.loads((out / "eval.json").read_text())
    features = VARIANTS[variant]
    started = time.perf_counter()

    def config_from(start: str):
        return variant_config(
            features,
            name=f"{domain}-{variant}-s{k}",
            seed=k,
            labels=files.readable,
            corpus=files.corpus,
            dev_a=files.dev_a,
            start_model=start,
            storage=out / "job",
            tracking_uri=f"sqlite:///{work}/mlflow.db",
        )

    generalist = str(seed_dir(work, domain) / "generalist" / "model")
    start = (
        calibrated_start(work, domain, config_from(generalist), files.dev_b)
        if features.calibrated
        else generalist
    )
    config = config_from(start)
    job = SelfTraining(config)  # its dev set is half A; half B is scored below, after everything is chosen
    if features.replay:
        job.gold, job.gold_labels = mix_replay_rows(work, domain)
    use_experiment(config.tracking.experiment, job.uri, config.storage_path)
    print(f"[{domain} {variant}-s{k}] {features.describe()}, from {start}", flush=True)
    with mlflow.start_run(run_name=config.name) as run:
        job.log_job(run.info.run_id)
        if (domain, features.calibrated) not in cache:  # the start model on half A: the champion to beat
            cache[(domain, features.calibrated)] = job.evaluate(start)
        result = job.iteration(
            1, start, start, None, read_corpus(config), cache[(domain, features.calibrated)]
        )
    if result is None:
        raise NothingToTrain(f"{domain} {variant}-s{k}: the merge left no training rows")
    model = out / "model"
    shutil.rmtree(model, ignore_errors=True)
    shutil.copytree(result.model_path, model)
    b = evaluate_model(config, str(model), read_gold(str(files.dev_b)), "B")
    iteration = Path(job.root) / "iter_01"
    gold = {ex.text: ex.entities for ex in load_source(DATA, domain, "train")}
    model_config = json.loads((model / "gliner_config.json").read_text())
    record = {
        "variant": variant,
        "features": features.describe(),
        "iteration_seed": k,
        "start_model": start,
        "A": scores(result.dev),
        "B": scores(b),
        "start_A": scores(cache[(domain, features.calibrated)]),
        "promoted": result.promoted,
        "reason": result.reason,
        "train_rows": result.train_rows,
        "label_thresholds": model_config.get("label_thresholds"),
        "weak": weak_label_quality(str(iteration / "train_rows"), gold, files.readable),
        "seconds": time.perf_counter() - started,
    }
    shutil.rmtree(iteration / "ray_train", ignore_errors=True)  # optimizer state; the model is in `model`
    (out / "eval.json").write_text(json.dumps(record, indent=1) + "\n")
    print(
        f"[{domain} {variant}-s{k}] F1 B {b.micro_f1:.4f} A {result.dev_f1:.4f} "
        f"({'promoted' if result.promoted else 'kept out'}), {result.train_rows} rows, "
        f"{record['seconds']:.0f} s; checkpoint {model}",
        flush=True,
    )
    return record


def phase2_tables(
    work: Path, domains: Sequence[str], variants: Sequence[str], seeds: Sequence[int], files
) -> str:
    """Micro F1 on half B (x100): the seeds, then each variant (mean ± std over iteration seeds) and
    its gain over the generalist; then per label for each domain."""
    from bench.crossner_variants import VARIANTS

    def load(path: Path) -> dict | None:
        return json.loads(path.read_text()) if path.exists() else None

    def baseline(domain: str, name: str) -> float | None:
        found = load(seed_dir(work, domain) / name / "eval.json")
        if found is None:
            return None
        return (found.get("B@0.5") or found["B"])["micro_f1"]

    def runs(domain: str, variant: str) -> list[dict]:
        found = [load(seed_dir(work, domain) / f"{variant}-s{k}" / "eval.json") for k in seeds]
        return [r for r in found if r is not None]

    header = ["domain", "CoNLL-only seed", "generalist seed", "generalist, thresholds cal. on A"]
    header += [f"{VARIANTS[v].describe()} ({v})" for v in variants]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    gains: dict[str, list[float]] = {v: [] for v in variants}
    means: dict[str, list[float]] = {v: [] for v in variants}
    bases: dict[str, list[float]] = {n: [] for n in ("conll-seed", "generalist", "generalist-calibrated")}
    for domain in domains:
        cells = [domain]
        for name in bases:
            value = baseline(domain, name)
            cells.append("-" if value is None else f"{100 * value:.1f}")
            if value is not None:
                bases[name].append(value)
        general = baseline(domain, "generalist") or 0.0
        for variant in variants:
            f1 = [r["B"]["micro_f1"] for r in runs(domain, variant)]
            if not f1:
                cells.append("-")
                continue
            gain = 100 * (statistics.mean(f1) - general)
            gains[variant].append(gain)
            means[variant].append(statistics.mean(f1))
            cells.append(f"{mean_std(f1)} (n={len(f1)}, {gain:+.1f})")
        lines.append("| " + " | ".join(cells) + " |")
    mean_cells = ["**mean**"] + [
        f"{100 * statistics.mean(v):.1f}" if len(v) == len(domains) else "-" for v in bases.values()
    ]
    mean_cells += [
        f"**{100 * statistics.mean(means[v]):.1f}** ({statistics.mean(g):+.1f})"
        if len(g) == len(domains)
        else "-"
        for v, g in gains.items()
    ]
    lines.append("| " + " | ".join(mean_cells) + " |")
    out = ["\n".join(lines)]
    for domain in domains:
        shown = [v for v in variants if runs(domain, v)]
        if not shown:
            continue
        seed_eval = load(seed_dir(work, domain) / "generalist" / "eval.json")
        calibrated = load(seed_dir(work, domain) / "generalist-calibrated" / "eval.json")
        head = ["label", "support B", "generalist F1 B", "generalist cal. F1 B"]
        head += [f"{v} F1 B" for v in shown]
        head += [f"{v} weak spans >= 0.5 (P of them vs train gold)" for v in shown]
        rows = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        for label in files[domain].readable:
            first = runs(domain, shown[0])[0]
            cells = [label, str(int(first["B"][f"support/{label}"]))]
            cells.append(f"{100 * seed_eval['B@0.5'][f'f1/{label}']:.1f}" if seed_eval else "-")
            cells.append(f"{100 * calibrated['B'][f'f1/{label}']:.1f}" if calibrated else "-")
            cells += [mean_std([r["B"][f"f1/{label}"] for r in runs(domain, v)]) for v in shown]
            for v in shown:
                weak = [r["weak"] for r in runs(domain, v)]
                count = statistics.mean(w["confident_spans"].get(label, 0) for w in weak)
                precision = statistics.mean(w["vs_train_gold"][f"precision/{label}"] for w in weak)
                cells.append(f"{count:.0f} ({100 * precision:.0f})")
            rows.append("| " + " | ".join(cells) + " |")
        out.append(
            f"Per label, {domain} (F1 x100 on half B; weak spans: mean over the runs):\n\n" + "\n".join(rows)
        )
    return "\n\n".join(out)


def run_phase2(args: argparse.Namespace, work: Path, files: Mapping[str, DomainFiles]) -> None:
    from pipelines import NothingToTrain, ensure_ray

    if not args.report_only:
        ensure_ray(None)
    cache: dict = {}
    paths = []
    if not args.report_only:
        for k in args.st_seeds:  # seed-major: after the first k every domain and variant has one run
            for domain in args.domains:
                for variant in args.st_variants:
                    try:
                        run_variant(work, domain, variant, k, files[domain], cache)
                    except NothingToTrain as error:  # the loop refused: no weak label to train on
                        print(f"[{domain} {variant}-s{k}] not trained: {error}", flush=True)
                        continue
                    paths.append(str(seed_dir(work, domain) / f"{variant}-s{k}" / "model"))
    table = phase2_tables(work, args.domains, args.st_variants, args.st_seeds, files)
    print(table)
    if paths:
        print("checkpoints:\n" + "\n".join(paths))
    if args.out:
        Path(args.out).write_text(table + "\n")


# ---------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--domains", nargs="+", default=["politics", "music", "science"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--conll-rows", type=int, default=4800, help="CoNLL-only seed: training rows")
    parser.add_argument("--rows", type=int, default=1200, help="generalist: rows of the leave-D-out mix")
    parser.add_argument(
        "--generalist-start",
        choices=["conll-seed", "base"],
        default="conll-seed",
        help="the generalist continues from the CoNLL-only seed k (default) or starts from fresh heads",
    )
    parser.add_argument(
        "--phase",
        type=int,
        choices=[1, 2],
        default=1,
        help="1: the seed models and their baselines; 2: one self-training iteration per variant from "
        "the generalist seed 0 (bench/crossner_variants.py)",
    )
    parser.add_argument("--st-seeds", nargs="+", type=int, default=[0, 1, 2], help="phase 2: iteration seeds")
    parser.add_argument(
        "--st-variants",
        nargs="+",
        default=["hard", "all"],
        choices=list(ST_VARIANTS),
        help="phase 2: variants (bench/crossner_variants.py)",
    )
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="torch threads for training and evaluation (1: on an oversubscribed CPU two threads "
        "stall each other, see docs/self_training.md)",
    )
    parser.add_argument(
        "--select-per-source", type=int, default=20, help="generalist selection dev rows per source"
    )
    parser.add_argument("--conll-dev", type=int, default=100, help="CoNLL-only seed selection dev rows")
    parser.add_argument("--work", default="/work/evidence_work")
    parser.add_argument("--out", default=None, help="write the markdown tables here")
    parser.add_argument("--prepare-only", action="store_true", help="write the data files and stop")
    parser.add_argument(
        "--report-only", action="store_true", help="tables from the eval.json files there are; no training"
    )
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"error: data not found at {DATA}; set GLINER_DATA")

    work = Path(args.work)
    started = time.time()
    files = {d: prepare_domain(DATA, d, work / d / "data") for d in args.domains}
    for d, f in files.items():
        print(f"{d}: corpus {f.corpus}, dev A {f.dev_a}, dev B {f.dev_b}, labels {f.labels}", flush=True)
    print(f"generalist mix: {MIX}", flush=True)
    if args.prepare_only:
        return

    import torch

    from pipelines import ensure_ray

    torch.set_num_threads(args.torch_threads)  # evaluation runs in this process
    if args.phase == 2:
        run_phase2(args, work, files)
        print(f"total {time.time() - started:.0f} s")
        return
    if not args.report_only:
        ensure_ray(None)
    results: dict[str, dict[str, list[dict]]] = {d: {} for d in args.domains}
    paths: list[str] = []
    # seed-major order: after the first k every domain and variant has one result
    for seed in args.seeds:
        for domain in args.domains:
            for variant in args.variants:
                out = work / domain / f"seed{seed}" / variant
                if args.report_only:
                    if (out / "eval.json").exists():
                        results[domain].setdefault(variant, []).append(
                            json.loads((out / "eval.json").read_text())
                        )
                        paths.append(str(out / "model"))
                    continue
                model = train_variant(args, work, domain, variant, seed)
                if variant == "conll-seed" and not (out / "model").exists():  # one model for every D
                    out.mkdir(parents=True, exist_ok=True)
                    (out / "model").symlink_to(model.resolve())
                result = evaluation(out / "model", files[domain], out)
                results[domain].setdefault(variant, []).append(result)
                paths.append(str(out / "model"))
                print(
                    f"[{domain} seed{seed} {variant}] F1 B {result['B@0.5']['micro_f1']:.4f} "
                    f"A {result['A@0.5']['micro_f1']:.4f} (A@0.2 {result['A@0.2']['micro_f1']:.4f})",
                    flush=True,
                )
    table = tables(results, args.domains, {d: f.labels_map for d, f in files.items()})
    table += "\n\n" + timing_table(work, args.domains, args.seeds)
    print(table)
    print("checkpoints:\n" + "\n".join(paths))
    print(f"total {time.time() - started:.0f} s")
    if args.out:
        Path(args.out).write_text(table + "\n")


if __name__ == "__main__":
    main()
