"""One whole self-training job for the session, looked at by several tests (`loop_run` in tests/conftest.py).

A job is the suite's most expensive step (two Ray Train runs, the Ray Data stages, MLflow logging):
tests/pipelines/test_self_training.py checks what it tracked and registered, tests/pipelines/
test_learning_stages.py runs its config once more and compares the models, tests/reliability/
test_security.py looks for planted secrets in everything it left. So the one run is made as each of
them needs it: a tiny encoder, the LLM stage against a stub on 127.0.0.1, the session's `mlflow server`
reached through a URI with a password, unique secret values in the environment, and its stdout, stderr
and log records kept."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.mlflow_server import MlflowServer

JOB = "shared-loop"
LABELS = ["person", "organisation", "location", "date"]
SECRET_VARIABLES = ["HF_TOKEN", "MLFLOW_TRACKING_PASSWORD", "AWS_SECRET_ACCESS_KEY", "RAY_AUTH_TOKEN"]


def job_config(storage: Path, url: str, backbone: str, synth: Path | None) -> dict[str, Any]:
    """16 documents, a tiny encoder, a seed trained on the sample's gold rows, one iteration."""
    return {
        "name": JOB,
        "seed": 7,
        "storage_path": str(storage),
        "synth": {"mode": "generate", "config": str(synth)} if synth else {},
        "data": {"max_documents": 16},
        "model": {"backbone": backbone, "settings": {"hidden_size": 64, "max_len": 64, "dropout": 0.1}},
        # budgets in passes: two over the 120 gold rows (30 steps), one over the merged rows
        "seed_train": {
            "max_epochs": 2,
            "eval_every": 15,
            "warmup_steps": 3,
            "lr_encoder": 1e-4,
            "lr_heads": 1e-3,
            "label_smoothing": 0.0,
        },
        "train": {"max_epochs": 1, "batch_size": 8, "warmup_steps": 0},
        "loop": {"iterations": 1},
        "tracking": {
            "tracking_uri": url,
            "experiment": "test-loop",
            "registered_model": "test-gliner",
            "sample_predictions": 5,
        },
    }


@dataclass
class LoopRun:
    summary: Any  # pipelines.loop.self_training.RunSummary
    config: dict[str, Any]  # what the job was given
    server: MlflowServer
    url: str  # the tracking URI the job was given: the server's, with a user and password
    llm: Any  # tests.synth.conftest.OpenAIStub, still serving (a second job may ask it too)
    llm_requests: int  # the requests this job sent it
    storage: Path  # the job's storage_path
    secrets: dict[str, str]  # planted: environment variable (or "uri") -> value
    output: str  # everything the job wrote to stdout and stderr
    log_messages: list[str] = field(default_factory=list)  # log records (INFO and up), formatted

    def variant(self, storage: Path, **sections: dict[str, Any]):
        """This job's config with its own storage path and the given sections updated (key by key);
        `synth={}` drops the LLM stage."""
        from pipelines.config import PipelineConfig

        config = json.loads(json.dumps(self.config))
        config["storage_path"] = str(storage)
        for name, values in sections.items():
            config[name] = {**config[name], **values} if values else {}
        return PipelineConfig.model_validate(config)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def captured_output() -> Iterator[list[str]]:
    """This process's stdout and stderr (fds 1 and 2 and sys.stdout/stderr, as pytest's capfd takes
    them) into one file for the block; the list holds the text once the block has ended."""
    text: list[str] = []
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile() as file:
        saved = os.dup(1), os.dup(2)
        streams = sys.stdout, sys.stderr
        os.dup2(file.fileno(), 1)
        os.dup2(file.fileno(), 2)
        # not closed afterwards: a thread (Ray's log monitor) may still hold it
        writer = os.fdopen(os.dup(file.fileno()), "w", buffering=1, encoding="utf-8", errors="replace")
        sys.stdout = sys.stderr = writer
        try:
            yield text
        finally:
            writer.flush()
            sys.stdout, sys.stderr = streams
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            file.seek(0)
            text.append(file.read().decode("utf-8", errors="replace"))


def run_shared_job(root: Path, server: MlflowServer, backbone: str) -> LoopRun:
    from pipelines.config import PipelineConfig
    from pipelines.loop.self_training import run
    from tests.synth.conftest import OpenAIStub

    secrets = {name: f"planted-{name.lower()}-{uuid.uuid4().hex}" for name in SECRET_VARIABLES}
    password = f"uripass{uuid.uuid4().hex}"
    url = server.url.replace("http://", f"http://svc:{password}@")
    llm = OpenAIStub()  # the LLM stage runs inside the loop, against an OpenAI-compatible endpoint
    synth = root / "synth.yaml"
    synth.write_text(
        json.dumps(
            {
                "tasks": [{"kind": "ner", "labels": LABELS}],
                "engine": {"kind": "http", "base_url": llm.base_url, "batch_size": 4},
            }
        )
    )
    config = job_config(root / "runs", url, backbone, synth)
    records = _Records()
    logger = logging.getLogger()
    level = logger.level
    output: list[str] = []
    try:
        with pytest.MonkeyPatch.context() as env, captured_output() as output:
            for name, value in secrets.items():
                env.setenv(name, value)
            env.setenv("MLFLOW_TRACKING_USERNAME", "svc")
            env.delenv("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", raising=False)  # the job sets it
            logger.addHandler(records)
            logger.setLevel(logging.INFO)
            try:
                summary = run(PipelineConfig.model_validate(config))
            finally:
                logger.removeHandler(records)
                logger.setLevel(level)
    except BaseException:
        llm.stop()
        raise
    finally:
        print("".join(output))  # into pytest's capture: shown with a failing test
    return LoopRun(
        summary=summary,
        config=config,
        server=server,
        url=url,
        llm=llm,
        llm_requests=len(llm.bodies),
        storage=root / "runs",
        secrets={**secrets, "uri": password},
        output="".join(output),
        log_messages=records.messages,
    )
