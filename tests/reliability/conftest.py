"""Fixtures of the reliability suite: a tiny GLiNER checkpoint. The restartable `mlflow server`
(`mlflow_server`) is the session's, from tests/conftest.py."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: str) -> str:
    """A small GLiNER checkpoint (the tiny test encoder, random 64-wide heads) on disk: the faults and
    hostile inputs are about the machinery around a model, not about what it has learned."""
    from gliner_core import GLiNER

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny-gliner")
    GLiNER.from_backbone(tiny_backbone, hidden_size=64, max_len=64).save_pretrained(path)
    return str(path)
