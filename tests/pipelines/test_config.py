"""The job config: every setting once under one name, old names for one release, mappings set in part."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from jobs.settings import load_config
from pipelines.config import PipelineConfig


def test_setting_one_key_of_model_settings_keeps_the_others():
    """`--set model.settings.labels_encoder=…` used to replace the whole mapping: the sample's
    hidden_size 384, max_len 256 and dropout 0.1 fell back to GLiNERConfig's defaults."""
    cfg = load_config(None, ["model.settings.span_mode=token_level"])
    assert cfg.model.settings == {
        "hidden_size": 384,
        "max_len": 256,
        "dropout": 0.1,
        "span_mode": "token_level",
    }
    cfg = load_config(None, ["model.settings.max_len=128"])
    assert cfg.model.settings["max_len"] == 128 and cfg.model.settings["hidden_size"] == 384


def test_review_and_drift_are_sections_of_the_job(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("seed: 7\nreview: {budget: 5, label_studio: {project: mine}}\ndrift: {sample_size: 50}\n")
    cfg = load_config(path)
    assert (cfg.seed, cfg.review.budget, cfg.review.label_studio.project) == (7, 5, "mine")
    assert cfg.drift.sample_size == 50
    with pytest.raises(ValidationError, match="unknown|Extra"):
        PipelineConfig.model_validate({"review": {"budgett": 5}})


@pytest.mark.parametrize(
    ("given", "read"),
    [
        ({"drift": {"seed": 3}}, lambda c: c.seed == 3),
        ({"review": {"seed": 4}}, lambda c: c.seed == 4),
        ({"drift": {"text_field": "body"}}, lambda c: c.data.text_field == "body"),
        ({"drift": {"batch_size": 4}}, lambda c: c.weak_label.batch_size == 4),
        ({"weak_label": {"actors": 2}}, lambda c: c.weak_label.num_workers == 2),
        ({"weak_label": {"cpus_per_actor": 0.5}}, lambda c: c.weak_label.cpus_per_worker == 0.5),
        ({"weak_label": {"num_gpus": 0.25}}, lambda c: c.weak_label.gpus_per_worker == 0.25),
        ({"train": {"use_gpu": True}}, lambda c: c.train.gpus_per_worker == 1.0 and c.train.max_steps == 300),
        ({"train": {"epochs": 3}}, lambda c: c.train.max_epochs == 3 and c.train.max_steps == 300),
        ({"seed_train": {"warmup_ratio": 0.1}}, lambda c: c.seed_train.warmup_steps == 50),
        ({"seed_train": {"use_gpu": False}}, lambda c: c.seed_train.gpus_per_worker == 0.0),
    ],
)
def test_old_names_still_work_with_a_deprecation_message(given, read):
    with pytest.warns(FutureWarning, match="deprecated and will be removed in the next release: use"):
        cfg = PipelineConfig.model_validate(given)
    assert read(cfg)


def test_an_old_name_beside_its_new_one_is_refused_when_they_differ():
    with pytest.raises(ValidationError, match="give only seed"):
        PipelineConfig.model_validate({"seed": 1, "drift": {"seed": 2}})
    with pytest.raises(ValidationError, match="give only num_workers"):
        PipelineConfig.model_validate({"weak_label": {"actors": 2, "num_workers": 3}})


def test_every_worker_section_names_its_replicas_alike():
    cfg = PipelineConfig()
    for section in (cfg.weak_label, cfg.train, cfg.seed_train):
        assert {"num_workers", "cpus_per_worker", "gpus_per_worker"} <= set(type(section).model_fields)
    assert not {"seed", "text_field", "batch_size"} & set(type(cfg.drift).model_fields)
    assert "seed" not in type(cfg.review).model_fields


def test_the_embedded_default_reads_the_sample_rules_beside_the_sample():
    functions = PipelineConfig().weak_label.labeling_functions
    assert [g.name for g in functions.gazetteers] == ["countries"]
    assert [r.name for r in functions.regexes] == ["dates"]
    assert functions.regexes[0].compile().search("on 1 January 2024")
