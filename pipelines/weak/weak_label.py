"""Weak-labeling stage: GLiNER labels every document, as a Ray Data actor pool; then the pretrained NER
models (`pipelines.weak.ner_models`) and the labeling functions.

Each actor loads the model once and then labels batches of documents, once per prompt view (label
names, descriptions, synonyms: `pipelines.weak.prompt_views`), each view a weak source of its own (the
spans' `origin` is the view's name, e.g. `gliner:names`); long documents are read in windows by
`gliner_core` itself. Gazetteers and regular expressions (`pipelines.weak.labeling_functions`) add their
spans after. Output: the document columns plus `spans`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from functools import partial

import pyarrow as pa
import ray.data

from pipelines.config import WeakLabelConfig
from pipelines.console import emit, progress_line
from pipelines.data.spans import SPANS_TYPE, entity_to_span
from pipelines.selection.evaluate import model_threshold
from pipelines.weak.labeling_functions import apply_labeling_functions


class GLiNERLabeler:
    """Callable class for `map_batches`: one model per actor, reused for every batch."""

    def __init__(
        self,
        model_path: str,
        views: dict[str, dict[str, str]],
        config: WeakLabelConfig,
        torch_threads: int = 0,
        fallback_threshold: float = 0.5,
    ):
        import torch

        from gliner_core import GLiNER
        from pipelines.data.storage import local_copy

        if torch_threads:
            torch.set_num_threads(torch_threads)
        device = "cuda" if config.gpus_per_worker > 0 and torch.cuda.is_available() else "cpu"
        self.model = GLiNER.from_pretrained(local_copy(model_path), map_location=device)
        self.views = views  # view name -> {label: prompt}
        self.config = config
        # the configured threshold, else the checkpoint's calibrated ones, else evaluation's
        self.threshold = (
            config.threshold
            if config.threshold is not None
            else model_threshold(self.model, fallback_threshold)
        )

    def __call__(self, batch: pa.Table) -> pa.Table:
        texts = batch.column("text").to_pylist()
        started = time.perf_counter()
        spans: list[list[dict]] = [[] for _ in texts]
        for view, prompts in self.views.items():
            found = self.model.batch_predict_entities(
                texts,
                prompts,
                batch_size=self.config.batch_size,
                threshold=self.threshold,
                flat_ner=self.config.flat_ner,
            )
            for row, entities in zip(spans, found, strict=True):
                row.extend(entity_to_span(e, view) for e in entities)
        seconds = time.perf_counter() - started
        emit(progress_line("weak-label", advance=len(texts)))
        return batch.append_column("spans", pa.array(spans, type=SPANS_TYPE)).append_column(
            "label_seconds", pa.array([seconds / max(len(texts), 1)] * len(texts), pa.float32())
        )


def weak_label(
    documents: ray.data.Dataset,
    model_path: str,
    views: dict[str, dict[str, str]],
    config: WeakLabelConfig,
    fallback_threshold: float = 0.5,
) -> ray.data.Dataset:
    """Documents -> documents with the spans of every GLiNER view and labeling function (lazy)."""
    if not views or not all(isinstance(view, Mapping) for view in views.values()):
        raise TypeError(
            "views must map a view name to {label: prompt} (e.g. {'gliner': {'person': 'person'}}), "
            f"got {views!r:.120}"
        )
    threads = max(1, int(config.cpus_per_worker))
    rows_per_call = config.batch_size * 4
    # A Parquet or JSONL file arrives as one block, and a block goes to one actor and stays in its
    # memory until done: cut the stream into call-sized blocks (a streaming repartition, no barrier)
    # so every actor gets work and none holds a whole file.
    documents = documents.repartition(target_num_rows_per_block=rows_per_call)
    labeled = documents.map_batches(
        GLiNERLabeler,
        fn_constructor_kwargs={
            "model_path": model_path,
            "views": views,
            "config": config,
            "torch_threads": threads,
            "fallback_threshold": fallback_threshold,
        },
        batch_size=rows_per_call,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=config.num_workers),
        num_cpus=config.cpus_per_worker,
        num_gpus=config.gpus_per_worker or None,
    )
    if config.ner_models:
        from pipelines.weak.ner_models import NerLabeler
        from pipelines.weak.prompt_views import MAIN_VIEW

        labeled = labeled.map_batches(
            NerLabeler,
            fn_constructor_kwargs={
                "configs": config.ner_models,
                "gliner_path": model_path,
                "prompts": dict(views.get(MAIN_VIEW) or next(iter(views.values()))),
            },
            batch_size=rows_per_call,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=config.num_workers),
            num_cpus=config.cpus_per_worker,
        )
    if config.labeling_functions.enabled:
        lfs = partial(apply_labeling_functions, config=config.labeling_functions)
        labeled = labeled.map_batches(lfs, batch_format="pyarrow")
    return labeled
