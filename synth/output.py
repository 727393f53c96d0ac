"""Output folders: checked before any work, written atomically.

The one implementation for every stage (`pipelines.data.storage` re-exports it: synth does not import
pipelines, pipelines may import synth).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import uuid
from pathlib import Path

import ray.data

NO_SPACE = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


def is_no_space(error: BaseException) -> bool:
    """Whether `error` (or its cause, also inside a Ray task error) is a full disk or quota."""
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


def _no_space(path: str | Path, error: BaseException) -> OSError:
    return OSError(errno.ENOSPC, f"no space left on the device of {path} ({error}); free some space")


def check_writable(path: str) -> None:
    """A local folder that can be created and written, else `PermissionError` / `OSError(ENOSPC)`.

    For a URI (`s3://bucket/prefix`) a probe object is written and deleted: a missing bucket, refused
    credentials or an unreachable endpoint raise `PermissionError("cannot write to …")` here."""
    if "://" in path:
        _check_uri_writable(path)
        return
    folder = Path(path)
    probe = folder / f".write-probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(probe, "w", encoding="utf-8") as f:
            f.write("ok")
    except OSError as error:
        if is_no_space(error):
            raise _no_space(folder, error) from error
        raise PermissionError(f"cannot write to {folder}: {error}") from error
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()


def _check_uri_writable(path: str) -> None:
    import pyarrow.fs

    probe = f"{path.rstrip('/')}/.write-probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        fs, inner = pyarrow.fs.FileSystem.from_uri(probe)
        with fs.open_output_stream(inner) as f:
            f.write(b"ok")
        fs.delete_file(inner)
    except (OSError, ValueError) as error:
        where = re.sub(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@", r"\1***@", path)
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise PermissionError(
            f"cannot write to {where}: {first} (check the bucket and the AWS_* credentials/endpoint)"
        ) from error


def write_parquet_atomic(ds: ray.data.Dataset, path: str) -> None:
    """Parquet shards under `path`; a local write goes to a staging folder renamed into place at the
    end, so a failure leaves no partial output (URIs are written directly)."""
    if "://" in path:
        ds.write_parquet(path)
        return
    final = Path(path)
    staging = final.with_name(f".{final.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        ds.write_parquet(str(staging))
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        if is_no_space(error):
            raise _no_space(final, error) from error
        raise
    if final.is_dir():
        shutil.rmtree(final)
    staging.rename(final)
