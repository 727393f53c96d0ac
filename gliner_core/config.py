"""The model configuration, stored as `gliner_config.json` beside the weights.

Field names and defaults follow the official `gliner` package so that a config
written here loads there and theirs loads here. Keys we do not use are kept
(`extra="allow"`) and written back unchanged. Our own additions
(`label_thresholds`, `default_threshold`: calibrated decision thresholds) are
extra keys that the official loader ignores.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gliner_core.errors import CheckpointError

CONFIG_FILE = "gliner_config.json"
FIX = "save or download the checkpoint again"  # the advice of every damaged-config error
REQUIRED_KEYS = ("model_name",)  # without it the encoder would silently default to deberta-v3-small

# The official package's model types, by architecture. The official loader picks
# the architecture from span_mode and labels_encoder (model_type is informative).
SPAN_MODEL_TYPE = "gliner_uni_encoder_span"
TOKEN_MODEL_TYPE = "gliner_uni_encoder_token"
BI_SPAN_MODEL_TYPE = "gliner_bi_encoder_span"
BI_TOKEN_MODEL_TYPE = "gliner_bi_encoder_token"
SPAN_MODES = ("markerV0", "token_level")


class GLiNERConfig(BaseModel):
    """Hyper-parameters of a GLiNER model.

    The architecture follows from two fields, as in the official package:
    `span_mode` ("markerV0": span head, "token_level": token head) and
    `labels_encoder` (set: bi-encoder with that label encoder; `post_fusion_schema`
    adds fusion layers, the poly-encoder).
    """

    model_config = ConfigDict(extra="allow", protected_namespaces=(), validate_assignment=True)

    model_name: str = Field("microsoft/deberta-v3-small", description="encoder path or hub id")
    name: str = "gliner"
    max_width: int = Field(12, ge=1, description="longest span, in words")
    hidden_size: int = Field(512, ge=1, description="width of word, span and label vectors")
    dropout: float = Field(0.4, ge=0.0, lt=1.0)
    fine_tune: bool = True
    subtoken_pooling: str = "first"
    span_mode: str = "markerV0"
    post_fusion_schema: str = ""
    num_post_fusion_layers: int = 1
    vocab_size: int = -1
    max_neg_type_ratio: int = Field(1, ge=0, description="negative labels per positive label in training")
    max_types: int = Field(25, ge=1, description="most labels in one training prompt")
    max_len: int = Field(384, ge=1, description="most words in one encoder window")
    words_splitter_type: str = "whitespace"
    num_rnn_layers: int = Field(1, ge=0, description="BiLSTM layers over words; 0 turns it off")
    fuse_layers: bool = False
    embed_ent_token: bool = True
    class_token_index: int = -1
    encoder_config: dict[str, Any] | None = None
    span_encoder_config: dict[str, Any] | None = None
    ent_token: str = "<<ENT>>"
    sep_token: str = "<<SEP>>"
    labels_encoder: str | None = Field(None, description="bi-encoder: label encoder path or hub id")
    labels_encoder_config: dict[str, Any] | None = None
    labels_decoder: str | None = None
    relations_layer: str | None = None
    model_type: str | None = SPAN_MODEL_TYPE
    # ours, ignored by the official package: calibrated thresholds (see gliner_core.calibration)
    label_thresholds: dict[str, float] | None = Field(
        None, description="decision threshold per label name, used when predict's threshold is None"
    )
    default_threshold: float | None = Field(
        None, ge=0.0, le=1.0, description="threshold for labels not in label_thresholds (None: 0.5)"
    )

    @field_validator("label_thresholds")
    @classmethod
    def _thresholds_are_probabilities(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        for label, threshold in (value or {}).items():
            if not 0.0 <= threshold <= 1.0:
                raise ValueError(f"threshold of {label!r} must be in [0, 1], got {threshold}")
        return value

    @property
    def is_token_level(self) -> bool:
        return self.span_mode == "token_level"

    @property
    def is_bi_encoder(self) -> bool:
        return bool(self.labels_encoder)

    def architecture(self) -> str:
        """The official model type of this architecture, e.g. 'gliner_bi_encoder_span'."""
        if self.is_bi_encoder:
            return BI_TOKEN_MODEL_TYPE if self.is_token_level else BI_SPAN_MODEL_TYPE
        return TOKEN_MODEL_TYPE if self.is_token_level else SPAN_MODEL_TYPE

    def unsupported_features(self) -> list[str]:
        """Settings of the official package that this package does not implement."""
        problems = []
        if self.span_mode not in SPAN_MODES:
            problems.append(f"span_mode={self.span_mode!r} (only {' and '.join(map(repr, SPAN_MODES))})")
        if self.subtoken_pooling != "first":
            problems.append(f"subtoken_pooling={self.subtoken_pooling!r} (only 'first')")
        if self.words_splitter_type != "whitespace":
            problems.append(f"words_splitter_type={self.words_splitter_type!r} (only 'whitespace')")
        if self.post_fusion_schema:
            steps = self.post_fusion_schema.split("-")
            if any(step not in ("l2l", "t2t", "l2t", "t2l") for step in steps):
                problems.append(f"post_fusion_schema={self.post_fusion_schema!r} (steps l2l, t2t, l2t, t2l)")
        if self.fuse_layers:
            problems.append("fuse_layers=true")
        if self.span_encoder_config:
            problems.append("span_encoder_config")
        if not self.embed_ent_token:
            problems.append("embed_ent_token=false")
        if getattr(self, "represent_spans", False):
            problems.append("represent_spans=true")
        if getattr(self, "precomputed_prompts_mode", False):
            problems.append("precomputed_prompts_mode=true")
        for key in ("labels_decoder", "relations_layer"):
            if getattr(self, key):
                problems.append(f"{key}={getattr(self, key)!r}")
        return problems

    def check_supported(self) -> None:
        problems = self.unsupported_features()
        if problems:
            raise NotImplementedError("gliner_core does not support: " + "; ".join(problems))

    def to_json_file(self, directory: str | Path) -> Path:
        path = Path(directory) / CONFIG_FILE
        data = self.model_dump(mode="json")
        data["model_type"] = self.architecture()
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        return path

    @classmethod
    def from_json_file(cls, path: str | Path) -> GLiNERConfig:
        """Read `gliner_config.json` (or a directory holding it); `CheckpointError` if it is damaged."""
        path = Path(path)
        if path.is_dir():
            path = path / CONFIG_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no {CONFIG_FILE} at {path}")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise CheckpointError(f"{path}: not UTF-8 text, so not a JSON config; {FIX}") from None
        return cls.from_json_text(text, str(path))

    @classmethod
    def from_json_text(cls, text: str, path: str) -> GLiNERConfig:
        """The settings in `text`, the contents of `path` (named in errors; a file in object storage
        too); `CheckpointError` if they are damaged."""
        try:
            config = cls.model_validate(_parse_settings(text, path))
        except ValidationError as error:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
            raise CheckpointError(f"{path}: invalid settings: {problems}") from None
        config.model_type = config.architecture()  # the official loader ignores it too; keep it truthful
        return config


def _parse_settings(text: str, path: str) -> dict[str, Any]:
    """The JSON object in `text` (read from `path`), or `CheckpointError` naming the file and what is
    wrong with it."""
    if not text.strip():
        raise CheckpointError(f"{path} is empty (an interrupted write or copy); {FIX}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise CheckpointError(
            f"{path}: not valid JSON ({error.msg} at line {error.lineno}, column {error.colno}); {FIX}"
        ) from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object of settings, got a JSON {type(data).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise CheckpointError(
            f"{path}: missing {', '.join(missing)} (the encoder the model was built on): "
            "not a GLiNER config, or a damaged one"
        )
    return data
