"""What a registered model was trained on, who labeled it and with which settings (no MLflow here).

    provenance = job_provenance(config)                       # once per job
    record = provenance.for_model(train_rows, merged_report)  # per registered version
    # pipelines.registry.models.Registry.register sends it: dataset inputs on the registering run,
    # tags on the model version

Datasets carry a digest of their content: a local file or folder is hashed file by file (names and
bytes); a folder on object storage (`s3://…`) by its listing (names, sizes, modification times), which
changes whenever a file does; a Hugging Face dataset id by its name. Tags name the teacher LLM and the
hash of each synth task's prompt and JSON schema, the label model's settings and its per-source
accuracies, the git commit of the code and the config's fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.config import PipelineConfig, SynthGenerate, SynthRows
from pipelines.data.storage import DatasetFacts, DatasetKind, describe

if TYPE_CHECKING:
    from pipelines.reports import MergeReport

NO_TEACHER = "none"
REPOSITORY = Path(__file__).resolve().parents[2]  # the checkout holding pipelines/


def git_commit(folder: str | Path = REPOSITORY) -> str:
    """HEAD of the repository holding `folder` (suffixed `-dirty-<hash of the diff>` with local
    changes), or 'unknown' outside a git checkout."""
    try:
        run = lambda *args: subprocess.run(  # noqa: E731
            ["git", *args], cwd=folder, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        commit = run("rev-parse", "HEAD")
        diff = run("diff", "HEAD")
        # uncommitted changes to tracked files are part of what runs: name them by their hash
        return f"{commit}-dirty-{hashlib.sha256(diff.encode()).hexdigest()[:8]}" if diff else commit
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@dataclass(frozen=True)
class DatasetRecord:
    """One dataset a model version depends on (an MLflow dataset input)."""

    context: str  # "corpus", "training", "seed_gold", "dev", "test", "synth"
    name: str
    source: str  # path or URI as configured
    digest: str
    rows: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"context": self.context, "name": self.name, "source": self.source, "digest": self.digest} | (
            {"rows": self.rows} if self.rows is not None else {}
        )


def record(context: str, path: str, facts: DatasetFacts, name: str | None = None) -> DatasetRecord:
    return DatasetRecord(context, name or Path(path.rstrip("/")).name or path, path, facts.digest, facts.rows)


def rows_record(path: str, context: str = "training") -> DatasetRecord:
    """Parquet rows (training rows, synth rows), named with their folder (`iter_01/train_rows`): every
    iteration writes a `train_rows`, and the job's run lists them side by side."""
    parts = [part for part in path.rstrip("/").split("/") if part][-2:]
    return record(context, path, describe([(path, "parquet")])[0], name="/".join(parts) or path)


def job_datasets(config: PipelineConfig) -> list[DatasetRecord]:
    """The datasets every model of the job depends on: corpus, gold sets, given LLM rows."""
    data = config.data
    wanted: list[tuple[str, str, DatasetKind]] = [("corpus", data.corpus, data.corpus_format)]
    wanted += [("seed_gold", source.path, "jsonl") for source in data.seed_gold]
    wanted.append(("dev", data.dev_gold, "jsonl"))
    if data.test_gold:
        wanted.append(("test", data.test_gold, "jsonl"))
    if isinstance(config.synth, SynthRows):
        wanted.append(("synth", config.synth.rows, "parquet"))
    facts = describe([(path, kind) for _, path, kind in wanted])
    records = [record(context, path, f) for (context, path, _), f in zip(wanted, facts, strict=True)]
    if data.max_documents is not None:  # the job reads only the first N
        rows = records[0].rows
        records[0] = replace(
            records[0], rows=min(rows, data.max_documents) if rows is not None else data.max_documents
        )
    return records


def teacher_tags(config: PipelineConfig) -> dict[str, str]:
    """The LLM that labeled the corpus and, per synth task, the hash of its prompt and JSON schema."""
    synth = config.synth
    if isinstance(synth, SynthRows):
        return {"teacher/model": "unknown (LLM rows given as synth.rows)", "teacher/rows": synth.rows}
    if not isinstance(synth, SynthGenerate):
        return {"teacher/model": NO_TEACHER}
    from synth.config import load_config
    from synth.tasks import build_specs

    synth_config = load_config(synth.config).with_labels(config.data.labels, config.data.label_descriptions)
    tags = {"teacher/model": synth_config.model_id, "teacher/engine": synth_config.engine.kind}
    for name, spec in build_specs(synth_config).items():
        tags[f"synth/{name}/prompt_sha256"] = spec.prompt_hash()[:16]
    return tags


def label_model_tags(config: PipelineConfig, merged: MergeReport | None = None) -> dict[str, str]:
    """The label model's settings (or the merge policy when there is none) and, from a merge report,
    each source's mean accuracy over its labels (per-label figures: `label_model_report.json`)."""
    settings = config.merge.label_model
    if settings is None:
        return {"label_model/method": f"none (merge.policy: {config.merge.policy})"}
    tags = {
        "label_model/method": settings.method,
        "label_model/settings": json.dumps(settings.model_dump(mode="json"), sort_keys=True),
    }
    report = merged.label_model if merged is not None else None
    for source in getattr(report, "sources", None) or []:
        accuracies = [s.accuracy for s in source.labels if s.accuracy is not None]
        if accuracies:
            tags[f"label_model/accuracy/{source.source}"] = f"{sum(accuracies) / len(accuracies):.4f}"
    return tags


@dataclass(frozen=True)
class Provenance:
    """Datasets (MLflow inputs of the registering run) and tags (on the model version)."""

    datasets: list[DatasetRecord] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)

    def for_model(
        self,
        training_rows: str | None = None,
        merged: MergeReport | None = None,
        config: PipelineConfig | None = None,
    ) -> Provenance:
        """This job's provenance plus one model's training rows and its label model's accuracies."""
        datasets = list(self.datasets)
        if training_rows is not None:
            datasets.append(rows_record(training_rows))
        tags = dict(self.tags)
        if config is not None:
            tags.update(label_model_tags(config, merged))
        return replace(self, datasets=datasets, tags=tags)


def job_provenance(config: PipelineConfig) -> Provenance:
    """What every model of this job shares: corpus, gold sets, teacher, label model, code and config."""
    datasets = job_datasets(config)
    tags = {
        **label_model_tags(config),
        **teacher_tags(config),
        "git_commit": git_commit(),
        "config_fingerprint": config.fingerprint(),
    }
    return Provenance(datasets, tags)
