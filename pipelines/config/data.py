"""The data a job reads (corpus, gold sets, labels) and the model it builds when it starts from scratch."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from pipelines.config.base import Section


def _sample_dir() -> Path:
    """The embedded default's data (sample/README.md): `sample/` of a source checkout, else the copy a
    wheel installs under `<prefix>/share/gliner-selftrain/sample`."""
    checkout = Path(__file__).resolve().parents[2] / "sample"
    installed = Path(sys.prefix) / "share" / "gliner-selftrain" / "sample"
    return checkout if checkout.is_dir() or not installed.is_dir() else installed


SAMPLE_DIR = _sample_dir()


class GoldSource(Section):
    """A gold set: JSONL rows `{"text", "spans": [{"start", "end", "label"}]}`, a file or a folder of them."""

    path: str
    weight: float = Field(
        1.0, gt=0.0, description="copies of each row in the seed's rows (0.25: a seeded random quarter)"
    )
    label_map: dict[str, str] = Field(
        default_factory=dict,
        description="this set's label -> the name trained on (e.g. politicalparty: political party); "
        "'' drops the label's spans; labels not listed keep their name",
    )


class DataConfig(Section):
    corpus: str = Field(str(SAMPLE_DIR / "corpus.jsonl"), description="unlabeled documents (file or folder)")
    corpus_format: Literal["auto", "jsonl", "parquet", "csv", "hf"] = "auto"
    text_field: str = "text"
    seed_gold: list[GoldSource] = Field(
        default_factory=lambda: [GoldSource(path=str(SAMPLE_DIR / "gold_seed.jsonl"))],
        description="gold sets the seed model trains on (their union; negatives from all their labels)",
    )
    dev_gold: str = Field(str(SAMPLE_DIR / "gold_dev.jsonl"), description="gold rows for model selection")
    test_gold: str | None = None
    corpus_gold: str | None = Field(
        None,
        description="gold rows for documents of the corpus (same texts): each weak source and the merged "
        "labels are scored on them every iteration (weak-label quality, logged to MLflow); never the dev set",
    )
    labels: list[str] = Field(default_factory=lambda: ["person", "organisation", "location", "date"])
    label_descriptions: dict[str, str] = Field(default_factory=dict, description="label -> prompt text")
    label_synonyms: dict[str, list[str]] = Field(
        default_factory=dict, description="label -> other names (prompt views of the weak-label stage)"
    )
    max_documents: int | None = Field(None, ge=1, description="use only the first N corpus documents")
    label_families: list[list[str]] = Field(
        default_factory=list,
        description="groups of related labels, e.g. [person, politician, writer]: a gold set that annotates "
        "one label of a group is never offered another as a negative (its politicians are tagged person)",
    )

    @field_validator("seed_gold", mode="before")
    @classmethod
    def _sources(cls, value: Any) -> Any:
        """A path, a list of paths and {path, weight, label_map} mappings, or null (no seed rows)."""
        if value is None:
            return []
        if isinstance(value, (str, dict)):
            value = [value]
        return [{"path": v} if isinstance(v, str) else v for v in value]

    @field_validator("label_families")
    @classmethod
    def _families(cls, families: list[list[str]]) -> list[list[str]]:
        small = [family for family in families if len(set(family)) < 2]
        if small:
            raise ValueError(f"a label family groups at least two labels, got {small}")
        return families

    @field_validator("labels")
    @classmethod
    def _labels(cls, labels: list[str]) -> list[str]:
        labels = [label.strip() for label in labels]
        if not labels or not all(labels):
            raise ValueError("labels must be a non-empty list of non-blank strings")
        if len(set(labels)) != len(labels):
            raise ValueError("labels must be unique")
        return labels

    @model_validator(mode="after")
    def _descriptions(self) -> DataConfig:
        for name in ("label_descriptions", "label_synonyms"):
            unknown = set(getattr(self, name)) - set(self.labels)
            if unknown:
                raise ValueError(f"{name} for labels not in data.labels: {sorted(unknown)}")
        return self

    def prompts(self) -> dict[str, str]:
        """label -> prompt text (the description when one is given)."""
        return {label: self.label_descriptions.get(label, label) for label in self.labels}


def _gliner_fields() -> set[str]:
    from gliner_core.config import GLiNERConfig

    return set(GLiNERConfig.model_fields)


class ModelConfig(Section):
    """The model a job builds when it starts from scratch (no champion, no checkpoint)."""

    backbone: str = Field("minilm", description="encoder path or hub id; 'minilm' = the packaged MiniLM")
    settings: dict[str, Any] = Field(
        default_factory=lambda: {"hidden_size": 384, "max_len": 256, "dropout": 0.1},
        description="gliner_core.GLiNERConfig fields for a new model (e.g. span_mode, max_width); "
        "fields not given keep GLiNERConfig's defaults",
    )

    @field_validator("settings")
    @classmethod
    def _known(cls, settings: dict[str, Any]) -> dict[str, Any]:
        unknown = set(settings) - _gliner_fields() - {"model_name"}
        if unknown:
            raise ValueError(f"not GLiNERConfig fields: {sorted(unknown)}")
        if "model_name" in settings:
            raise ValueError("give the encoder as model.backbone, not model.settings.model_name")
        from gliner_core.config import GLiNERConfig

        GLiNERConfig(**settings)  # types and ranges, as the model will check them
        return settings
