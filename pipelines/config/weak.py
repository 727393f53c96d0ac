"""The weak-supervision sections: which sources label the corpus (GLiNER prompt views, labeling functions,
the LLM) and how their votes become training rows (the label model, the merge)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from pipelines.config.base import Section, Workers
from pipelines.config.data import SAMPLE_DIR

SOURCE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
REGEX_FLAGS = {
    "IGNORECASE": re.IGNORECASE,
    "MULTILINE": re.MULTILINE,
    "DOTALL": re.DOTALL,
    "VERBOSE": re.VERBOSE,
    "ASCII": re.ASCII,
}
TEXT_SUFFIXES = {".txt", ".lst", ".list", ""}
GAZETTEER_SUFFIXES = TEXT_SUFFIXES | {".json", ".jsonl", ".csv", ".tsv"}


def _check_name(name: str) -> str:
    if not SOURCE_NAME.match(name):
        raise ValueError(
            f"name {name!r} may hold only letters, digits, '_', '.', '-' (it becomes the origin)"
        )
    return name


class GazetteerConfig(Section):
    """Names per label from a file: `.txt` (one name per line, `#` comments; needs `label`), `.json`
    (a list of names, a list of `{"name", "label"}` objects, or `{label: [names]}`), `.jsonl`
    (`{"name", "label"}` per line) or `.csv`/`.tsv` (a header with `name` and optionally `label`).
    `label` is the label of names whose row has none."""

    name: str = Field(description="source name; spans get origin `lf:gazetteer:<name>`")
    path: str = Field(description="gazetteer file (local path or pyarrow URI)")
    label: str | None = Field(None, description="label of names the file gives without one")
    case_sensitive: bool = False
    whole_word: bool = True
    score: float = Field(0.9, ge=0.0, le=1.0, description="score of every span this gazetteer yields")

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        return _check_name(name)

    @model_validator(mode="after")
    def _file(self) -> GazetteerConfig:
        suffix = Path(self.path).suffix.lower()
        if suffix not in GAZETTEER_SUFFIXES:
            raise ValueError(
                f"gazetteer {self.name!r}: {self.path} has an unknown extension {suffix!r}; "
                "use .txt, .json, .jsonl, .csv or .tsv"
            )
        if suffix in TEXT_SUFFIXES and not self.label:
            raise ValueError(f"gazetteer {self.name!r}: {self.path} lists bare names, so give `label`")
        if "://" not in self.path and not Path(self.path).expanduser().is_file():
            raise ValueError(f"gazetteer {self.name!r}: file not found: {self.path}")
        return self

    @property
    def origin(self) -> str:
        return f"lf:gazetteer:{self.name}"


class RegexConfig(Section):
    """A regular expression for one label; the span is the whole match (`group: 0`) or one group."""

    name: str = Field(description="source name; spans get origin `lf:regex:<name>`")
    label: str
    pattern: str
    flags: list[Literal["IGNORECASE", "MULTILINE", "DOTALL", "VERBOSE", "ASCII"]] = Field(
        default_factory=list
    )
    group: int | str = Field(0, description="group number or name whose text is the span; 0 = whole match")
    score: float = Field(0.9, ge=0.0, le=1.0)

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        return _check_name(name)

    @model_validator(mode="after")
    def _compiles(self) -> RegexConfig:
        try:
            compiled = self.compile()
        except re.error as error:
            raise ValueError(f"regex {self.name!r}: bad pattern {self.pattern!r}: {error}") from None
        if isinstance(self.group, int) and not 0 <= self.group <= compiled.groups:
            raise ValueError(
                f"regex {self.name!r}: group {self.group} not in the pattern ({compiled.groups} groups)"
            )
        if isinstance(self.group, str) and self.group not in compiled.groupindex:
            names = sorted(compiled.groupindex) or "none"
            raise ValueError(f"regex {self.name!r}: no group named {self.group!r} (named groups: {names})")
        return self

    def compile(self) -> re.Pattern[str]:
        flags = 0
        for flag in self.flags:
            flags |= REGEX_FLAGS[flag]
        return re.compile(self.pattern, flags)

    @property
    def origin(self) -> str:
        return f"lf:regex:{self.name}"


class LabelingFunctionsConfig(Section):
    gazetteers: list[GazetteerConfig] = Field(default_factory=list)
    regexes: list[RegexConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> LabelingFunctionsConfig:
        origins = [g.origin for g in self.gazetteers] + [r.origin for r in self.regexes]
        twice = sorted({o for o in origins if origins.count(o) > 1})
        if twice:
            raise ValueError(f"labeling function names must be unique per kind; repeated: {', '.join(twice)}")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.gazetteers or self.regexes)


class SourceConfig(Section):
    weight: float = Field(1.0, gt=0.0, description="vote weight in majority_vote")
    labels: list[str] | None = Field(
        None, description="labels the source can produce (its scope); default: those it produced in the fit"
    )


class LabelModelConfig(Section):
    method: Literal["majority_vote", "dawid_skene"] = "dawid_skene"
    sources: dict[str, SourceConfig] = Field(
        default_factory=dict,
        description="per origin; every other origin in the data is a source with defaults",
    )
    exclude_origins: list[str] = Field(
        default_factory=lambda: ["gold", "label_model"], description="origins that are not weak sources"
    )
    max_candidates: int = Field(200_000, ge=1, description="candidate spans the fit sees (sampled by doc)")
    max_iterations: int = Field(100, ge=1, description="EM iterations at most (dawid_skene)")
    tolerance: float = Field(
        1e-6, gt=0.0, description="EM stops when the log-likelihood per vote gains less (dawid_skene)"
    )
    min_probability: float = Field(0.05, ge=0.0, le=1.0, description="soft spans below this are not written")


class PromptViewsConfig(Section):
    """The views the weak-label stage runs (`weak_label.views`). The main view, `gliner`, asks for each
    label by its prompt (`data.label_descriptions`, else its name), as evaluation and prediction do;
    these add more views, each a weak source of its own."""

    names: bool = Field(False, description="a view with the plain label names (when descriptions differ)")
    synonyms: bool = Field(False, description="one view per rank of `data.label_synonyms`")


class NerModelConfig(Section):
    """A pretrained NER model as a weak source (`pipelines.weak.ner_models`): its types mapped to ours."""

    name: str = Field(description="source name; spans get origin `ner:<name>`")
    kind: Literal["spacy", "hf"] = Field(
        "spacy", description="a spaCy pipeline, or a Hugging Face token-classification model"
    )
    model: str = Field(description="spaCy package name or folder; Hugging Face model folder (or hub id)")
    label_map: dict[str, str | list[str]] = Field(
        description="the model's type -> our label, or several labels (the current GLiNER chooses among "
        "them); types not listed are dropped"
    )
    score: float = Field(
        0.8, ge=0.0, le=1.0, description="confidence of a span mapped to one label, when the model gives none"
    )
    batch_size: int = Field(64, ge=1, description="texts per model call")

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        return _check_name(name)

    @property
    def origin(self) -> str:
        return f"ner:{self.name}"

    def labels_of(self, kind: str) -> list[str]:
        """Our labels for one of the model's types ([] when the type is not mapped)."""
        mapped = self.label_map.get(kind, [])
        return [mapped] if isinstance(mapped, str) else list(mapped)

    def ambiguous_types(self) -> list[str]:
        """The types mapped to more than one label (GLiNER types their spans)."""
        return [kind for kind in self.label_map if len(self.labels_of(kind)) > 1]

    def scope(self) -> list[str]:
        """Every label this source can give."""
        return sorted({label for kind in self.label_map for label in self.labels_of(kind)})


def sample_labeling_functions() -> LabelingFunctionsConfig:
    """The embedded default's labeling functions, `sample/labeling_functions.yaml` (a country gazetteer
    and a date rule; see sample/README.md). Its file paths are relative to that file."""
    from synth.config import read_mapping

    data = read_mapping(SAMPLE_DIR / "labeling_functions.yaml")
    for gazetteer in data.get("gazetteers", []):
        gazetteer["path"] = str(SAMPLE_DIR / gazetteer["path"])
    return LabelingFunctionsConfig.model_validate(data)


class WeakLabelConfig(Workers):
    """GLiNER labels the corpus: one model per worker (a Ray Data actor), once per prompt view."""

    section = "weak_label"

    threshold: float | None = Field(
        None, ge=0.0, le=1.0, description="null: the model's calibrated thresholds, else eval.threshold"
    )
    flat_ner: bool = True
    batch_size: int = Field(
        16, ge=1, description="documents per model call (weak labeling, and the drift check's predictions)"
    )
    views: PromptViewsConfig = Field(
        default_factory=PromptViewsConfig,
        description="GLiNER runs once per view (prompts, plain names, synonyms), each a weak source",
    )
    ner_models: list[NerModelConfig] = Field(
        default_factory=list,
        description="pretrained NER models (spaCy, Hugging Face token classification) as weak sources",
    )
    labeling_functions: LabelingFunctionsConfig = Field(
        default_factory=sample_labeling_functions,
        description="gazetteers and regular expressions per label (default: the sample's country "
        "gazetteer and date rule, sample/labeling_functions.yaml; `{}` for none)",
    )


class MergeConfig(Section):
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


class SynthOff(Section):
    """No LLM labels: the job trains on GLiNER's labels only."""

    mode: Literal["off"] = "off"


class SynthGenerate(Section):
    """The LLM labels the corpus once per job (its labels do not depend on the GLiNER model)."""

    mode: Literal["generate"]
    config: str = Field(description="synth config file: tasks and LLM engine (see synth/)")


class SynthRows(Section):
    """LLM rows made earlier (`gliner-selftrain synth`), merged into every iteration."""

    mode: Literal["rows"]
    rows: str = Field(description="synth rows (Parquet file or folder)")


SynthStageConfig = Annotated[SynthOff | SynthGenerate | SynthRows, Field(discriminator="mode")]
_LEGACY_SYNTH = "synth takes `mode: off | generate | rows` (e.g. {mode: generate, config: synth.yaml})"
