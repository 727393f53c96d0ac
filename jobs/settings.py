"""The pipeline configuration a command runs with: a YAML/JSON file, then `--set key=value` overrides.

    load_config("job.yaml", ["train.max_steps=600", "data.labels=[person, city]"])

Values are read as YAML scalars/lists (`3` is an int, `null` is None, `[a, b]` a list), so an override
goes through the same pydantic validation as the file. Every mistake a user can make here (missing
file, bad YAML, unknown key, wrong type) raises `UserError` with a one-line message.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from pipelines import PipelineConfig


class UserError(Exception):
    """A mistake the user can fix (bad path, bad config, unreachable cluster): shown as one line."""


def describe_validation_error(error: ValidationError) -> str:
    """`section.key: message; …` on one line."""
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "config"
        message = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def read_mapping(path: str | Path) -> dict[str, Any]:
    """A YAML or JSON file whose top level is a mapping (`synth.config.read_mapping`, the one reader of
    config files), its mistakes as `UserError`."""
    from synth.config import read_mapping as read_config_file

    try:
        return read_config_file(path)
    except (FileNotFoundError, ValueError) as error:
        raise UserError(str(error)) from error


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """`a.b.c=value` sets data["a"]["b"]["c"] (creating sections) to the YAML value."""
    key, sep, raw = assignment.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise UserError(f"--set {assignment!r}: expected KEY=VALUE, e.g. train.max_steps=600")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as error:
        raise UserError(f"--set {assignment!r}: value is not valid YAML") from error
    *sections, leaf = key.split(".")
    node = data
    for section in sections:
        child = node.setdefault(section, {})
        if not isinstance(child, dict):
            raise UserError(f"--set {assignment!r}: {section} is a value, not a section")
        node = child
    node[leaf] = value


def config_data(
    path: str | Path | None = None,
    overrides: Sequence[str] = (),
    fields: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """What the user set: the file (default: nothing, i.e. the built-in local profile), then
    `overrides`, then flag `fields` (`{"loop.iterations": 3}`; None values are ignored), unvalidated."""
    data = read_mapping(path) if path else {}
    for assignment in overrides:
        apply_override(data, assignment)
    for key, value in (fields or {}).items():
        if value is not None:
            apply_override(data, f"{key}={json.dumps(value)}")
    return data


def validate(data: Mapping[str, Any]) -> PipelineConfig:
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as error:
        raise UserError(f"bad configuration: {describe_validation_error(error)}") from error


def load_config(
    path: str | Path | None = None,
    overrides: Sequence[str] = (),
    fields: Mapping[str, Any] | None = None,
) -> PipelineConfig:
    """The file, then `overrides`, then flag `fields` (see `config_data`), validated once."""
    return validate(config_data(path, overrides, fields))
