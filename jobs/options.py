"""What the commands share: the pipeline options (`--config`, `--set`, `--storage`, `--ray-address`,
`--dry-run`, `--verbose`) and `pipeline_command`, which gives them to a command; the `--model` option
and its defaults; `say`.

The defaults live here, not in the command line (`jobs.cli`), so that the code checking what a
submitted job will read (`jobs.upload`) can know them without importing the app (which imports it).
"""

from __future__ import annotations

import functools
import inspect
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from jobs.settings import UserError, load_config

if TYPE_CHECKING:
    from pipelines import PipelineConfig, ResolvedModel

MODEL_FORMS = (
    "a checkpoint folder, champion (the registry's), models:/NAME@ALIAS, models:/NAME/VERSION or a hub id"
)
CHAMPION = "champion"
# The `--model` default of each command that reads a model without being told which (`train` starts
# from fresh heads without one); the commands declare their option with these.
MODEL_DEFAULTS: dict[str, str] = dict.fromkeys(("label", "evaluate", "predict", "export"), CHAMPION)


def model_default(command: str) -> str | None:
    """The model `command` reads when its command line has no `--model`, or None."""
    return MODEL_DEFAULTS.get(command)


def say(message: str) -> None:
    typer.echo(message)


ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML/JSON pipeline config (default: the local profile)")
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="override a config key, e.g. -s train.max_steps=600 (repeatable)"),
]
ModelOpt = Annotated[str, typer.Option("--model", "-m", help=f"the model: {MODEL_FORMS}")]


@dataclass
class PipelineOptions:
    """The options every pipeline command takes: --config, --set, --storage, --ray-address, --dry-run,
    --verbose."""

    config: Path | None = None
    overrides: list[str] | None = None
    storage: str | None = None
    ray_address: str | None = None
    dry_run: bool = False
    verbose: bool = False

    def console(self, log_path: str):
        """The command's console: stage lines here, everything else (Ray's output) in `log_path`."""
        from pipelines import Console

        return Console.capture(log_path, verbose=self.verbose)

    def resolve(self, **fields: Any) -> PipelineConfig:
        """The config file, then --set, then flags (`fields`, e.g. `{"loop.iterations": 3}`), validated;
        printed (credentials in URIs hidden) with --dry-run."""
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        resolved = load_config(
            self.config,
            list(self.overrides or []),
            {"storage_path": self.storage, "ray_address": self.ray_address, **fields},
        )
        if self.dry_run:
            from pipelines import redact_config

            say(json.dumps(redact_config(resolved.model_dump(mode="json")), indent=2))
        return resolved


def _option(name: str, default: Any, annotation: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


SHARED_OPTIONS = [
    _option("config", None, ConfigOpt),
    _option("overrides", None, SetOpt),
    _option(
        "storage",
        None,
        Annotated[
            str | None,
            typer.Option("--storage", help="storage_path: where data, checkpoints and mlflow.db go"),
        ],
    ),
    _option(
        "ray_address",
        None,
        Annotated[str | None, typer.Option("--ray-address", help="Ray cluster address (default: local Ray)")],
    ),
    _option(
        "dry_run",
        False,
        Annotated[bool, typer.Option("--dry-run", help="print the resolved config and exit")],
    ),
    _option(
        "verbose",
        False,
        Annotated[
            bool, typer.Option("--verbose", "-v", help="show Ray's worker output and progress bars too")
        ],
    ),
]


def pipeline_command(*, uses_ray: bool = True) -> Callable[[Callable], Callable]:
    """Make a function a pipeline command (`jobs.cli` registers it). Its first parameter receives a
    `PipelineOptions`; the shared options are appended to the command's own (`--ray-address` only for
    commands that use Ray)."""

    def wrap(func: Callable) -> Callable:
        own = list(inspect.signature(func, eval_str=True).parameters.values())[1:]
        shared = [p for p in SHARED_OPTIONS if uses_ray or p.name != "ray_address"]
        names = [p.name for p in shared]

        @functools.wraps(func)
        def command(**kwargs: Any) -> Any:
            options = PipelineOptions(**{n: kwargs.pop(n) for n in names})
            return func(options, **kwargs)

        parameters = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + shared
        command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in parameters}
        return command

    return wrap


def use_model(config: PipelineConfig, reference: str) -> ResolvedModel:
    """The checked local checkpoint for a --model value (see pipelines/registry/model_source.py)."""
    from pipelines import ModelSourceError, resolve_model

    try:
        return resolve_model(reference, config)
    except ModelSourceError as error:
        raise UserError(str(error)) from error
