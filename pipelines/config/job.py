"""A self-training job's whole configuration: one typed object, loadable from YAML/JSON.

Every stage reads its own section; the whole resolved object is logged to MLflow. Each setting is
stated once, under one name: the labels in `data`, the evaluation threshold in `eval`, one random
`seed` at the top for everything (torch, shuffles, negative sampling, the merge, the drift sample, the
review selection), replicas as `num_workers` / `cpus_per_worker` / `gpus_per_worker` in every section
that runs workers, the model's architecture in `model.settings` (fields of `gliner_core.GLiNERConfig`).
A section or a mapping given in part keeps its defaults for the rest. Old names keep working for one
release, with a deprecation message. Paths may be local folders or pyarrow filesystem URIs (`s3://…`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from pipelines.config.base import Section, deprecated
from pipelines.config.data import DataConfig, ModelConfig
from pipelines.config.ops import DriftConfig, ExportConfig, ReviewConfig
from pipelines.config.registry import TrackingConfig
from pipelines.config.selection import EvalConfig, LoopConfig
from pipelines.config.training import TrainConfig
from pipelines.config.weak import (
    _LEGACY_SYNTH,
    LabelingFunctionsConfig,
    MergeConfig,
    SynthOff,
    SynthStageConfig,
    WeakLabelConfig,
)

# (section, old key, where it lives now): read under the old name for one release
MOVED_SETTINGS = (
    ("drift", "seed", "seed"),
    ("review", "seed", "seed"),
    ("drift", "text_field", "data.text_field"),
    ("drift", "batch_size", "weak_label.batch_size"),
)

# Sections whose defaults differ from their class's: applied under anything a config file sets.
SECTION_DEFAULTS: dict[str, dict[str, Any]] = {
    # an iteration starts from a trained model: a short budget, an early stop
    "train": {"max_steps": 300, "min_steps": 50, "patience": 2},
    # the seed learns from the backbone: higher rates, no smoothing, and the steps to tell labels apart
    "seed_train": {
        "max_steps": 500,
        "min_steps": 150,
        "lr_encoder": 2e-4,
        "lr_heads": 2e-3,
        "label_smoothing": 0.0,
        "warmup_steps": 30,
    },
}


class PipelineConfig(Section):
    name: str = "self-training"
    seed: int = Field(
        0,
        description="one seed for everything: torch, data shuffles, negative sampling, the merge, the drift "
        "check's sample and the review selection",
    )
    storage_path: str = Field(
        "runs", description="where iterations write data and checkpoints (local or URI)"
    )
    ray_address: str | None = Field(None, description="Ray cluster address; None starts a local instance")
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    weak_label: WeakLabelConfig = Field(default_factory=WeakLabelConfig)
    merge: MergeConfig = Field(default_factory=MergeConfig)
    train: TrainConfig = Field(
        default_factory=lambda: TrainConfig(**SECTION_DEFAULTS["train"]),
        description="training of each iteration on weak rows, from a trained model: a short budget",
    )
    seed_train: TrainConfig = Field(
        default_factory=lambda: TrainConfig(**SECTION_DEFAULTS["seed_train"]),
        description="training of the seed model on gold rows (from the backbone: higher rates, no smoothing, "
        "the steps it takes to tell the labels apart)",
    )
    eval: EvalConfig = Field(default_factory=EvalConfig)
    loop: LoopConfig = Field(default_factory=LoopConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    synth: SynthStageConfig = Field(default_factory=SynthOff)
    drift: DriftConfig = Field(
        default_factory=DriftConfig, description="the scheduler's drift trigger (`schedule --drift-model`)"
    )
    review: ReviewConfig = Field(
        default_factory=ReviewConfig, description="the review queue in Label Studio (`review push|pull`)"
    )

    @model_validator(mode="before")
    @classmethod
    def _moved_settings(cls, data: Any) -> Any:
        """Settings that had a second home: `drift.seed` and `review.seed` (now the one `seed`),
        `drift.text_field` (`data.text_field`), `drift.batch_size` (`weak_label.batch_size`)."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for section, old, new in MOVED_SETTINGS:
            given = data.get(section)
            if not isinstance(given, dict) or old not in given:
                continue
            value = given[old]
            data[section] = {k: v for k, v in given.items() if k != old}
            *parents, leaf = new.split(".")
            target = data
            for parent in parents:
                child = target.get(parent)
                child = (
                    child.model_dump(exclude_unset=True) if isinstance(child, Section) else dict(child or {})
                )
                target[parent] = child
                target = child
            if leaf in target and target[leaf] != value:
                raise ValueError(
                    f"{section}.{old} ({value!r}) differs from {new} ({target[leaf]!r}): give only {new}"
                )
            target[leaf] = value
            deprecated(f"{section}.{old} is deprecated and will be removed in the next release: use {new}")
        return data

    @model_validator(mode="before")
    @classmethod
    def _section_defaults(cls, data: Any) -> Any:
        """A section given in part keeps its own defaults for the rest (`--set seed_train.lr_heads=…`
        leaves the seed's step budget alone)."""
        if isinstance(data, dict):
            for name, defaults in SECTION_DEFAULTS.items():
                if isinstance(data.get(name), dict):
                    data = {**data, name: {**defaults, **data[name]}}
        return data

    @model_validator(mode="before")
    @classmethod
    def _legacy_synth(cls, data: Any) -> Any:
        synth = data.get("synth") if isinstance(data, dict) else None
        if isinstance(synth, dict) and "mode" not in synth:
            if {"enabled", "rows", "config"} & set(synth):
                raise ValueError(f"{_LEGACY_SYNTH}; `enabled` is gone")
            data = {**data, "synth": {"mode": "off", **synth}}
        return data

    @model_validator(mode="after")
    def _weak_source_labels(self) -> PipelineConfig:
        """The default labeling functions are the sample's: they follow `data.labels` (a function for
        a label the job does not have is left out). Ones the config names, and the labels the NER
        models map to, must be the job's labels."""
        functions = self.weak_label.labeling_functions
        labels = set(self.data.labels)
        named = [(m.origin, label) for m in self.weak_label.ner_models for label in m.scope()]
        if "labeling_functions" not in self.weak_label.model_fields_set:
            self.weak_label.labeling_functions = LabelingFunctionsConfig(
                gazetteers=[g for g in functions.gazetteers if g.label in labels],
                regexes=[r for r in functions.regexes if r.label in labels],
            )
        else:
            named += [(g.origin, g.label) for g in functions.gazetteers if g.label is not None]
            named += [(r.origin, r.label) for r in functions.regexes]
        unknown = [f"{origin} ({label})" for origin, label in named if label not in labels]
        if unknown:
            raise ValueError(f"weak sources for labels not in data.labels: {', '.join(unknown)}")
        origins = [m.origin for m in self.weak_label.ner_models]
        if len(set(origins)) != len(origins):
            raise ValueError(f"weak_label.ner_models names must be unique, got {origins}")
        return self

    def fingerprint(self) -> str:
        """Short stable hash of the resolved config (for run names and job ids)."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def prompts(self) -> dict[str, str]:
        """label -> prompt text (the description when one is given)."""
        return self.data.prompts()

    @classmethod
    def load(cls, path: str | Path) -> PipelineConfig:
        """From a YAML or JSON file (the command line adds `--set` overrides: `jobs.settings`)."""
        from synth.config import read_mapping

        return cls.model_validate(read_mapping(path))
