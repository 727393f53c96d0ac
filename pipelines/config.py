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

from pipelines.ops.drift import DriftConfig
from pipelines.weak.label_model import LabelModelConfig
from pipelines.weak.labeling_functions import GazetteerConfig, LabelingFunctionsConfig, RegexConfig
from pipelines.weak.prompt_views import PromptViewsConfig

PACKAGE_DIR = Path(__file__).resolve().parent
SAMPLE_DIR = PACKAGE_DIR / "sample"


_MONTH = "(?:January|February|March|April|May|June|July|August|September|October|November|December)"
# A date, in our own words: a weekday (and the part of it), a day and month (and year), a month and
# year, or a year from 1800 to 2099.
DATE_PATTERN = (
    r"\b(?:(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day(?: (?:morning|afternoon|evening|night))?"
    rf"|\d{{1,2}} {_MONTH}(?: \d{{4}})?|{_MONTH} \d{{4}}|(?:1[89]|20)\d\d)\b"
)


def sample_labeling_functions() -> LabelingFunctionsConfig:
    """The embedded default's labeling functions (see pipelines/sample/README.md): ISO 3166 country
    names (pycountry) as locations, and a date rule."""
    return LabelingFunctionsConfig(
        gazetteers=[
            GazetteerConfig(
                name="countries",
                label="location",
                path=str(SAMPLE_DIR / "countries.txt"),
                case_sensitive=True,
            )
        ],
        regexes=[RegexConfig(name="dates", label="date", pattern=DATE_PATTERN)],
    )


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class GoldSource(_Section):
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


class DataConfig(_Section):
    corpus: str = Field(str(SAMPLE_DIR / "corpus.jsonl"), description="unlabeled documents (file or folder)")
    corpus_format: Literal["auto", "jsonl", "parquet", "csv", "hf"] = "auto"
    text_field: str = "text"
    seed_gold: list[GoldSource] = Field(
        default_factory=lambda: [GoldSource(path=str(SAMPLE_DIR / "gold_seed.jsonl"))],
        description="gold sets the seed model trains on (their union; negatives from all their labels)",
    )
    dev_gold: str = Field(str(SAMPLE_DIR / "gold_dev.jsonl"), description="gold rows for model selection")
    test_gold: str | None = None
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
    threshold: float | None = Field(
        None, ge=0.0, le=1.0, description="null: the model's calibrated thresholds, else eval.threshold"
    )
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
    views: PromptViewsConfig = Field(
        default_factory=PromptViewsConfig,
        description="GLiNER runs once per view (prompts, plain names, synonyms), each a weak source",
    )
    labeling_functions: LabelingFunctionsConfig = Field(
        default_factory=sample_labeling_functions,
        description="gazetteers and regular expressions per label (default: the sample's country "
        "gazetteer and date rule; `{}` for none)",
    )


class MergeConfig(_Section):
    """How every source's spans for a document become one training row."""

    label_model: LabelModelConfig | None = Field(
        None,
        description="null: the policy below picks among overlapping spans; set: a label model "
        "(majority_vote or dawid_skene) turns all sources' votes into P(label) per span",
    )
    soft_targets: bool = Field(
        False, description="train towards each span's probability (its score) instead of 1"
    )
    max_label_share: float = Field(
        1.0,
        gt=0.0,
        le=1.0,
        description="class balance: rows whose labels all exceed this share of "
        "the spans are subsampled down to it",
    )
    policy: Literal["union", "llm_first", "gliner_first", "agreement_only"] = Field(
        "union", description="which source wins when LLM and GLiNER spans overlap with different labels"
    )
    agreement_boost: float = Field(0.2, ge=0.0, description="score added when both sources agree")
    min_score: float | None = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="spans below this confidence (or label-model probability) are dropped; null: no "
        "second cut after the weak labeler's (calibrated) thresholds, and P >= 0.5 with a label model",
    )
    llm_score: float = Field(0.9, ge=0.0, le=1.0, description="confidence given to grounded LLM spans")
    negatives_per_row: int = Field(2, ge=0, description="labels absent from a row added to its label set")
    drop_empty_rows: float = Field(
        0.5, ge=0.0, le=1.0, description="fraction of rows without any span to drop (they teach only 'none')"
    )

    def score_floor(self, label_model: bool) -> float:
        """The `min_score` in force: the weak labeler already cut at its thresholds; P(label) at 0.5."""
        if self.min_score is not None:
            return self.min_score
        return 0.5 if label_model else 0.0


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
        0,
        ge=0,
        description="length bucketing: rows sorted by length within windows of this many batches "
        "(0: plain shuffle)",
    )
    checkpoint_every: int = Field(0, ge=0, description="also checkpoint every N steps (0: each epoch only)")
    max_failures: int = Field(2, ge=0, description="worker failures survived by resuming from a checkpoint")


class EvalConfig(_Section):
    """How models are scored on gold rows, and the thresholds a registered model predicts with."""

    threshold: float = Field(0.5, ge=0.0, le=1.0, description="span score threshold for dev/test scoring")
    calibrate: bool = Field(
        True,
        description="after each training, per-label thresholds that maximise each label's F1 on "
        "calibration_gold, stored with the checkpoint and used by weak labeling, evaluate and predict",
    )
    calibration_gold: str | None = Field(
        None, description="gold rows to calibrate on (default: data.dev_gold)"
    )
    threshold_floor: float = Field(0.1, ge=0.0, le=1.0, description="no calibrated threshold below this")
    calibration_min_support: int = Field(
        5, ge=1, description="labels with fewer gold spans keep eval.threshold"
    )


class LoopConfig(_Section):
    iterations: int = Field(2, ge=0, description="self-training iterations after the seed")
    patience: int = Field(1, ge=1, description="stop after this many iterations without improvement")
    min_improvement: float = Field(0.0, ge=0.0, description="F1 gain that counts as improvement")
    start_from: str = Field(
        "champion",
        description="'champion' (the registry's, else seed training), 'seed', a checkpoint folder, "
        "models:/NAME@ALIAS or models:/NAME/VERSION, or a hub id such as urchade/gliner_small-v2.1",
    )
    retrain_from: Literal["previous", "base"] = Field(
        "previous", description="iteration k+1 starts from model k, or from the start model"
    )
    replay: float = Field(
        0.25, ge=0.0, description="gold seed rows mixed into each iteration's rows, as a share of them"
    )
    interpolation: list[float] = Field(
        default_factory=lambda: [0.25, 0.5, 0.75, 1.0],
        description="weights lam in (0, 1] of the trained model tried after each iteration's training: "
        "(1 - lam) x start + lam x trained, the best on the calibration rows kept among those within the "
        "promotion guard (WiSE-FT); [] = off",
    )
    guard_min_support: int = Field(
        10, ge=1, description="promotion guard: labels with at least this many dev spans are watched"
    )
    guard_max_drop: float = Field(
        0.05, ge=0.0, le=1.0, description="promotion guard: no watched label may lose more dev F1 than this"
    )

    @field_validator("interpolation")
    @classmethod
    def _weights(cls, weights: list[float]) -> list[float]:
        bad = [w for w in weights if not 0.0 < w <= 1.0]
        if bad:
            raise ValueError(f"interpolation weights must be in (0, 1] (1 = the trained model), got {bad}")
        return sorted(set(weights))


class ExportConfig(_Section):
    """Serving exports (`gliner-selftrain export`)."""

    int8_max_f1_drop: float = Field(
        0.01,
        ge=0.0,
        le=1.0,
        description="an int8 ONNX export may lose at most this much micro F1 against fp32 on the gold "
        "set (`--gold`, default data.dev_gold); above it the export is refused for serving",
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


# Sections whose defaults differ from their class's: applied under anything a config file sets.
SECTION_DEFAULTS: dict[str, dict[str, Any]] = {
    "train": {"epochs": 1},
    "seed_train": {"epochs": 10, "lr_encoder": 1e-4, "lr_heads": 1e-3, "label_smoothing": 0.0},
}


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
    train: TrainConfig = Field(
        default_factory=lambda: TrainConfig(**SECTION_DEFAULTS["train"]),
        description="training of each iteration on weak rows (one epoch: more fits their noise)",
    )
    seed_train: TrainConfig = Field(
        default_factory=lambda: TrainConfig(**SECTION_DEFAULTS["seed_train"]),
        description="training of the seed model on gold rows (from the backbone: higher rates, no smoothing)",
    )
    eval: EvalConfig = Field(default_factory=EvalConfig)
    loop: LoopConfig = Field(default_factory=LoopConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    synth: SynthStageConfig = Field(default_factory=SynthOff)
    drift: DriftConfig = Field(
        default_factory=DriftConfig, description="the scheduler's drift trigger (`schedule --drift-config`)"
    )

    @model_validator(mode="before")
    @classmethod
    def _section_defaults(cls, data: Any) -> Any:
        """A section given in part keeps its own defaults for the rest (`--set seed_train.lr_heads=…`
        leaves the seed's 10 epochs alone)."""
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
    def _labeling_function_labels(self) -> PipelineConfig:
        """The default labeling functions are the sample's: they follow `data.labels` (a function for
        a label the job does not have is left out). Ones the config names must use its labels."""
        functions = self.weak_label.labeling_functions
        labels = set(self.data.labels)
        if "labeling_functions" not in self.weak_label.model_fields_set:
            self.weak_label.labeling_functions = LabelingFunctionsConfig(
                gazetteers=[g for g in functions.gazetteers if g.label in labels],
                regexes=[r for r in functions.regexes if r.label in labels],
            )
            return self
        named = [(g.origin, g.label) for g in functions.gazetteers if g.label is not None]
        named += [(r.origin, r.label) for r in functions.regexes]
        unknown = [f"{origin} ({label})" for origin, label in named if label not in labels]
        if unknown:
            raise ValueError(
                f"weak_label.labeling_functions for labels not in data.labels: {', '.join(unknown)}"
            )
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
