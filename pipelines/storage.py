"""Where a run keeps its data: `<storage_path>/<run>/iter_<k>/<stage>/`, local or any pyarrow URI.

Local output is checked before any work (`check_writable`: a clear error for a read-only or full
disk) and written atomically (`write_parquet`: shards go to a staging folder that is renamed into
place only when every shard is written, so a failed write leaves no partial output behind).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path

import ray.data

NO_SPACE = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
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


def is_no_space(error: BaseException) -> bool:
    """Whether `error` (or what caused it, also inside a Ray task error) is a full disk or quota."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in NO_SPACE:
            return True
        if "No space left on device" in str(current) or "Disk quota exceeded" in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def no_space_error(path: str | Path, error: BaseException) -> OSError:
    return OSError(
        errno.ENOSPC,
        f"no space left on the device of {path} ({error}); free some space or choose another storage_path",
    )


def write_parquet(ds: ray.data.Dataset, path: str) -> str:
    """Write the dataset as Parquet shards under `path`, replacing an earlier attempt's output.

    Local paths are written to a staging folder beside `path` and renamed into place once every shard
    is written: a failure (a full disk, a crashed stage) leaves neither partial shards nor the staging
    folder behind, and raises (a full disk as `OSError(ENOSPC)` naming the path).
    """
    if is_uri(path):
        ds.write_parquet(path)
        return path
    final = Path(path)
    staging = final.with_name(f".{final.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        ds.write_parquet(str(staging))
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        if is_no_space(error):
            raise no_space_error(final, error) from error
        raise
    if final.is_dir():
        shutil.rmtree(final)
    staging.rename(final)
    return path


def check_writable(path: str) -> None:
    """Fail before any work when a local output folder cannot be created or written.

    Raises `PermissionError("cannot write to …")` for a read-only or forbidden location and
    `OSError(ENOSPC, "no space left …")` for a full disk; the probe file never stays behind.
    """
    if is_uri(path):
        return
    folder = Path(path)
    probe = folder / f".write-probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(probe, "w", encoding="utf-8") as f:
            f.write("ok")
    except OSError as error:
        if is_no_space(error):
            raise no_space_error(folder, error) from error
        raise PermissionError(f"cannot write to {folder}: {error}") from error
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
