"""The self-training loop: the stages of `pipelines.loop.stages`, composed and tracked in MLflow.

    start   the registry's champion, else a seed model trained on the gold seed rows
    k = 1…N weak-label the corpus with the current model → merge with LLM rows →
            train model k → evaluate on gold dev (and test) → register → promote if it wins
    stop    after N iterations, or after `patience` iterations without improvement

One MLflow parent run per job, one nested run per stage group (seed, start-model, synth,
iteration-k). The console shows one line per stage and a closing table; the full log (Ray's worker
output included) is `<storage>/<run>/job.log`, also kept in MLflow.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow

from gliner_core.processing import COMMON_SPECIAL_TOKENS, RESERVED_LABEL_TOKENS, check_label_prompts
from pipelines.config import PipelineConfig, SynthGenerate, SynthRows
from pipelines.console import Console
from pipelines.data.gold import job_gold
from pipelines.data.storage import check_writable, copy_tree, is_uri, redact_uri, resolve
from pipelines.loop import stages
from pipelines.loop.runtime import ensure_ray
from pipelines.loop.tracked import Report, run_stage
from pipelines.registry.lineage import log_datasets
from pipelines.registry.models import Registry
from pipelines.registry.provenance import Provenance
from pipelines.registry.tracking import log_job, own_tracking_env, ui_link
from pipelines.reports import EvalReport, MergeReport
from pipelines.selection.interpolation import interpolate_model
from pipelines.selection.promotion import decide


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
    per_label_f1: dict[str, float] = field(default_factory=dict)
    reason: str = ""  # why it was (not) promoted
    dev: EvalReport | None = None


@dataclass
class RunSummary:
    run_id: str
    tracking_uri: str
    start_f1: float  # the start model's dev micro F1
    champion_f1: float
    champion_path: str
    iterations: list[IterationResult]
    start_per_label_f1: dict[str, float] = field(default_factory=dict)
    log_path: str | None = None
    ui_link: str = ""  # the MLflow UI page of the experiment's runs (`pipelines.registry.tracking.ui_link`)


class SelfTraining:
    """One self-training job. The constructor checks what can be checked before any work (labels,
    a writable storage path); `run_loop` does the work."""

    def __init__(self, config: PipelineConfig, console: Console | None = None):
        self.config = config
        self.labels = config.prompts()  # label -> prompt
        # a label holding a special token would corrupt the model's prompt: refused before any work
        check_label_prompts(
            [*self.labels, *self.labels.values()], RESERVED_LABEL_TOKENS + COMMON_SPECIAL_TOKENS
        )
        self.storage = resolve(config.storage_path)
        check_writable(self.storage)  # a read-only or full disk fails here, before Ray, MLflow or any work
        self.run = f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        self.root = f"{self.storage.rstrip('/')}/{self.run}"
        self.registry = Registry.open(config)  # refused credentials or an unreachable server: before any work
        self.uri = self.registry.uri
        self.console = console or Console()
        self.run_id: str | None = None  # the MLflow parent run, once started
        gold = job_gold(config)
        self.dev, self.test = gold.dev, gold.test
        self.seed_gold, self.seed_labels = gold.seed_rows, gold.seed_labels  # what the seed trains on
        replay = bool(config.loop.replay)
        self.gold = self.seed_gold if replay else []  # gold rows each iteration replays (`loop.replay`)
        self.gold_labels = self.seed_labels if replay else []  # their labels: negatives for unlabeled rows
        self.provenance: Provenance | None = None  # datasets, teacher, code and config: `log_job`
        self.seed_rows: str | None = None  # the seed model's training rows, once written

    def say(self, message: str) -> None:
        self.console.say(message)

    def stage(self, name: str, stage: Callable[..., Report], *args: Any, **kwargs: Any) -> Report:
        """A stage of the job: one console line, its report in the active MLflow run."""
        return run_stage(self.console, name, stage, *args, **kwargs)

    # -- stages, tracked ------------------------------------------------------------------------

    def evaluate(self, model_path: str, sample: bool = False) -> EvalReport:
        """Dev scores (and test scores, when the job has a test set) of `model_path`."""
        rows = self.config.tracking.sample_predictions if sample else 0
        report = self.stage("evaluate", stages.evaluate_model, self.config, model_path, self.dev, "dev", rows)
        if self.test:
            self.stage("evaluate test", stages.evaluate_model, self.config, model_path, self.test, "test")
        return report

    def register(self, model_path: str, rows: str | None = None, merged: MergeReport | None = None) -> str:
        """Register the model with its provenance: the job's datasets and tags, plus its training rows
        and the label model's accuracies on them."""
        provenance = self.provenance.for_model(rows, merged, self.config) if self.provenance else None
        version = self.registry.register(model_path, self.labels, self.config.eval.threshold, provenance)
        if provenance is not None and rows is not None and self.run_id:  # the job's run lists them too
            training = [d for d in provenance.datasets if d.context == "training"]
            log_datasets(training, run_id=self.run_id, uri=self.uri)
        return version

    def train(self, rows_path: str, start: str, folder: str, seed: bool = False, label_pool=()) -> str:
        """Train from `start` on the rows; then mix the weights with the start's (iterations) and
        calibrate the thresholds. Returns the checkpoint."""
        run = mlflow.active_run()
        trained = self.stage(
            "train",
            stages.train_on_rows,
            self.config,
            rows_path,
            folder,
            start,
            settings=self.config.seed_train if seed else self.config.train,
            label_pool=label_pool,
            tracking=(self.uri, run.info.run_id) if run else None,
        ).model_path
        if self.config.loop.interpolation and not seed:
            self.stage("interpolate", interpolate_model, self.config, start, trained)
        if self.config.eval.calibrate:
            self.stage("calibrate", stages.calibrate_model, self.config, trained)
        return trained

    def seed_model(self) -> str:
        """A model from the backbone, trained on the gold seed rows when there are any."""
        base = stages.new_model(self.config, f"{self.root}/base")
        if not self.config.data.seed_gold:
            self.say("no data.seed_gold: starting from the backbone with untrained heads")
            return base
        rows = stages.write_seed_rows(self.config, self.seed_gold, f"{self.root}/seed/train_rows")
        self.seed_rows = rows
        return self.train(rows, base, f"{self.root}/seed", seed=True, label_pool=self.seed_labels)

    def start_model(self) -> tuple[str, str | None]:
        """(checkpoint path, registry version) to start from."""
        start = self.config.loop.start_from
        if start == "champion":
            found = self.registry.champion()
            if found:
                self.say(f"starting from the registry's champion, version {found[0]}")
                return found[1], found[0]
            self.say("no champion in the registry yet: training a seed model on the gold seed rows")
            start = "seed"
        if start == "seed":
            with mlflow.start_run(run_name="seed", nested=True):
                return self.seed_model(), None
        from pipelines.registry.model_source import ModelSourceError, resolve_model

        try:  # a folder, models:/NAME@ALIAS or /VERSION, or a hub id (e.g. urchade/gliner_small-v2.1)
            found_model = resolve_model(start, self.config)
        except ModelSourceError as error:
            raise FileNotFoundError(f"loop.start_from: {error}") from error
        self.say(f"starting from {found_model.description}")
        return found_model.path, found_model.version

    def synth_rows(self, documents) -> str | None:
        """LLM rows to merge: given (`synth.mode: rows`), or generated once per job (`generate`)."""
        synth = self.config.synth
        if isinstance(synth, SynthRows):
            self.say(f"merging LLM rows from {synth.rows}")
            return synth.rows
        if not isinstance(synth, SynthGenerate):
            return None
        output = f"{self.root}/synth_rows"
        with mlflow.start_run(run_name="synth", nested=True):
            self.stage(
                "synth", stages.synthesize_corpus, self.config, documents, synth.config, output, self.run
            )
        return output

    def iteration(
        self, k: int, current: str, start: str, synth: str | None, documents, champion: EvalReport
    ) -> IterationResult | None:
        """Weak-label → merge → train → evaluate → register → decide; None when the merge leaves no rows."""
        folder = f"{self.root}/iter_{k:02d}"
        weak = self.stage(
            "weak-label", stages.weak_label_corpus, self.config, documents, current, f"{folder}/weak_labels"
        )
        merged = self.stage(
            "merge",
            stages.merge_training_rows,
            self.config,
            weak.path,
            f"{folder}/train_rows",
            synth,
            self.gold,
            k,
        )
        if merged.rows == 0:
            self.say(f"iteration {k}: no training rows (weak_label.threshold / merge.min_score too strict?)")
            return None
        origin = current if self.config.loop.retrain_from == "previous" else start
        trained = self.train(merged.path, origin, folder, label_pool=self.gold_labels)
        report = self.evaluate(trained, sample=True)
        version = self.register(trained, merged.path, merged)
        decision = decide(report, champion, self.config.loop)
        self.registry.decide(version, decision.promote, decision.reason, report.micro_f1)
        self.say(f"iteration {k}: {'promoted' if decision.promote else 'not promoted'}: {decision.reason}")
        seconds = {"weak_label": weak.seconds, "merge": merged.seconds}
        mlflow.log_metrics({f"seconds_{name}": value for name, value in seconds.items()})
        return IterationResult(
            k,
            report.micro_f1,
            None,
            trained,
            version,
            decision.promote,
            merged.rows,
            seconds,
            report.per_label_f1(),
            decision.reason,
            report,
        )

    def start_report(self, model: str, version: str | None) -> EvalReport:
        """The start model's dev scores; a new seed is registered and made champion until beaten."""
        with mlflow.start_run(run_name="start-model", nested=True):
            report = self.evaluate(model, sample=True)
            if version is None:
                self.registry.promote(self.register(model, self.seed_rows), report.micro_f1)
        mlflow.log_metric("champion_dev_micro_f1", report.micro_f1, step=0)
        return report

    # -- the loop -------------------------------------------------------------------------------

    def run_loop(self) -> RunSummary:
        cfg = self.config
        ensure_ray(cfg.ray_address, verbose=self.console.verbose)
        documents = stages.read_corpus(cfg)
        with mlflow.start_run(run_name=self.run) as parent:
            self.provenance = log_job(cfg, list(self.labels), len(self.dev))
            self.run_id = parent.info.run_id
            experiment = parent.info.experiment_id
            link = ui_link(self.uri, experiment, self.run_id)
            self.say(f"MLflow run {self.run_id} at {redact_uri(self.uri)}: {link}")
            current, version = self.start_model()
            start = best = self.start_report(current, version)
            start_path, best_path, stale = current, current, 0
            synth = self.synth_rows(documents)
            results: list[IterationResult] = []
            for k in range(1, cfg.loop.iterations + 1):
                self.say(f"iteration {k} of {cfg.loop.iterations}")
                with mlflow.start_run(run_name=f"iteration-{k}", nested=True):
                    result = self.iteration(k, current, start_path, synth, documents, best)
                if result is None:
                    break
                results.append(result)
                if result.promoted and result.dev is not None:
                    best, best_path, stale = result.dev, result.model_path, 0
                else:
                    stale += 1
                mlflow.log_metric("champion_dev_micro_f1", best.micro_f1, step=k)
                current = result.model_path  # model k labels the corpus for, and starts, iteration k + 1
                if stale >= cfg.loop.patience:
                    self.say(f"no improvement for {stale} iteration(s): stopping")
                    break
            final = copy_tree(best_path, f"{self.root}/champion")
            mlflow.log_metric("final_champion_dev_micro_f1", best.micro_f1)
            return RunSummary(
                parent.info.run_id,
                self.uri,
                start.micro_f1,
                best.micro_f1,
                final,
                results,
                start.per_label_f1(),
                ui_link=ui_link(self.uri, experiment),
            )


def summary_table(console: Console, summary: RunSummary, labels: list[str]) -> None:
    """Iteration, training rows, dev F1 per label and micro, and the decision — one row per model."""
    header = ["model", "train rows", *labels, "micro F1", "decision"]
    rows = [
        [
            "start",
            "-",
            *(f"{summary.start_per_label_f1.get(lab, 0.0):.3f}" for lab in labels),
            f"{summary.start_f1:.4f}",
            "champion",
        ]
    ]
    for r in summary.iterations:
        rows.append(
            [
                f"iteration {r.iteration}",
                str(r.train_rows),
                *(f"{r.per_label_f1.get(lab, 0.0):.3f}" for lab in labels),
                f"{r.dev_f1:.4f}",
                "promoted" if r.promoted else "kept out",
            ]
        )
    console.table(header, rows)


@contextlib.contextmanager
def job_log(job: SelfTraining, verbose: bool) -> Iterator[Console]:
    """Capture the job's output into `<run>/job.log` and keep it in MLflow, whatever happens.

    For storage on a URI the log is written locally and copied there at the end."""
    local = f"{job.root}/job.log" if not is_uri(job.root) else f"{tempfile.mkdtemp()}/job.log"
    try:
        with Console.capture(local, verbose=verbose) as console:
            job.console = console
            yield console
    finally:
        job.console = Console()
        if is_uri(job.root):
            copy_tree(local, f"{job.root}/job.log")
        if job.run_id and Path(local).is_file():
            job.registry.client.log_artifact(job.run_id, local)


def run(config: PipelineConfig, verbose: bool = False) -> RunSummary:
    """Run one self-training job; prints its progress and a summary table, returns the summary."""
    with own_tracking_env():
        return _run(config, verbose)


def _run(config: PipelineConfig, verbose: bool) -> RunSummary:
    job = SelfTraining(config)
    with job_log(job, verbose) as console:
        summary = job.run_loop()
        summary.log_path = f"{job.root}/job.log"
        console.say("")
        summary_table(console, summary, list(job.labels))
        console.say(f"champion: dev micro F1 {summary.champion_f1:.4f}, checkpoint {summary.champion_path}")
        console.say(f"full log: {summary.log_path}")
        if summary.tracking_uri.startswith(("http://", "https://")):
            console.say(f"inspect the runs: {summary.ui_link}")
        else:
            where = redact_uri(summary.tracking_uri)
            console.say(
                f"inspect the runs: mlflow ui --backend-store-uri {where}, then open {summary.ui_link}"
            )
    return summary
