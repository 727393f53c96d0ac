"""Where a run keeps its data: `<storage_path>/<run>/iter_<k>/<stage>/`, local or any pyarrow URI.

Local output is checked before any work (`check_writable`: a clear error for a read-only or full
disk; for a URI a probe object is written and removed, so a missing bucket or refused credentials
fail first too) and written atomically (`write_parquet`: shards go to a staging folder that is
renamed into place only when every shard is written, so a failed write leaves no partial output;
`write_text`: a temporary file beside the target, renamed over it). `parquet_dataset` reads a
Parquet file or folder, local or at a URI, on the driver.

Folders on object storage (`s3://bucket/run/...`; endpoint and keys from the usual AWS variables,
e.g. `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`) work wherever a local folder
does: `is_dir`, `copy_tree` and `write_text` take either, and `local_copy` gives a model
checkpoint at a URI as a local folder (downloaded once per process tree and content, then reused),
for the code that can only read local files (transformers, MLflow's model logging).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

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


def filesystem(path: str):
    """(pyarrow filesystem, path inside it) for a URI or a local path."""
    import pyarrow.fs

    if is_uri(path):
        return pyarrow.fs.FileSystem.from_uri(path)
    return pyarrow.fs.LocalFileSystem(), str(Path(path).expanduser().resolve())


def is_dir(path: str) -> bool:
    """A folder (for a URI: a prefix with objects under it)."""
    if not is_uri(path):
        return Path(path).is_dir()
    import pyarrow.fs

    fs, inner = filesystem(path)
    return fs.get_file_info(inner).type == pyarrow.fs.FileType.Directory


def is_file(path: str) -> bool:
    if not is_uri(path):
        return Path(path).is_file()
    import pyarrow.fs

    fs, inner = filesystem(path)
    return fs.get_file_info(inner).type == pyarrow.fs.FileType.File


def files_in(path: str, suffix: str) -> list[str]:
    """The files directly in the folder `path` whose names end with `suffix`, sorted (local or URI)."""
    if not is_uri(path):
        return sorted(str(p) for p in Path(path).glob(f"*{suffix}") if p.is_file())
    import pyarrow.fs

    fs, inner = filesystem(path)
    infos = fs.get_file_info(pyarrow.fs.FileSelector(inner, recursive=False, allow_not_found=True))
    scheme = path.split("://", 1)[0]
    files = [i.path for i in infos if i.type == pyarrow.fs.FileType.File and i.path.endswith(suffix)]
    return sorted(f"{scheme}://{name}" for name in files)


def folder_names(path: str) -> list[str] | None:
    """The names of the files directly in the folder `path` (local or URI), or None when it is no folder."""
    if not is_dir(path):
        return None
    return [Path(file).name for file in files_in(path, "")]


def read_text(path: str) -> str:
    if not is_uri(path):
        return Path(path).read_text(encoding="utf-8")
    fs, inner = filesystem(path)
    with fs.open_input_stream(inner) as f:
        return f.read().decode("utf-8")


def write_text(path: str, text: str) -> None:
    """`text` at `path`, whole or not at all: locally a temporary file beside it renamed over it (a
    reader never sees half a file, a failed write leaves the old one); at a URI one upload (an object
    appears when its upload completes)."""
    if not is_uri(path):
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")  # mode from the umask
        try:
            with open(tmp, "x", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return
    fs, inner = filesystem(path)
    with fs.open_output_stream(inner) as f:
        f.write(text.encode("utf-8"))


def parquet_dataset(path: str):
    """A `pyarrow.dataset.Dataset` over a Parquet file or folder of shards, local or at a URI, for reading
    on the driver (columns and row filters pushed down); `FileNotFoundError` when nothing is there."""
    import pyarrow.dataset as pads
    import pyarrow.fs

    fs, inner = filesystem(path)
    if fs.get_file_info(inner).type == pyarrow.fs.FileType.NotFound:
        raise FileNotFoundError(f"no Parquet at {redact_uri(path)}")
    return pads.dataset(inner, format="parquet", filesystem=fs)


def copy_tree(source: str, target: str) -> str:
    """A folder (or one file) to `target`; either side local or a URI. Returns `target`."""
    if not is_uri(source) and not is_uri(target):
        if Path(source).is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        return target
    import pyarrow.fs

    source_fs, source_path = filesystem(source)
    target_fs, target_path = filesystem(target)
    if not is_uri(target):  # pyarrow creates no local folder for the top of the copy
        is_folder = source_fs.get_file_info(source_path).type == pyarrow.fs.FileType.Directory
        (Path(target_path) if is_folder else Path(target_path).parent).mkdir(parents=True, exist_ok=True)
    pyarrow.fs.copy_files(
        source_path, target_path, source_filesystem=source_fs, destination_filesystem=target_fs
    )
    return target


def local_copy(path: str) -> str:
    """`path` itself when local; a folder at a URI downloaded into a local cache, else.

    The cache key is the URI and the listing (names, sizes, times), so a folder rewritten at the same
    URI is downloaded again; concurrent callers (two actors on one node) each download into a
    private folder and the first rename wins."""
    if not is_uri(path):
        return path
    import pyarrow.fs

    fs, inner = filesystem(path)
    listing = fs.get_file_info(pyarrow.fs.FileSelector(inner, recursive=True, allow_not_found=True))
    files = sorted((i.path, i.size, str(i.mtime)) for i in listing if i.type == pyarrow.fs.FileType.File)
    if not files:
        raise FileNotFoundError(f"nothing at {redact_uri(path)} (a model checkpoint folder)")
    key = hashlib.sha256(repr((path, files)).encode()).hexdigest()[:24]
    root = Path(os.environ.get("GLINER_SELFTRAIN_CACHE", Path(tempfile.gettempdir()) / "gliner-selftrain"))
    final = root / "downloads" / key / (Path(inner).name or "model")  # keeps the folder's name
    if final.is_dir():
        return str(final)
    staging = final.with_name(f".{final.name}.partial-{uuid.uuid4().hex[:8]}")
    staging.parent.mkdir(parents=True, exist_ok=True)
    try:
        copy_tree(path, str(staging))
        try:
            staging.rename(final)
        except OSError:  # another process finished first: use its copy
            if not final.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return str(final)


def save_model(model, path: str) -> str:
    """`model.save_pretrained` at a local path or a URI (saved locally, then uploaded)."""
    if not is_uri(path):
        model.save_pretrained(path)
        return path
    with tempfile.TemporaryDirectory() as directory:
        model.save_pretrained(directory)
        copy_tree(directory, path)
    return path


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


# `check_writable(path)`: fail before any work when a local output folder cannot be created or written
# (`PermissionError("cannot write to …")`, or `OSError(ENOSPC, "no space left …")` for a full disk; the
# probe file never stays behind). One implementation for every stage, in `synth.output` because synth
# does not import pipelines.
__all__ = [
    "check_writable",
    "copy_tree",
    "filesystem",
    "is_dir",
    "is_file",
    "is_no_space",
    "is_uri",
    "local_copy",
    "parquet_dataset",
    "read_text",
    "save_model",
    "write_text",
    "iteration_path",
    "redact_config",
    "redact_uri",
    "resolve",
    "write_parquet",
]


# -- what a dataset holds: a digest of its content and its row count (for provenance) ---------------

DatasetKind = Literal["auto", "jsonl", "parquet", "csv", "hf"]  # a corpus format (`data.corpus_format`)


@dataclass(frozen=True)
class DatasetFacts:
    digest: str  # 16 hex digits naming the content (see `content_digest`)
    rows: int | None  # rows, when they can be counted cheaply (None for a URI's JSONL, an HF dataset...)


def describe(datasets: Sequence[tuple[str, DatasetKind]]) -> list[DatasetFacts]:
    """Digest and row count of each (path, kind): a JSONL file or folder, Parquet, a corpus of either
    (`auto`), or a Hugging Face dataset id (`hf`: its name is all there is to hash)."""
    facts = []
    for path, kind in datasets:
        if kind == "hf":
            facts.append(DatasetFacts(hashlib.sha256(path.encode()).hexdigest()[:16], None))
            continue
        rows = (
            parquet_rows(path)
            if _is_parquet(path, kind)
            else jsonl_rows(path)
            if _is_jsonl(path, kind)
            else None
        )
        facts.append(DatasetFacts(content_digest(path), rows))
    return facts


def _suffixes(path: str) -> set[str]:
    local = Path(resolve(path))
    return {local.suffix} if local.is_file() else {p.suffix for p in local.rglob("*") if p.is_file()}


def _is_jsonl(path: str, kind: DatasetKind) -> bool:
    return kind == "jsonl" or (kind == "auto" and not is_uri(path) and _suffixes(path) == {".jsonl"})


def _is_parquet(path: str, kind: DatasetKind) -> bool:
    return kind == "parquet" or (kind == "auto" and not is_uri(path) and _suffixes(path) == {".parquet"})


def content_digest(path: str) -> str:
    """16 hex digits naming the content of a file or folder (see the module docstring)."""
    digest = hashlib.sha256()
    if is_uri(path):
        fs, root = filesystem(path)
        from pyarrow import fs as pafs

        info = fs.get_file_info(root)
        if info.type == pafs.FileType.NotFound:
            raise FileNotFoundError(f"no such file or folder: {path}")
        infos = [info] if info.type == pafs.FileType.File else fs.get_file_info(pafs.FileSelector(root, True))
        for item in sorted((i for i in infos if i.type == pafs.FileType.File), key=lambda i: i.path):
            digest.update(json.dumps([item.path.removeprefix(root), item.size, str(item.mtime)]).encode())
        return digest.hexdigest()[:16]
    local = Path(resolve(path))
    if not local.exists():
        raise FileNotFoundError(f"no such file or folder: {path}")
    files = [local] if local.is_file() else sorted(p for p in local.rglob("*") if p.is_file())
    for file in files:
        relative = file.relative_to(local.parent if local.is_file() else local)
        if any(part.startswith(".") for part in relative.parts):
            continue  # partial uploads, lock files
        digest.update(str(relative).encode() + b"\0")
        with file.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def jsonl_rows(path: str) -> int | None:
    """Non-blank lines of a local JSONL file or folder of them (None for a URI)."""
    if is_uri(path):
        return None
    local = Path(resolve(path))
    files = [local] if local.is_file() else sorted(local.rglob("*.jsonl"))
    count = 0
    for file in files:
        with file.open(encoding="utf-8", errors="replace") as handle:
            count += sum(1 for line in handle if line.strip())
    return count


def parquet_rows(path: str) -> int | None:
    import pyarrow.dataset as ds

    try:
        fs, root = filesystem(path)
        return int(ds.dataset(root, format="parquet", filesystem=fs).count_rows())
    except (OSError, ValueError):
        return None
