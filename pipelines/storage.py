"""Where a run keeps its data: `<storage_path>/<run>/iter_<k>/<stage>/`, local or any pyarrow URI."""

from __future__ import annotations

import os
from pathlib import Path

import ray.data


def is_uri(path: str) -> bool:
    return "://" in path


def resolve(path: str) -> str:
    """Absolute local path (Ray workers may run in another directory), or the URI unchanged."""
    return path if is_uri(path) else str(Path(path).expanduser().resolve())


def iteration_path(storage_path: str, run: str, iteration: int, stage: str) -> str:
    return f"{resolve(storage_path).rstrip('/')}/{run}/iter_{iteration:02d}/{stage}"


def write_parquet(ds: ray.data.Dataset, path: str) -> str:
    """Write the dataset as Parquet shards under `path` (replacing an earlier attempt's shards)."""
    if not is_uri(path) and os.path.isdir(path):
        for old in Path(path).glob("*.parquet"):
            old.unlink()
    ds.write_parquet(path)
    return path


def check_writable(path: str) -> None:
    """Fail before any work when a local output folder cannot be created or written."""
    if is_uri(path):
        return
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write-probe"
        probe.write_text("ok")
        probe.unlink()
    except OSError as error:
        raise PermissionError(f"cannot write to {folder}: {error}") from error
