"""Typed configuration of a self-training job: one pydantic object, loadable from YAML/JSON.

Every stage reads its own section; the whole resolved object is logged to MLflow. Each setting is
stated once: the labels in `data`, the evaluation threshold in `eval`, the random seed at the top,
replica counts as `num_workers` in every section, the model's architecture settings in
`model.settings` (fields of `gliner_core.GLiNERConfig`; the rest keep that class's defaults).
Paths may be local folders or any pyarrow filesystem URI (`s3://…`) where noted.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

PACKAGE_DIR = Path(__file__).resolve().parent
SAMPLE_DIR = PACKAGE_DIR / "sample"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class DataConfig(_Section):
    corpus: str = Field(str(SAMPLE_DIR / "corpus.jsonl"), description="unlabeled documents (file or folder)")
    corpus_format: Literal["auto", "jsonl", "parquet", "csv", "hf"] = "auto"
    text_field: str = "text"
    seed_gold: str | None = Field(
        str(SAMPLE_DIR / "gold_seed.jsonl"), description="gold rows to train the seed on"
    )
    dev_gold: str = Field(str(SAMPLE_DIR / "gold_dev.jsonl"), description="gold rows for model selection")
    test_gold: str | None = None
    labels: list[str] = Field(default_factory=lambda: ["person", "organisation", "location", "date"])
    label_descriptions: dict[str, str] = Field(default_factory=dict, description="label -> prompt text")
    max_documents: int | None = Field(None, ge=1, description="use only the first N corpus documents")

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
        unknown = set(self.label_descriptions) - set(self.labels)
        if unknown:
            raise ValueError(f"label_descriptions for labels not in data.labels: {sorted(unknown)}")
        return self

    def prompts(self) -> dict[str, str]:
        """label -> prompt text (the description when one is given)."""
        return {label: self.label_descriptions.get(label, label) for label in self.labels}


def _gliner_fields() -> set[str]:
    from gliner_core.config import GLiNERConfig

    return set(GLiNERConfig.model_fields)


class ModelConfig(_Section):
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


class WeakLabelConfig(_Section):
    threshold: float = Field(0.5, ge=0.0, le=1.0)
    flat_ner: bool = True
    batch_size: int = Field(16, ge=1, description="documents per model call")
    num_workers: int = Field(
        1,
        ge=1,
        validation_alias=AliasChoices("num_workers", "actors"),
        description="model replicas (Ray actors)",
    )
    num_gpus: float = Field(0.0, ge=0.0, description="GPUs per worker; 0 runs on CPU")
    cpus_per_worker: float = Field(
        1.0, gt=0.0, validation_alias=AliasChoices("cpus_per_worker", "cpus_per_actor")
    )


class MergeConfig(_Section):
    policy: Literal["union", "llm_first", "gliner_first", "agreement_only"] = Field(
        "union", description="which source wins when LLM and GLiNER spans overlap with different labels"
    )
    agreement_boost: float = Field(0.2, ge=0.0, description="score added when both sources agree")
    min_score: float = Field(0.5, ge=0.0, le=1.0, description="spans below this confidence are dropped")
    llm_score: float = Field(0.9, ge=0.0, le=1.0, description="confidence given to grounded LLM spans")
    negatives_per_row: int = Field(2, ge=0, description="labels absent from a row added to its label set")
    drop_empty_rows: float = Field(
        0.5, ge=0.0, le=1.0, description="fraction of rows without any span to drop (they teach only 'none')"
    )


class TrainConfig(_Section):
    epochs: int = Field(2, ge=1)
    batch_size: int = Field(8, ge=1, description="rows per worker step")
    lr_encoder: float = Field(3e-5, gt=0.0)
    lr_heads: float = Field(5e-4, gt=0.0)
    weight_decay: float = Field(0.01, ge=0.0)
    warmup_ratio: float = Field(0.1, ge=0.0, lt=1.0)
    max_grad_norm: float = Field(1.0, gt=0.0)
    label_smoothing: float = Field(0.1, ge=0.0, lt=1.0, description="alpha: target = y(1-alpha) + alpha/2")
    focal_alpha: float = Field(0.75, description="focal loss positive weight; < 0 turns it off")
    focal_gamma: float = Field(2.0, ge=0.0, description="focal loss focusing; 0 turns it off")
    num_workers: int = Field(1, ge=1, description="Ray Train workers (DDP when > 1)")
    use_gpu: bool = False
    cpus_per_worker: float = Field(1.0, gt=0.0)
    torch_threads: int | None = Field(None, ge=1, description="torch threads per worker (default: its CPUs)")
    bucket_window: int = Field(
        50,
        ge=0,
        description="length bucketing: rows sorted by length within windows of this many batches "
        "(0: plain shuffle)",
    )
    checkpoint_every: int = Field(0, ge=0, description="also checkpoint every N steps (0: each epoch only)")
    max_failures: int = Field(2, ge=0, description="worker failures survived by resuming from a checkpoint")


class EvalConfig(_Section):
    """How models are scored on gold rows, and the threshold a registered model predicts with."""

    threshold: float = Field(0.5, ge=0.0, le=1.0, description="span score threshold for dev/test scoring")


class LoopConfig(_Section):
    iterations: int = Field(2, ge=0, description="self-training iterations after the seed")
    patience: int = Field(1, ge=1, description="stop after this many iterations without improvement")
    min_improvement: float = Field(0.0, ge=0.0, description="F1 gain that counts as improvement")
    start_from: str = Field(
        "champion",
        description="'champion' (registry alias, else seed training), 'seed', or a checkpoint path",
    )
    retrain_from: Literal["previous", "base"] = Field(
        "previous", description="iteration k+1 starts from model k, or from the start model"
    )


class TrackingConfig(_Section):
    tracking_uri: str | None = Field(
        None, description="MLflow URI; default: env MLFLOW_TRACKING_URI, else SQLite"
    )
    experiment: str = "gliner-self-training"
    registered_model: str = "gliner-selftrain"
    champion_alias: str = "champion"
    sample_predictions: int = Field(20, ge=0, description="dev rows shown in the sample-predictions table")


class SynthOff(_Section):
    """No LLM labels: the job trains on GLiNER's labels only."""

    mode: Literal["off"] = "off"


class SynthGenerate(_Section):
    """The LLM labels the corpus once per job (its labels do not depend on the GLiNER model)."""

    mode: Literal["generate"]
    config: str = Field(description="synth config file: tasks and LLM engine (see synth/)")


class SynthRows(_Section):
    """LLM rows made earlier (`gliner-selftrain synth`), merged into every iteration."""

    mode: Literal["rows"]
    rows: str = Field(description="synth rows (Parquet file or folder)")


SynthStageConfig = Annotated[SynthOff | SynthGenerate | SynthRows, Field(discriminator="mode")]
_LEGACY_SYNTH = "synth takes `mode: off | generate | rows` (e.g. {mode: generate, config: synth.yaml})"


class PipelineConfig(_Section):
    name: str = "self-training"
    seed: int = Field(0, description="one seed for torch, data shuffles, negative sampling and the merge")
    storage_path: str = Field(
        "runs", description="where iterations write data and checkpoints (local or URI)"
    )
    ray_address: str | None = Field(None, description="Ray cluster address; None starts a local instance")
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    weak_label: WeakLabelConfig = Field(default_factory=WeakLabelConfig)
    merge: MergeConfig = Field(default_factory=MergeConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    seed_train: TrainConfig = Field(
        default_factory=lambda: TrainConfig(epochs=10, lr_encoder=1e-4, lr_heads=1e-3, label_smoothing=0.0),
        description="training of the seed model on gold rows (from the backbone: higher rates, no smoothing)",
    )
    eval: EvalConfig = Field(default_factory=EvalConfig)
    loop: LoopConfig = Field(default_factory=LoopConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    synth: SynthStageConfig = Field(default_factory=SynthOff)

    @model_validator(mode="before")
    @classmethod
    def _legacy_synth(cls, data: Any) -> Any:
        synth = data.get("synth") if isinstance(data, dict) else None
        if isinstance(synth, dict) and "mode" not in synth:
            if {"enabled", "rows", "config"} & set(synth):
                raise ValueError(f"{_LEGACY_SYNTH}; `enabled` is gone")
            data = {**data, "synth": {"mode": "off", **synth}}
        return data

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
