"""Read stage: a corpus in JSONL, Parquet, CSV or a local Hugging Face dataset -> documents.

Document contract: `doc_id: string, text: string, source: string`. A missing
`doc_id` is the SHA-1 of the text (so the same text always gets the same id,
and identical documents are easy to spot).

One bad row never fails the stage: JSONL is parsed line by line, so undecodable bytes become
U+FFFD (the line is kept, counted `invalid_utf8`), and a line that is not JSON (`invalid_json`),
not an object (`not_an_object`) or has no string text (`no_text`) is skipped and counted; the
counts are logged per file and `read_report` returns them. Lone UTF-16 surrogates (from `\\ud800`
escapes) become U+FFFD in every format, so texts are always valid UTF-8.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa
import ray.data

from gliner_core.text import clean_text
from pipelines.data.storage import folder_names, is_uri

log = logging.getLogger(__name__)

DOCUMENT_SCHEMA = pa.schema([("doc_id", pa.string()), ("text", pa.string()), ("source", pa.string())])
READ_ISSUES = ("invalid_utf8", "invalid_json", "not_an_object", "no_text")
JSONL_EXTENSIONS = ["jsonl", "ndjson", "jsonl.gz"]
JSONL_BLOCK_ROWS = 1024  # documents per block after reading a JSONL file
FORMAT_OF_SUFFIX = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "csv"}
FORMAT_OF_SUFFIX |= {".parquet": "parquet", ".pq": "parquet"}


def text_id(text: str) -> str:
    """The document id of a text without one (and the merge's key for identical texts): SHA-1."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def corpus_format(path: str, fmt: str = "auto") -> tuple[str, bool]:
    """(format, is a folder) of a corpus: `fmt` when given, else by the suffix of `path` or, for a folder,
    by the names of its files."""
    names = folder_names(path)  # None: not a folder
    if fmt != "auto":
        return fmt, names is not None
    suffix = Path(path.rstrip("/")).suffix.lower()
    by_suffix = {
        ".jsonl": "jsonl",
        ".json": "jsonl",
        ".ndjson": "jsonl",
        ".parquet": "parquet",
        ".pq": "parquet",
    }
    by_suffix |= {".csv": "csv", ".tsv": "csv"}
    if suffix in by_suffix:
        return by_suffix[suffix], names is not None
    if names is not None:
        if "dataset_info.json" in names and not is_uri(path):
            return "hf", True
        for fmt, ending in (("parquet", ".parquet"), ("jsonl", ".jsonl")):
            if any(name.endswith(ending) for name in names):
                return fmt, True
    raise ValueError(f"cannot tell the format of {path}: give corpus_format (jsonl, parquet, csv, hf)")


def to_documents(batch: pa.Table, text_field: str, source: str) -> pa.Table:
    """Batch function: any table with a text column -> the document contract."""
    if text_field not in batch.column_names:
        raise ValueError(f"corpus has no column {text_field!r}; columns: {batch.column_names}")
    texts = [clean_text(t) if isinstance(t, str) else "" for t in batch.column(text_field).to_pylist()]
    if "doc_id" in batch.column_names:
        given = batch.column("doc_id").to_pylist()
        ids = [str(i) if i is not None else text_id(t) for i, t in zip(given, texts, strict=True)]
    else:
        ids = [text_id(t) for t in texts]
    return pa.table([ids, texts, [source] * len(texts)], schema=DOCUMENT_SCHEMA)


def read_documents(
    path: str, fmt: str = "auto", text_field: str = "text", limit: int | None = None
) -> ray.data.Dataset:
    """The corpus as a Ray Dataset of documents (lazy: nothing is read until a stage runs)."""
    if not is_uri(path) and not Path(path).exists():
        raise FileNotFoundError(f"corpus not found: {path}")
    fmt, folder = corpus_format(path, fmt)
    if fmt == "jsonl" and not path.endswith(".json"):
        extensions = JSONL_EXTENSIONS if folder else None
        files = ray.data.read_binary_files(path, include_paths=True, file_extensions=extensions)
        ds = files.map_batches(
            partial(jsonl_documents, text_field=text_field, source=path), batch_format="pyarrow", batch_size=1
        )
        # a file is one block here; cut it (streaming, no barrier) so that every labeling actor gets work
        ds = ds.repartition(target_num_rows_per_block=JSONL_BLOCK_ROWS)
        return ds.limit(limit) if limit is not None else ds
    if fmt == "jsonl":
        ds = ray.data.read_json(path)
    elif fmt == "parquet":
        ds = ray.data.read_parquet(path)
    elif fmt == "csv":
        ds = ray.data.read_csv(path)
    elif fmt == "hf":
        import datasets

        ds = ray.data.from_huggingface(datasets.load_from_disk(path))
    else:
        raise ValueError(f"unknown corpus format {fmt!r}")
    if limit is not None:
        ds = ds.limit(limit)
    return ds.map_batches(partial(to_documents, text_field=text_field, source=path), batch_format="pyarrow")


def parse_jsonl(data: bytes, text_field: str) -> tuple[list[dict[str, Any]], Counter[str], list[str]]:
    """JSONL bytes -> (rows with a string text, counts of issues, notes on the skipped lines)."""
    rows: list[dict[str, Any]] = []
    issues: Counter[str] = Counter()
    notes: list[str] = []
    for number, raw in enumerate(data.split(b"\n"), 1):
        if not raw.strip():
            continue
        try:
            line, replaced = raw.decode("utf-8"), False
        except UnicodeDecodeError:
            line, replaced = raw.decode("utf-8", errors="replace"), True
        if number == 1:
            line = line.removeprefix("\ufeff")  # a UTF-8 byte order mark
        try:
            row = json.loads(line)
        except ValueError as error:
            issues["invalid_json"] += 1
            notes.append(f"line {number}: invalid_json ({error})")
            continue
        if not isinstance(row, dict):
            issues["not_an_object"] += 1
            notes.append(f"line {number}: not_an_object")
            continue
        if not isinstance(row.get(text_field), str):
            issues["no_text"] += 1
            notes.append(f"line {number}: no_text ({text_field!r} missing or not a string)")
            continue
        if replaced:  # kept, with U+FFFD for the undecodable bytes
            issues["invalid_utf8"] += 1
        rows.append(row)
    return rows, issues, notes


def jsonl_documents(files: pa.Table, text_field: str, source: str) -> pa.Table:
    """Batch function over `read_binary_files` rows (`bytes`, `path`): JSONL files -> documents."""
    ids: list[str] = []
    texts: list[str] = []
    for data, path in zip(files.column("bytes").to_pylist(), files.column("path").to_pylist(), strict=True):
        if path.endswith(".gz"):
            import gzip

            data = gzip.decompress(data)
        rows, issues, notes = parse_jsonl(data, text_field)
        if not rows and issues["no_text"] and not issues["invalid_json"] + issues["not_an_object"]:
            raise ValueError(f"corpus has no column {text_field!r} ({path}: no line has it)")
        if issues:
            log.warning("%s: %s%s", path, dict(issues), "; skipped " + "; ".join(notes[:5]) if notes else "")
        for row in rows:
            text = clean_text(row[text_field])
            given = row.get("doc_id")
            ids.append(str(given) if given is not None else text_id(text))
            texts.append(text)
    return pa.table([ids, texts, [source] * len(ids)], schema=DOCUMENT_SCHEMA)


def read_report(path: str, text_field: str = "text") -> dict[str, int]:
    """Counts over a JSONL corpus (a file or a folder of them): `documents` kept and each of
    `READ_ISSUES` (invalid_utf8 lines are kept with U+FFFD; the other issues are skipped lines)."""
    files = (
        [Path(path)]
        if Path(path).is_file()
        else sorted(p for ext in JSONL_EXTENSIONS for p in Path(path).glob(f"*.{ext}"))
    )
    total: Counter[str] = Counter()
    for file in files:
        data = file.read_bytes()
        if file.suffix == ".gz":
            import gzip

            data = gzip.decompress(data)
        rows, issues, _ = parse_jsonl(data, text_field)
        total["documents"] += len(rows)
        total.update(issues)
    return {"documents": total["documents"], **{k: total[k] for k in READ_ISSUES}}


def read_gold(path: str, all_fields: bool = False) -> list[dict]:
    """Gold rows (`{"text", "spans": [{"start", "end", "label"}]}`) from JSONL, local or at a URI; small,
    read on the driver. Every row is checked (JSON, a text, spans inside it: else `ValueError` naming
    the line). `all_fields` keeps each row as written (the review queue's `doc_id`, `annotator`,
    `annotated_at`, ...) instead of `text` and `spans` alone."""
    from pipelines.data.storage import read_text

    rows = []
    # split on "\n" only: a JSON string may hold U+2028, which str.splitlines() would cut at
    for number, line in enumerate(read_text(path).split("\n"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as error:
            raise ValueError(f"{path}:{number}: not JSON ({error})") from error
        text = row.get("text")
        if not isinstance(text, str):
            raise ValueError(f"{path}:{number}: no text")
        for span in row.get("spans", []):
            if not 0 <= span["start"] < span["end"] <= len(text):
                raise ValueError(f"{path}:{number}: span {span} outside the text")
        rows.append(row if all_fields else {"text": text, "spans": row.get("spans", [])})
    return rows
