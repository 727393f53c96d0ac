"""Provenance parts without MLflow: content digests, teacher and label-model tags, the job's datasets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.config import PipelineConfig
from pipelines.data.storage import content_digest
from pipelines.registry.provenance import (
    NO_TEACHER,
    git_commit,
    job_provenance,
    label_model_tags,
    teacher_tags,
)
from pipelines.reports import MergeReport
from pipelines.weak.label_model import LabelModelReport, SourceLabelStats, SourceStats


def synth_file(tmp_path, instructions: str | None = None) -> str:
    task: dict = {"kind": "ner"}
    if instructions:
        task["instructions"] = instructions
    path = tmp_path / f"synth-{len(list(tmp_path.iterdir()))}.json"
    path.write_text(
        json.dumps(
            {
                "tasks": [task],
                "engine": {"kind": "http", "base_url": "http://127.0.0.1:9/v1", "model": "llama-3-8b"},
            }
        )
    )
    return str(path)


def label_model_report() -> LabelModelReport:
    def source(name: str, accuracies: list[float | None]) -> SourceStats:
        labels = [
            SourceLabelStats(label=label, votes=10, coverage=0.5, accuracy=acc, precision=acc)
            for label, acc in zip(["person", "location"], accuracies, strict=True)
        ]
        return SourceStats(source=name, scope=["person", "location"], weight=1.0, voted=0.5, labels=labels)

    return LabelModelReport(
        method="dawid_skene",
        documents=4,
        candidates=20,
        iterations=7,
        converged=True,
        prior={"none": 0.5, "person": 0.25, "location": 0.25},
        skipped={},
        sources=[source("gliner", [0.9, 0.7]), source("gazetteer:countries", [None, 0.95])],
    )


def test_content_digest_follows_the_bytes_not_the_timestamps(tmp_path):
    folder = tmp_path / "rows"
    folder.mkdir()
    (folder / "a.jsonl").write_text('{"text": "a"}\n')
    first = content_digest(str(folder))
    assert len(first) == 16 and content_digest(str(folder)) == first
    (folder / ".partial").write_text("upload in progress")  # hidden files are not part of the data
    assert content_digest(str(folder)) == first
    (folder / "a.jsonl").write_text('{"text": "b"}\n')
    assert content_digest(str(folder)) != first
    with pytest.raises(FileNotFoundError, match="no such file"):
        content_digest(str(tmp_path / "missing"))


def test_content_digest_of_a_uri_follows_its_listing(tmp_path):
    (tmp_path / "part-0.parquet").write_bytes(b"x" * 10)
    uri = tmp_path.as_uri()  # file://…: read through pyarrow's filesystem, as s3:// is
    first = content_digest(uri)
    assert content_digest(uri) == first
    (tmp_path / "part-1.parquet").write_bytes(b"y")
    assert content_digest(uri) != first
    with pytest.raises(FileNotFoundError, match="no such file"):
        content_digest((tmp_path / "missing").as_uri())


def test_teacher_tags_name_the_llm_and_hash_each_prompt(tmp_path):
    assert teacher_tags(PipelineConfig()) == {"teacher/model": NO_TEACHER}
    config = PipelineConfig.model_validate({"synth": {"mode": "generate", "config": synth_file(tmp_path)}})
    tags = teacher_tags(config)
    assert tags["teacher/model"] == "llama-3-8b" and tags["teacher/engine"] == "http"
    digest = tags["synth/ner/prompt_sha256"]
    assert len(digest) == 16 and teacher_tags(config)["synth/ner/prompt_sha256"] == digest
    reworded = PipelineConfig.model_validate(
        {"synth": {"mode": "generate", "config": synth_file(tmp_path, "Find every named entity.")}}
    )
    assert teacher_tags(reworded)["synth/ner/prompt_sha256"] != digest  # another prompt, another hash
    fewer = config.model_copy(update={"data": config.data.model_copy(update={"labels": ["person"]})})
    assert teacher_tags(fewer)["synth/ner/prompt_sha256"] != digest  # the schema's labels changed


def test_label_model_tags_give_settings_and_mean_accuracy_per_source():
    assert label_model_tags(PipelineConfig()) == {"label_model/method": "none (merge.policy: union)"}
    config = PipelineConfig.model_validate({"merge": {"label_model": {"method": "dawid_skene"}}})
    merged = MergeReport("rows", 4, 8, {}, {}, 0.1, label_model=label_model_report())
    tags = label_model_tags(config, merged)
    assert tags["label_model/method"] == "dawid_skene"
    assert json.loads(tags["label_model/settings"])["max_iterations"] == 100
    assert tags["label_model/accuracy/gliner"] == "0.8000"
    assert tags["label_model/accuracy/gazetteer:countries"] == "0.9500"  # labels out of scope left out


def test_job_provenance_of_the_embedded_default():
    provenance = job_provenance(PipelineConfig())
    contexts = [d.context for d in provenance.datasets]
    assert contexts == ["corpus", "seed_gold", "dev"]
    dev = provenance.datasets[-1]
    assert dev.name == "gold_dev.jsonl" and dev.rows and dev.rows > 10 and len(dev.digest) == 16
    assert provenance.tags["config_fingerprint"] == PipelineConfig().fingerprint()
    assert provenance.tags["git_commit"] == git_commit() != ""
    assert provenance.tags["teacher/model"] == NO_TEACHER
    corpus = provenance.datasets[0]
    text = Path(PipelineConfig().data.corpus).read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line.strip()]
    assert corpus.name == "corpus.jsonl" and corpus.rows == len(lines) > 5
    capped = job_provenance(PipelineConfig.model_validate({"data": {"max_documents": 5}})).datasets[0]
    assert capped.rows == 5 and capped.digest == corpus.digest  # the same file, of which the job reads 5
