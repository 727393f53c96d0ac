"""Where a run keeps its data: `<storage_path>/<run>/iter_<k>/<stage>/`, local or any pyarrow URI.

Local output is checked before any work (`check_writable`: a clear error for a read-only or full
disk) and written atomically (`write_parquet`: shards go to a staging folder that is renamed into
place only when every shard is written, so a failed write leaves no partial output behind).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from pathlib import Path

import ray.data

from synth.output import check_writable, is_no_space, write_parquet_atomic

_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")


def redact_uri(text: str) -> str:
    """`scheme://user:password@host` -> `scheme://***@host` (for anything printed, logged or tracked)."""
    return _USERINFO.sub(r"\1***@", text)


def redact_config(data: object) -> object:
    """A config dump with credentials in URIs redacted (every string, at any depth)."""
    if isinstance(data, str):
        return redact_uri(data)
    if isinstance(data, Mapping):
        return {key: redact_config(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [redact_config(value) for value in data]
    return data


def is_uri(path: str) -> bool:
    return "://" in path


def resolve(path: str) -> str:
    """Absolute local path (Ray workers may run in another directory), or the URI unchanged."""
    return path if is_uri(path) else str(Path(path).expanduser().resolve())


def iteration_path(storage_path: str, run: str, iteration: int, stage: str) -> str:
    return f"{resolve(storage_path).rstrip('/')}/{run}/iter_{iteration:02d}/{stage}"


def write_parquet(ds: ray.data.Dataset, path: str) -> str:
    """Write the dataset as Parquet shards under `path`, replacing an earlier attempt's output.

    Local paths are written to a staging folder beside `path` and renamed into place once every shard
    is written: a failure (a full disk, a crashed stage) leaves neither partial shards nor the staging
    folder behind, and raises (a full disk as `OSError(ENOSPC)` naming the path).
    """
    write_parquet_atomic(ds, path)
    return path


def copy_tree(source: str, target: str) -> str:
    """A folder (or file) to `target`, local or on any pyarrow filesystem URI; returns `target`."""
    if not is_uri(source) and not is_uri(target):
        if Path(source).is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
        return target
    import pyarrow.fs

    pyarrow.fs.copy_files(source, target)
    return target


# `check_writable(path)`: fail before any work when a local output folder cannot be created or written
# (`PermissionError("cannot write to …")`, or `OSError(ENOSPC, "no space left …")` for a full disk; the
# probe file never stays behind). One implementation for every stage, in `synth.output` because synth
# does not import pipelines.
__all__ = [
    "check_writable",
    "copy_tree",
    "is_no_space",
    "is_uri",
    "iteration_path",
    "redact_config",
    "redact_uri",
    "resolve",
    "write_parquet",
]
