"""What a submitted job can see: the uploaded working directory, and the paths its command names.

A job runs in a copy of the working directory on the cluster; the copy leaves out `EXCLUDES` (the
runtime_env's excludes) and whatever a `.gitignore` or `.rayignore` on the way ignores, as Ray's
upload does. So a relative path works only when it lies inside the working directory and is
uploaded, and an absolute path only when the cluster sees the same path (shared storage, or a
cluster on this machine). `check_paths` finds the paths that cannot work before the job is sent:

    problem = check_paths(["label", "--model", "runs/x/champion"], data, config, Path("."), False)
    # "--model runs/x/champion is not uploaded with the working directory … (runs/ is excluded …"
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jobs.options import model_default
from pipelines import PipelineConfig

# Never uploaded with the working directory.
EXCLUDES = [
    ".git",
    ".venv",
    ".venv-label-studio",
    "runs",
    "mlruns",
    "mlartifacts",
    "*.db",
    "__pycache__",
    ".*_cache",
    "outputs",
]

# Options of the pipeline commands that name something the job reads (a model may also be a
# registry reference or a hub id), and the commands that write (to --output, else storage_path).
INPUT_OPTIONS = ("--rows", "--synth-rows", "--gold", "--file", "--synth-config")
MODEL_OPTIONS = ("--model", "-m")
WRITING_COMMANDS = ("self-train", "synth", "label", "train")
# Config keys that name something the job reads (when the user sets them; the defaults are the
# sample files shipped in the package, which the job finds in its own copy).
INPUT_KEYS = (
    "data.corpus",
    "data.seed_gold",
    "data.dev_gold",
    "data.test_gold",
    "synth.config",
    "synth.rows",
)
MODEL_KEYS = ("model.backbone", "loop.start_from")
NOT_PATHS = {"model.backbone": ("minilm",), "loop.start_from": ("champion", "seed")}

FIXES = "use an absolute path on storage the cluster shares, a URI (s3://…), or --working-dir"


def left_out(folder: Path, path: Path, excludes: Sequence[str] = EXCLUDES) -> str | None:
    """None when `path` (inside `folder`) is uploaded with `folder` as a working directory; else why
    not, e.g. "runs/ is excluded from every upload" or ".gitignore ignores scratch/model". Ray's own
    matching (runtime_env packaging; Ray is pinned in pyproject), applied as Ray walks the tree: Ray's
    default excludes and `excludes`, then each .gitignore (unless RAY_RUNTIME_ENV_IGNORE_GITIGNORE=1)
    and .rayignore met."""
    from ray._private.ray_constants import get_runtime_env_default_excludes
    from ray._private.runtime_env.packaging import _get_excludes, _get_ignore_file

    ignore_files = [".rayignore"]
    if os.environ.get("RAY_RUNTIME_ENV_IGNORE_GITIGNORE", "0") != "1":
        ignore_files.insert(0, ".gitignore")
    every_upload = get_runtime_env_default_excludes() + list(excludes)  # Ray's own (.git, venv, …), ours
    matchers = [(_get_excludes(folder, every_upload), "")]
    node = folder
    for part in ("", *path.relative_to(folder).parts):
        node = node / part if part else node
        for name in ignore_files:
            match = _get_ignore_file(node, name)
            if match is not None:
                matchers.append((match, str((node / name).relative_to(folder))))
        for match, source in matchers:
            if part and match(node):
                shown = str(node.relative_to(folder)) + ("/" if node.is_dir() else "")
                return f"{source} ignores {shown}" if source else f"{shown} is excluded from every upload"
    return None


def option_values(args: Sequence[str], *names: str) -> list[str]:
    """The values of `--name VALUE` or `--name=VALUE` (any of `names`, e.g. "--config", "-c")."""
    values = []
    for i, arg in enumerate(args):
        for name in names:
            if arg == name and i + 1 < len(args):
                values.append(args[i + 1])
            elif name.startswith("--") and arg.startswith(name + "="):
                values.append(arg.split("=", 1)[1])
    return values


def option_value(args: Sequence[str], *names: str) -> str | None:
    """The last value of an option (as Click takes it), or None."""
    values = option_values(args, *names)
    return values[-1] if values else None


def _get(data: Mapping[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _input_problem(what: str, value: str, folder: Path, allow_missing: bool) -> str | None:
    """Why the job cannot read `value` (named by `what`, e.g. "--rows"), or None."""
    if "://" in value:
        return None
    path = Path(value).expanduser()
    if path.is_absolute():
        if path.exists() or allow_missing:
            return None  # the cluster must see the same path (shared storage, or a local cluster)
        return (
            f"{what} {value} does not exist here; if it exists only on the cluster pass "
            f"--allow-missing-paths, else {FIXES}"
        )
    full = (folder / path).resolve()
    if not full.is_relative_to(folder):
        return f"{what} {value} is outside the uploaded working directory {folder}: {FIXES}"
    why = left_out(folder, full)
    if why is not None:
        return f"{what} {value} is not uploaded with the working directory {folder} ({why}): {FIXES}"
    if not full.exists():
        return f"{what} {value} not found in the working directory {folder}: {FIXES}"
    return None


def check_paths(
    args: Sequence[str],
    data: Mapping[str, Any],
    config: PipelineConfig,
    folder: Path,
    allow_missing: bool = False,
) -> str | None:
    """The first path in the command `args` or the user's config `data` that the job cannot use, as
    one line naming it and the fixes; None when all can work. `config` is `data` validated."""
    from pipelines import ModelSourceError, parse_reference

    command = args[0]
    inputs: list[tuple[str, str, bool]] = []  # (what, value, is a model reference)
    for option in INPUT_OPTIONS:
        inputs += [(option, value, False) for value in option_values(args, option)]
    models = option_values(args, *MODEL_OPTIONS) or [m for m in [model_default(command)] if m]
    inputs += [("--model", value, True) for value in models]
    for key in INPUT_KEYS + MODEL_KEYS:
        value = _get(data, key)
        if isinstance(value, str) and value not in NOT_PATHS.get(key, ()):
            inputs.append((key, value, key in MODEL_KEYS))

    for what, value, is_model in inputs:
        if is_model:
            try:
                kind = parse_reference(value, folder).kind
            except ModelSourceError as error:
                return f"{what}: {error}"
            if kind == "registry":
                problem = _registry_problem(what, value, config, allow_missing)
                if problem:
                    return problem
            # `runs/best` has the shape of a hub id, but a folder nobody uploads is what was meant
            not_sent = kind == "hub" and left_out(folder, folder / value.split("/")[0]) is not None
            if kind != "folder" and not not_sent:
                continue
        problem = _input_problem(what, value, folder, allow_missing)
        if problem:
            return problem

    output = option_value(args, "--output") if command != "self-train" else None
    if output or command in WRITING_COMMANDS:
        where, value = ("--output", output) if output else ("storage_path", config.storage_path)
        if "://" not in value and not Path(value).expanduser().is_absolute():
            return (
                f"{where} {value} is relative: the job would write into its temporary copy of the "
                "working directory; give an absolute path on storage the cluster shares "
                "(e.g. --storage /shared/runs) or a URI"
            )
    return None


def _registry_problem(what: str, value: str, config: PipelineConfig, allow_missing: bool) -> str | None:
    """A registry reference needs a registry the job can reach: with no tracking URI configured it is
    the SQLite file under storage_path, which must then be absolute (the job's copy has no runs/)."""
    storage = config.storage_path
    if config.tracking.tracking_uri or allow_missing or "://" in storage or Path(storage).is_absolute():
        return None
    return (
        f"{what} {value} is read from the registry under storage_path {storage}, which is relative: the job "
        "would look in its own copy of the working directory, where it is not uploaded; pass --storage "
        "/absolute/path (shared with the cluster), set tracking.tracking_uri, or pass --allow-missing-paths "
        "if the cluster sets MLFLOW_TRACKING_URI"
    )
