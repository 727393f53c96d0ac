"""Injected faults: a killed Ray Data actor, the MLflow server going away mid-training, an
unwritable or full output disk. Each test checks that nothing is lost or that the error is clear."""

from __future__ import annotations

import errno
import importlib
import json
import logging
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import ray.data

from pipelines.config import SAMPLE_DIR, TrainConfig, WeakLabelConfig
from pipelines.data.read import read_gold
from pipelines.training.metrics_sink import replay_metrics
from pipelines.training.train_worker import TrainSpec
from pipelines.training.trainer import train_model
from pipelines.weak.weak_label import weak_label


def labeler_pids() -> list[int]:
    """PIDs of the live weak-labeling actors of this Ray session."""
    from ray._private import state

    return [
        int(a["Pid"])
        for a in state.actors().values()
        if "GLiNERLabeler" in a["ActorClassName"] and a["State"] == "ALIVE" and a["Pid"]
    ]


@pytest.mark.slow
def test_killed_weak_label_actor_loses_no_document(ray_local, tiny_model):
    """SIGKILL the labeling actor (an OOM kill, a lost node) after its first output: Ray Data
    (2.60 defaults: max_restarts=-1, max_task_retries=-1 for actor pools) restarts it and retries
    its tasks; every document comes out exactly once."""
    ray.data.DataContext.get_current().enable_progress_bars = False
    docs = [
        {"doc_id": f"d{i:03d}", "text": f"Ada Lovelace met person {i} in London.", "source": "t"}
        for i in range(48)
    ]
    # 4 documents per task: 12 tasks; the GLiNER actor alone (no labeling functions after it)
    config = WeakLabelConfig(batch_size=1, num_workers=1, threshold=0.0, labeling_functions={})
    labelled = weak_label(ray.data.from_items(docs), tiny_model, {"gliner": {"person": "person"}}, config)
    out: list[dict] = []
    killed: list[int] = []
    done_at_kill = 0
    for batch in labelled.iter_batches(batch_size=None, batch_format="pyarrow"):
        out += batch.select(["doc_id", "spans"]).to_pylist()
        if not killed:
            killed = labeler_pids()
            assert killed, "no labeling actor found"
            done_at_kill = len(out)
            for pid in killed:
                os.kill(pid, signal.SIGKILL)
    assert done_at_kill < len(docs)  # killed mid-stage, with documents still to label
    ids = [r["doc_id"] for r in out]
    assert len(ids) == len(docs) and set(ids) == {d["doc_id"] for d in docs}
    assert all(r["spans"] for r in out)  # threshold 0: every document was really labelled
    assert not set(killed) & set(labeler_pids())  # the killed process is gone; a new one did the rest


# --------------------------------------------------------------------------- MLflow outage

SAMPLE = SAMPLE_DIR
LABELS = {"person": "person", "organisation": "organisation", "location": "location", "date": "date"}


def training_rows(n: int) -> list[dict]:
    gold = read_gold(str(SAMPLE / "gold_seed.jsonl"))[:n]
    return [
        {
            "doc_id": str(i),
            "text": r["text"],
            "labels": list(LABELS),
            "weight": 1.0,
            "spans": [{**s, "score": 1.0, "origin": "gold"} for s in r["spans"]],
        }
        for i, r in enumerate(gold)
    ]


def outage_hook(control: str, url: str, run_id: str):
    """Step hook (runs in the Ray Train worker): kill the tracking server at step 3; at step 6 wait
    until the driver has restarted it and the metrics buffered during the outage have arrived;
    kill it for good at step 9."""

    def kill_server() -> None:
        os.killpg(int(Path(control, "server.pid").read_text()), signal.SIGKILL)

    def hook(step: int, rank: int) -> None:
        if step == 3:
            kill_server()
            Path(control, "down").write_text("1")
        elif step == 6:
            from mlflow.tracking import MlflowClient

            deadline = time.time() + 300
            while time.time() < deadline:
                if Path(control, "up").exists():
                    try:
                        steps = {m.step for m in MlflowClient(url).get_metric_history(run_id, "train_loss")}
                        if {3, 4, 5} <= steps:
                            return
                    except Exception:  # noqa: S110 (the server is still starting)
                        pass
                time.sleep(0.5)
            raise RuntimeError("metrics buffered during the outage never reached the restarted server")
        elif step == 9:
            kill_server()

    return hook


@pytest.mark.slow
@pytest.mark.integration
def test_mlflow_outage_during_training_loses_no_metric(
    ray_local, tiny_model, mlflow_server, tmp_path, caplog
):
    """The tracking server dies at step 3, comes back (the buffered steps 3-5 are sent), dies again
    at step 9 for good: training finishes, the failure is reported, the unsent metrics are in a JSONL
    file, and after a replay MLflow has every step's loss exactly once."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_server.url)
    run_id = client.create_run(client.create_experiment("outage")).info.run_id
    control = tmp_path / "control"
    control.mkdir()
    assert mlflow_server.process is not None
    (control / "server.pid").write_text(str(mlflow_server.process.pid))

    def restart_when_down() -> None:
        deadline = time.time() + 600
        while not (control / "down").exists() and time.time() < deadline:
            time.sleep(0.2)
        mlflow_server.process = None  # killed by the hook
        mlflow_server.start()
        assert mlflow_server.process is not None
        (control / "server.pid").write_text(str(mlflow_server.process.pid))
        (control / "up").write_text("1")

    restarter = threading.Thread(target=restart_when_down, daemon=True)
    restarter.start()
    data = training_rows(24)
    dev = read_gold(str(SAMPLE / "gold_dev.jsonl"))[:4]
    config = TrainConfig(
        max_steps=12, eval_every=6, batch_size=4, lr_heads=1e-3, lr_encoder=1e-4, max_failures=0
    )
    spec = TrainSpec(
        config,
        tiny_model,
        LABELS,
        dev,
        num_rows=len(data),
        tracking_uri=mlflow_server.url,
        run_id=run_id,
        metrics_flush_timeout_s=2.0,
    )
    with caplog.at_level(logging.ERROR, logger="pipelines.training.trainer"):
        result = train_model(
            ray.data.from_items(data),
            spec,
            run_name="outage",
            storage_path=str(tmp_path / "ray"),
            output_dir=str(tmp_path / "best"),
            step_hook=outage_hook(str(control), mlflow_server.url, run_id),
        )
    restarter.join(5)
    steps = 12  # the budget: 24 rows / 4 per step, two passes
    assert result.history[-1]["step"] == steps  # training finished despite the outages
    assert Path(result.model_path, "model.safetensors").is_file()
    assert not mlflow_server.healthy()
    # reported clearly, with the file that holds what MLflow did not get
    assert result.unsent_metrics and Path(result.unsent_metrics).is_file()
    assert any(
        result.unsent_metrics in r.getMessage() and "replay_metrics" in r.getMessage() for r in caplog.records
    )
    unsent = [json.loads(line) for line in Path(result.unsent_metrics).read_text().splitlines()]
    assert {r["step"] for r in unsent if r["key"] == "train_loss"} >= {
        10,
        11,
        12,
    }  # logged after the 2nd kill

    mlflow_server.process = None
    mlflow_server.start()
    assert replay_metrics(result.unsent_metrics, mlflow_server.url) == len(unsent)
    assert not Path(result.unsent_metrics).exists()
    logged = sorted(m.step for m in client.get_metric_history(run_id, "train_loss"))
    # every step's loss exactly once, plus the two dev-score reports' means (at steps 6 and 12)
    assert logged == sorted([*range(1, steps + 1), 6, 12])
    dev_f1 = client.get_metric_history(run_id, "dev_micro_f1")
    assert sorted(m.step for m in dev_f1) == [6, 12]  # both dev scores, one before and one after


# --------------------------------------------------------------------------- unwritable or full disk


@pytest.fixture
def unwritable(tmp_path) -> Path:
    """A folder nobody may write into: read-only permissions, or (for root, whom permissions do not
    stop) a path under the read-only /sys."""
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
        return folder / "runs"
    return Path("/sys/gliner-selftrain-reliability/runs")


def test_self_training_refuses_an_unwritable_storage_path_before_any_work(unwritable, tmp_path):
    from pipelines.config import PipelineConfig
    from pipelines.loop.self_training import run

    config = PipelineConfig.model_validate(
        {"storage_path": str(unwritable), "tracking": {"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db"}}
    )
    started = time.perf_counter()
    with pytest.raises(PermissionError, match=f"cannot write to {unwritable}"):
        run(config)
    assert time.perf_counter() - started < 5  # no Ray start, no model, no MLflow run
    assert not unwritable.exists() and not (tmp_path / "mlflow.db").exists()


def test_synth_refuses_an_unwritable_output_before_any_llm_call(ray_local, unwritable, tmp_path):
    from synth import HttpEngineConfig, NerTask, SynthConfig, run_synth, synthesize

    config = SynthConfig(
        tasks=[NerTask(labels=["person"])], engine=HttpEngineConfig(base_url="http://127.0.0.1:9/v1")
    )
    docs = ray.data.from_items([{"doc_id": "a", "text": "Ada Lovelace."}])
    started = time.perf_counter()
    with pytest.raises(PermissionError, match="cannot write to"):
        run_synth(docs, config, str(unwritable))
    with pytest.raises(PermissionError, match="cannot write to"):  # the response cache too
        synthesize(docs, config.model_copy(update={"cache_dir": str(unwritable / "cache")}))
    assert time.perf_counter() - started < 5


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("module", ["pipelines.data.storage", "synth.output"])
def test_full_disk_is_a_clear_error_before_work(module, tmp_path, monkeypatch):
    """The probe write hits ENOSPC: a clear "no space left" error naming the folder, no probe left."""
    target = importlib.import_module(module)
    defining = importlib.import_module(target.check_writable.__module__)
    monkeypatch.setattr(defining, "open", no_space, raising=False)  # the defining module's own `open`
    with pytest.raises(OSError, match=f"no space left on the device of {tmp_path / 'out'}") as raised:
        target.check_writable(str(tmp_path / "out"))
    assert raised.value.errno == errno.ENOSPC
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize(
    ("module", "function"),
    [("pipelines.data.storage", "write_parquet"), ("synth.output", "write_parquet_atomic")],
)
def test_disk_full_mid_write_leaves_no_partial_output(ray_local, module, function, tmp_path, monkeypatch):
    """The disk fills up after the first shard: a clear ENOSPC error, the earlier complete output
    is kept as it was, and neither partial shards nor the staging folder stay behind."""
    write = getattr(importlib.import_module(module), function)
    out = tmp_path / "weak_labels"
    write(ray.data.from_items([{"x": 1}, {"x": 2}]), str(out))  # a complete earlier output
    before = sorted(p.name for p in out.iterdir())
    real = ray.data.Dataset.write_parquet

    def fills_up(self, path, *args, **kwargs):
        real(self.limit(1), path)  # one shard lands on disk...
        raise OSError(errno.ENOSPC, "No space left on device")  # ...then the disk is full

    monkeypatch.setattr(ray.data.Dataset, "write_parquet", fills_up)
    with pytest.raises(OSError, match=f"no space left on the device of {out}") as raised:
        write(ray.data.from_items([{"x": i} for i in range(10)]), str(out))
    assert raised.value.errno == errno.ENOSPC
    assert sorted(p.name for p in out.iterdir()) == before
    assert [p.name for p in tmp_path.iterdir()] == ["weak_labels"]  # no staging folder left
    assert sorted(r["x"] for r in ray.data.read_parquet(str(out)).take_all()) == [1, 2]
