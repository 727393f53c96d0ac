"""Weak-labeling stage: GLiNER labels every document, as a Ray Data actor pool.

Each actor loads the model once and then labels batches of documents; long
documents are read in windows by `gliner_core` itself. Output: the document
columns plus `spans` (origin "gliner").
"""

from __future__ import annotations

import time

import pyarrow as pa
import ray.data

from pipelines.config import WeakLabelConfig
from pipelines.console import emit, progress_line
from pipelines.spans import SPANS_TYPE, entity_to_span


class GLiNERLabeler:
    """Callable class for `map_batches`: one model per actor, reused for every batch."""

    def __init__(
        self, model_path: str, labels: dict[str, str], config: WeakLabelConfig, torch_threads: int = 0
    ):
        import torch

        from gliner_core import GLiNER
        from pipelines.storage import local_copy

        if torch_threads:
            torch.set_num_threads(torch_threads)
        device = "cuda" if config.num_gpus > 0 and torch.cuda.is_available() else "cpu"
        self.model = GLiNER.from_pretrained(local_copy(model_path), map_location=device)
        self.labels = labels  # label -> prompt
        self.config = config

    def __call__(self, batch: pa.Table) -> pa.Table:
        texts = batch.column("text").to_pylist()
        started = time.perf_counter()
        found = self.model.batch_predict_entities(
            texts,
            self.labels,
            batch_size=self.config.batch_size,
            threshold=self.config.threshold,
            flat_ner=self.config.flat_ner,
        )
        spans = [[entity_to_span(e, "gliner") for e in entities] for entities in found]
        seconds = time.perf_counter() - started
        emit(progress_line("weak-label", advance=len(texts)))
        return batch.append_column("spans", pa.array(spans, type=SPANS_TYPE)).append_column(
            "label_seconds", pa.array([seconds / max(len(texts), 1)] * len(texts), pa.float32())
        )


def weak_label(
    documents: ray.data.Dataset, model_path: str, labels: dict[str, str], config: WeakLabelConfig
) -> ray.data.Dataset:
    """Documents -> documents with GLiNER spans (lazy)."""
    threads = max(1, int(config.cpus_per_worker))
    rows_per_call = config.batch_size * 4
    # A Parquet or JSONL file arrives as one block, and a block goes to one actor and stays in its
    # memory until done: cut the stream into call-sized blocks (a streaming repartition, no barrier)
    # so every actor gets work and none holds a whole file.
    documents = documents.repartition(target_num_rows_per_block=rows_per_call)
    return documents.map_batches(
        GLiNERLabeler,
        fn_constructor_kwargs={
            "model_path": model_path,
            "labels": labels,
            "config": config,
            "torch_threads": threads,
        },
        batch_size=rows_per_call,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=config.num_workers),
        num_cpus=config.cpus_per_worker,
        num_gpus=config.num_gpus or None,
    )
