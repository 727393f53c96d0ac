"""Read stage: a corpus in JSONL, Parquet, CSV or a local Hugging Face dataset -> documents.

Document contract: `doc_id: string, text: string, source: string`. A missing
`doc_id` is the SHA-1 of the text (so the same text always gets the same id,
and identical documents are easy to spot).
"""

from __future__ import annotations

import hashlib
import json
from functools import partial
from pathlib import Path

import pyarrow as pa
import ray.data

DOCUMENT_SCHEMA = pa.schema([("doc_id", pa.string()), ("text", pa.string()), ("source", pa.string())])


def text_id(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def detect_format(path: str) -> str:
    suffix = Path(path.rstrip("/")).suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix in (".csv", ".tsv"):
        return "csv"
    if Path(path).is_dir() and (Path(path) / "dataset_info.json").exists():
        return "hf"
    if Path(path).is_dir() and any(Path(path).glob("*.parquet")):
        return "parquet"
    if Path(path).is_dir() and any(Path(path).glob("*.jsonl")):
        return "jsonl"
    raise ValueError(f"cannot tell the format of {path}: give corpus_format (jsonl, parquet, csv, hf)")


def to_documents(batch: pa.Table, text_field: str, source: str) -> pa.Table:
    """Batch function: any table with a text column -> the document contract."""
    if text_field not in batch.column_names:
        raise ValueError(f"corpus has no column {text_field!r}; columns: {batch.column_names}")
    texts = [t if isinstance(t, str) else "" for t in batch.column(text_field).to_pylist()]
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
    if not path.startswith(("s3://", "gs://", "hdfs://", "abfs://")) and not Path(path).exists():
        raise FileNotFoundError(f"corpus not found: {path}")
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt == "jsonl":
        ds = ray.data.read_json(path, lines=True) if not path.endswith(".json") else ray.data.read_json(path)
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


def read_gold(path: str) -> list[dict]:
    """Gold rows (`{"text", "spans": [{"start", "end", "label"}]}`) from JSONL; small, read on the driver."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            text = row.get("text")
            if not isinstance(text, str):
                raise ValueError(f"{path}:{number}: no text")
            for span in row.get("spans", []):
                if not 0 <= span["start"] < span["end"] <= len(text):
                    raise ValueError(f"{path}:{number}: span {span} outside the text")
            rows.append({"text": text, "spans": row.get("spans", [])})
    return rows
