"""What every config section shares: unknown keys are errors, a mapping given in part keeps the rest of
its defaults, and an old name keeps working for one release with a deprecation message."""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator


def deprecated(message: str) -> None:
    """Tell the user an old setting still works but will go (shown once per message, on stderr)."""
    warnings.warn(message, FutureWarning, stacklevel=4)


def renamed(data: dict[str, Any], old: str, new: str, where: str) -> dict[str, Any]:
    """`data` with the value of the old key `old` under `new` (refused when both are given)."""
    if old not in data:
        return data
    if new in data:
        raise ValueError(f"{where}.{old} is the old name of {where}.{new}: give only {new}")
    deprecated(f"{where}.{old} is deprecated and will be removed in the next release: use {where}.{new}")
    data = dict(data)
    data[new] = data.pop(old)
    return data


class Section(BaseModel):
    """A config section (also the base of small typed records that travel as JSON)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    @model_validator(mode="before")
    @classmethod
    def _keep_mapping_defaults(cls, data: Any) -> Any:
        """`--set model.settings.labels_encoder=…` sets one key of a mapping whose default has others:
        they are kept, not replaced by the one key."""
        if not isinstance(data, dict):
            return data
        for name, field in cls.model_fields.items():
            given = data.get(name)
            if isinstance(given, dict) and field.default_factory is not None:
                default = field.default_factory()  # type: ignore[call-arg]
                if isinstance(default, dict) and default:
                    data = {**data, name: {**default, **given}}
        return data


class Workers(Section):
    """Replicas of a stage and what each holds: the same three names in every section that runs workers
    (weak labeling's Ray Data actors, training's Ray Train workers)."""

    section: ClassVar[str] = "workers"  # the section's name in messages

    num_workers: int = Field(1, ge=1, description="replicas (Ray Data actors or Ray Train workers)")
    cpus_per_worker: float = Field(1.0, gt=0.0, description="CPUs each replica holds")
    gpus_per_worker: float = Field(0.0, ge=0.0, description="GPUs each replica holds; 0 runs on CPU")

    @model_validator(mode="before")
    @classmethod
    def _old_names(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        where = cls.section
        data = renamed(data, "actors", "num_workers", where)
        data = renamed(data, "cpus_per_actor", "cpus_per_worker", where)
        data = renamed(data, "num_gpus", "gpus_per_worker", where)
        if "use_gpu" in data:  # training's old switch: one GPU per worker
            data = renamed(data, "use_gpu", "gpus_per_worker", where)
            data["gpus_per_worker"] = 1.0 if data["gpus_per_worker"] else 0.0
        return data
