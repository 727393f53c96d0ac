"""What a registered model was trained on, who labeled it and with which settings (no MLflow here).

    provenance = job_provenance(config)                       # once per job
    record = provenance.for_model(train_rows, merged_report)  # per registered version
    # pipelines.registry.tracking.log_provenance(...) sends it: dataset inputs on the registering run,
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
from pipelines.data.storage import filesystem, is_uri, resolve

if TYPE_CHECKING:
    from pipelines.reports import MergeReport

NO_TEACHER = "none"
CHUNK = 1 << 20
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


def content_digest(path: str) -> str:
    """16 hex digits naming the content of a file or folder (see the module docstring)."""
    digest = hashlib.sha256()
    if is_uri(path):
        fs, root = filesystem(path)
        from pyarrow import fs as pafs

        info = fs.get_file_info(root)
        if info.type == pafs.FileType.NotFound:
            raise FileNotFoundError(f"no such file or folder: {path}")
        infos = [info] if info.type == pafs.FileType.File else fs.get_file_info(pafs.FileSelector(root, True))
        for item in sorted((i for i in infos if i.type == pafs.FileType.File), key=lambda i: i.path):
            digest.update(json.dumps([item.path.removeprefix(root), item.size, str(item.mtime)]).encode())
        return digest.hexdigest()[:16]
    local = Path(resolve(path))
    if not local.exists():
        raise FileNotFoundError(f"no such file or folder: {path}")
    files = [local] if local.is_file() else sorted(p for p in local.rglob("*") if p.is_file())
    for file in files:
        relative = file.relative_to(local.parent if local.is_file() else local)
        if any(part.startswith(".") for part in relative.parts):
            continue  # partial uploads, lock files
        digest.update(str(relative).encode() + b"\0")
        with file.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def jsonl_rows(path: str) -> int | None:
    """Non-blank lines of a local JSONL file or folder of them (None for a URI)."""
    if is_uri(path):
        return None
    local = Path(resolve(path))
    files = [local] if local.is_file() else sorted(local.rglob("*.jsonl"))
    count = 0
    for file in files:
        with file.open(encoding="utf-8", errors="replace") as handle:
            count += sum(1 for line in handle if line.strip())
    return count


def parquet_rows(path: str) -> int | None:
    import pyarrow.dataset as ds

    try:
        fs, root = filesystem(path)
        return int(ds.dataset(root, format="parquet", filesystem=fs).count_rows())
    except (OSError, ValueError):
        return None


def gold_record(path: str, context: str, name: str | None = None) -> DatasetRecord:
    name = name or Path(path.rstrip("/")).name
    return DatasetRecord(context, name, path, content_digest(path), jsonl_rows(path))


def rows_record(path: str, context: str = "training", name: str | None = None) -> DatasetRecord:
    """Parquet rows (training rows, synth rows)."""
    name = name or Path(path.rstrip("/")).name
    return DatasetRecord(context, name, path, content_digest(path), parquet_rows(path))


def corpus_rows(config: PipelineConfig) -> int | None:
    """Documents in a local JSONL or Parquet corpus (None for other formats and URIs)."""
    data = config.data
    if is_uri(data.corpus):
        return None
    local = Path(resolve(data.corpus))
    suffixes = {local.suffix} if local.is_file() else {p.suffix for p in local.rglob("*") if p.is_file()}
    if data.corpus_format == "jsonl" or (data.corpus_format == "auto" and suffixes == {".jsonl"}):
        return jsonl_rows(data.corpus)
    if data.corpus_format == "parquet" or (data.corpus_format == "auto" and suffixes == {".parquet"}):
        return parquet_rows(data.corpus)
    return None


def corpus_record(config: PipelineConfig) -> DatasetRecord:
    data = config.data
    name = Path(data.corpus.rstrip("/")).name or data.corpus
    if data.corpus_format == "hf":  # a hub dataset id: its name is all there is to hash here
        digest = hashlib.sha256(data.corpus.encode()).hexdigest()[:16]
        return DatasetRecord("corpus", name, data.corpus, digest, data.max_documents)
    rows = corpus_rows(config)
    if data.max_documents is not None:  # the job reads only the first N
        rows = min(rows, data.max_documents) if rows is not None else data.max_documents
    return DatasetRecord("corpus", name, data.corpus, content_digest(data.corpus), rows)


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
    datasets = [corpus_record(config)]
    datasets += [gold_record(source.path, "seed_gold") for source in config.data.seed_gold]
    datasets.append(gold_record(config.data.dev_gold, "dev"))
    if config.data.test_gold:
        datasets.append(gold_record(config.data.test_gold, "test"))
    if isinstance(config.synth, SynthRows):
        datasets.append(rows_record(config.synth.rows, "synth"))
    tags = {
        **teacher_tags(config),
        **label_model_tags(config),
        "git_commit": git_commit(),
        "config_fingerprint": config.fingerprint(),
    }
    return Provenance(datasets, tags)
