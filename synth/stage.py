"""The synth Ray Data stage: documents -> one synth row per (document, task).

    rows = synthesize(documents, config)             # lazy Dataset of synth rows
    report = run_synth(documents, config, "out/")    # + Parquet + counts per task and status

Local and HTTP engines run in `SynthBatch`, a callable class over Arrow batches
(`map_batches`, one engine per actor); vLLM runs as a Ray Data LLM processor
(`synth.engines.vllm`). Answers are cached by (model, prompt hash, document hash,
generation settings) when `cache_dir` is set. No row is lost: every request row gives exactly
one output row, whatever the engine or the model does.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pyarrow as pa
import ray.data

from synth.config import STATUSES, HttpEngineConfig, LocalEngineConfig, SynthConfig, VllmEngineConfig
from synth.engines import make_engine
from synth.engines.base import Completion
from synth.engines.vllm import vllm_synthesize
from synth.labeler import Labeler
from synth.output import check_writable, write_parquet_atomic
from synth.rows import REQUEST_SCHEMA, to_table
from synth.tasks import build_specs

log = logging.getLogger(__name__)


def expand_tasks(batch: pa.Table, tasks: list[str]) -> pa.Table:
    """Documents (`doc_id, text[, source]`) -> request rows, one per document and task."""
    missing = {"doc_id", "text"} - set(batch.column_names)
    if missing:
        raise ValueError(f"documents need columns doc_id and text; missing {sorted(missing)}")
    ids = batch.column("doc_id").to_pylist()
    texts = batch.column("text").to_pylist()
    sources = batch.column("source").to_pylist() if "source" in batch.column_names else [""] * len(ids)
    out: dict[str, list[Any]] = {"doc_id": [], "text": [], "source": [], "task": []}
    for doc_id, text, source in zip(ids, texts, sources, strict=True):
        for task in tasks:
            out["doc_id"].append(str(doc_id))
            out["text"].append(text if isinstance(text, str) else "")
            out["source"].append(source or "")
            out["task"].append(task)
    return pa.table(out, schema=REQUEST_SCHEMA)


class SynthBatch:
    """`map_batches` callable class: request rows (Arrow) -> synth rows (Arrow), with the
    local or HTTP engine built once per actor."""

    def __init__(self, config: SynthConfig, run_id: str = ""):
        self.labeler = Labeler(config, run_id)
        self.engine = make_engine(config.engine)

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.select(list(REQUEST_SCHEMA.names)).to_pylist()
        results: list[dict[str, Any] | None] = [None] * len(rows)
        pending: list[tuple[int, str]] = []
        cache = self.labeler.cache
        for i, row in enumerate(rows):
            if not row["text"].strip():
                results[i] = self.labeler.row(row, None)
                continue
            key = self.labeler.key(row["task"], row["text"])
            hit = cache.get(key) if cache else None
            if hit is not None:
                results[i] = self.labeler.row(row, hit, cached=True)
            else:
                pending.append((i, key))
        requests = [self.labeler.request(rows[i]["task"], rows[i]["text"]) for i, _ in pending]
        completions = self.engine.generate(requests) if requests else []
        if len(completions) != len(requests):  # an engine bug must not lose rows
            completions = [Completion(error="engine returned the wrong number of completions")] * len(
                requests
            )
        for (i, key), completion in zip(pending, completions, strict=True):
            if cache:
                cache.put(key, completion)
            results[i] = self.labeler.row(rows[i], completion)
        return to_table([r for r in results if r is not None])


def synthesize(
    documents: ray.data.Dataset, config: SynthConfig, run_id: str | None = None
) -> ray.data.Dataset:
    """Documents -> synth rows for every configured task (lazy)."""
    build_specs(config)  # bad task configs (few-shot examples) fail here, on the driver
    if config.cache_dir:
        check_writable(config.cache_dir)  # before any LLM call, not in an actor mid-stage
    run_id = run_id or uuid.uuid4().hex
    requests = documents.map_batches(
        partial(expand_tasks, tasks=config.task_names), batch_format="pyarrow", zero_copy_batch=True
    )
    engine = config.engine
    if isinstance(engine, VllmEngineConfig):
        return vllm_synthesize(requests, config, run_id)
    if isinstance(engine, LocalEngineConfig):
        resources: dict[str, Any] = {
            "compute": ray.data.ActorPoolStrategy(size=engine.num_workers),
            "num_cpus": engine.num_cpus,
            "batch_size": engine.batch_size,
        }
        if engine.num_gpus:
            resources["num_gpus"] = engine.num_gpus
    else:
        assert isinstance(engine, HttpEngineConfig)
        resources = {
            "compute": ray.data.ActorPoolStrategy(size=engine.num_workers),
            "num_cpus": 0.25,
            "batch_size": engine.batch_size,
        }
    return requests.map_batches(
        SynthBatch,
        fn_constructor_kwargs={"config": config, "run_id": run_id},
        batch_format="pyarrow",
        **resources,
    )


# --------------------------------------------------------------------------- counts


@dataclass
class SynthReport:
    """Counts at the end of the stage (flat `metrics()` for MLflow)."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # task -> status -> rows
    spans: dict[str, int] = field(default_factory=dict)  # task -> grounded spans
    proposed: dict[str, int] = field(default_factory=dict)  # task -> spans the model proposed
    dropped: dict[str, int] = field(default_factory=dict)  # task -> proposed but not in the text
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    output: str | None = None

    @property
    def rows(self) -> int:
        return sum(sum(by_status.values()) for by_status in self.counts.values())

    def metrics(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for task, by_status in self.counts.items():
            for status in STATUSES:
                out[f"synth.{task}.{status}"] = by_status.get(status, 0)
            out[f"synth.{task}.spans"] = self.spans.get(task, 0)
            out[f"synth.{task}.dropped_spans"] = self.dropped.get(task, 0)
        out.update(
            {
                "synth.rows": self.rows,
                "synth.cached": self.cached,
                "synth.prompt_tokens": self.prompt_tokens,
                "synth.completion_tokens": self.completion_tokens,
                "synth.seconds": self.seconds,
            }
        )
        return out

    def table(self) -> str:
        header = ["task", *STATUSES, "spans", "dropped"]
        lines = [" | ".join(header), " | ".join("---" for _ in header)]
        for task in sorted(self.counts):
            by_status = self.counts[task]
            cells = [task, *(str(by_status.get(s, 0)) for s in STATUSES)]
            cells += [str(self.spans.get(task, 0)), str(self.dropped.get(task, 0))]
            lines.append(" | ".join(cells))
        return "\n".join(lines)


def _block_counts(batch: pa.Table) -> pa.Table:
    counts: Counter[str] = Counter()
    for task, status, spans, extra in zip(
        batch.column("task").to_pylist(),
        batch.column("status").to_pylist(),
        batch.column("spans").to_pylist(),
        batch.column("extra").to_pylist(),
        strict=True,
    ):
        info = json.loads(extra) if extra else {}
        usage = info.get("usage") or {}
        counts[f"count\t{task}\t{status}"] += 1
        counts[f"spans\t{task}"] += len(spans or [])
        counts[f"proposed\t{task}"] += int(info.get("proposed", 0))
        counts[f"dropped\t{task}"] += int(info.get("dropped", 0))
        counts["cached"] += int(bool(info.get("cached")))
        counts["prompt_tokens"] += int(usage.get("prompt_tokens", 0))
        counts["completion_tokens"] += int(usage.get("completion_tokens", 0))
    return pa.table({"counts": [json.dumps(counts)]})


def summarize(rows: ray.data.Dataset) -> SynthReport:
    """Counts per task and status (and spans, dropped spans, tokens) over synth rows."""
    total: Counter[str] = Counter()
    for part in rows.map_batches(_block_counts, batch_format="pyarrow", batch_size=None).take_all():
        total.update(json.loads(part["counts"]))
    report = SynthReport()
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for key, value in total.items():
        kind, *rest = key.split("\t")
        if kind == "count":
            counts[rest[0]][rest[1]] = value
        elif kind in ("spans", "proposed", "dropped"):
            getattr(report, kind)[rest[0]] = value
        else:
            setattr(report, kind, value)
    report.counts = dict(counts)
    return report


def write_synth_rows(rows: ray.data.Dataset, path: str) -> None:
    """Synth rows as Parquet files under `path` (a folder; local or any pyarrow URI); a local write
    is atomic (no partial output after a failure, e.g. a full disk)."""
    write_parquet_atomic(rows, path)


def run_synth(
    documents: ray.data.Dataset, config: SynthConfig, output: str, run_id: str | None = None
) -> SynthReport:
    """Synthesize, write Parquet under `output`, and report counts (read back from the files,
    so the LLM runs once). An unwritable output folder fails here, before any LLM call."""
    check_writable(output)
    start = time.perf_counter()
    write_synth_rows(synthesize(documents, config, run_id), output)
    report = summarize(ray.data.read_parquet(output).select_columns(["task", "status", "spans", "extra"]))
    report.seconds = time.perf_counter() - start
    report.output = output
    log.info("synth rows written to %s (%.1f s)\n%s", output, report.seconds, report.table())
    return report
