"""`schedule`'s drift check and `review push|pull` take their settings from the job config, each setting
once under its own name: `drift:`/`review:` sections, the one `seed`, `data.text_field`, `data.labels`,
`weak_label.batch_size`, `tracking.drift_experiment`, and the tracking URI by the pipeline's one rule.
No cluster, model or Label Studio is needed: the monitor is built, not run on a cluster."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobs.cli import main
from jobs.cluster_cmds import DRIFT_CONFIG_DEPRECATED, drift_job, drift_monitor
from jobs.settings import UserError

JOB = """\
seed: 7
storage_path: {storage}
data:
  labels: [drug, city]
  label_descriptions: {{drug: medication name}}
  text_field: body
weak_label: {{batch_size: 4}}
tracking: {{drift_experiment: nightly-drift}}
drift: {{sample_size: 3, max_label_js: 0.3, threshold: 0.2}}
review: {{budget: 2, low_score: 0.5}}
"""


@pytest.fixture
def job(tmp_path: Path) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(JOB.format(storage=tmp_path / "runs"))
    return path


@pytest.fixture
def champion(tmp_path: Path) -> Path:
    folder = tmp_path / "champion"  # DriftMonitor loads the checkpoint only when it checks a batch
    folder.mkdir()
    return folder


@pytest.fixture(autouse=True)
def no_tracking_env(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


class FakeModel:
    """Stands in for the champion: records how it is called, finds one `drug` per text."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def batch_predict_entities(self, texts, labels, batch_size, threshold):
        self.calls.append({"texts": list(texts), "labels": dict(labels), "batch_size": batch_size})
        return [[{"start": 0, "end": 1, "label": "drug", "score": 0.9, "text": t[:1]}] for t in texts]


def test_the_drift_monitor_is_built_from_the_job_sections(tmp_path, job, champion):
    monitor = drift_monitor(champion, job)
    assert monitor is not None
    assert monitor.job.seed == 7 and monitor.job.data.text_field == "body"
    assert monitor.config.sample_size == 3 and monitor.config.max_label_js == 0.3
    assert monitor.labels == {"drug": "medication name", "city": "city"}  # data.labels, their prompts
    # the one tracking rule: no tracking.tracking_uri and no $MLFLOW_TRACKING_URI -> beside storage_path
    assert monitor.tracking == (f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}", "nightly-drift")

    # a check uses them: text_field, sample_size and seed to sample, batch_size per model call
    batch = tmp_path / "new.jsonl"
    batch.write_text(
        "".join(json.dumps({"body": f"text {i}", "text": "wrong field"}) + "\n" for i in range(10))
    )
    model = FakeModel()
    monitor.model = lambda: model  # type: ignore[method-assign]
    monitor.tracking = None  # not logged here
    report = monitor([batch])
    [call] = model.calls
    assert len(call["texts"]) == 3 and all(t.startswith("text ") for t in call["texts"])
    assert call["batch_size"] == 4 and call["labels"] == monitor.labels
    assert "no reference yet" in report.reason and Path(report.reference).parent == champion
    again = drift_monitor(champion, job)
    assert again is not None
    again.model = lambda: model  # type: ignore[method-assign]
    again.tracking = None
    again([batch])
    assert model.calls[1]["texts"] == call["texts"]  # the same seed draws the same sample


def test_set_flags_and_the_environment_follow_the_same_rules(tmp_path, job, champion, monkeypatch):
    monitor = drift_monitor(champion, job, ["drift.sample_size=9", "seed=3"], labels="city, person")
    assert monitor is not None and monitor.config.sample_size == 9 and monitor.job.seed == 3
    assert monitor.labels == {"city": "city", "person": "person"}  # --drift-labels wins
    with pytest.raises(UserError, match="not a local folder"):  # the rule's own refusal, as one line
        drift_monitor(champion, job, ["storage_path=s3://bucket/runs"])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    assert drift_monitor(champion, job).tracking == ("http://mlflow.internal:5000", "nightly-drift")  # type: ignore[union-attr]
    configured = drift_monitor(champion, job, ["tracking.tracking_uri=http://configured:5000"])
    assert configured is not None and configured.tracking[0] == "http://configured:5000"  # type: ignore[index]
    flag = drift_monitor(champion, job, tracking_uri="http://flag:5000")
    assert flag is not None and flag.tracking[0] == "http://flag:5000"  # type: ignore[index]
    bare = drift_monitor(champion)  # no job config: the defaults, and no labels to make a reference with
    assert bare is not None and bare.labels is None and bare.tracking[1] == "gliner-drift"  # type: ignore[index]


def test_the_deprecated_drift_config_still_works_and_says_so(tmp_path, champion, capsys):
    settings = tmp_path / "drift.yaml"  # a file of drift settings alone, with keys that moved since
    settings.write_text("sample_size: 5\nsignificance: 0.05\nseed: 3\ntext_field: body\n")
    with pytest.warns(FutureWarning) as warned:
        monitor = drift_monitor(champion, drift_config=settings, overrides=["weak_label.batch_size=2"])
    moved = sorted(str(w.message).split(" is deprecated")[0] for w in warned)
    assert moved == ["drift.seed", "drift.text_field"]
    assert DRIFT_CONFIG_DEPRECATED in capsys.readouterr().err
    assert monitor is not None
    assert monitor.config.sample_size == 5 and monitor.config.significance == 0.05
    assert monitor.job.seed == 3 and monitor.job.data.text_field == "body"
    assert monitor.job.weak_label.batch_size == 2
    with pytest.raises(UserError, match="not both"):
        drift_job(settings, drift_config=settings)
    with pytest.raises(UserError, match="drift config not found"):
        drift_job(None, drift_config=tmp_path / "missing.yaml")


def test_schedule_reads_its_config_and_the_deprecated_drift_config_through_the_cli(
    tmp_path, job, champion, capsys, monkeypatch
):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/drift.db")
    settings = tmp_path / "drift.yaml"
    settings.write_text("drift: {sample_size: 5}\n")
    common = ["schedule", "--address", "http://127.0.0.1:9", "--watch", str(tmp_path), "--state"]
    after = ["--drift-model", str(champion), "--", "self-train", "--storage", "/tmp/runs"]
    for given in (["--config", str(job), "-s", "drift.sample_size=4"], ["--drift-config", str(settings)]):
        code = main([*common, str(tmp_path / "state.db"), *given, *after])
        err = capsys.readouterr().err
        assert code == 2 and "cannot reach the Ray cluster" in err  # the monitor was built: next, the cluster
        assert (DRIFT_CONFIG_DEPRECATED in err) == ("--drift-config" in given)
    code = main([*common, str(tmp_path / "state.db"), "--config", "/nonexistent/job.yaml", *after])
    assert code == 2 and "config file not found: /nonexistent/job.yaml" in capsys.readouterr().err
    # without --drift-model the job config has nothing to configure: it belongs after `--`
    code = main(
        [*common, str(tmp_path / "state.db"), "--config", str(job), "--", "self-train", "--storage", "/r"]
    )
    err = capsys.readouterr().err
    assert code == 2 and "--config needs --drift-model" in err and "-- self-train --config job.yaml" in err


def test_review_takes_its_section_and_the_jobs_seed_from_a_job_file(tmp_path, job, monkeypatch):
    from typer.testing import CliRunner

    import pipelines
    from jobs.review_cmd import review_app, review_settings

    cfg, settings = review_settings(job, None)
    assert cfg.seed == 7 and settings.budget == 2 and settings.low_score == 0.5
    cfg, settings = review_settings(
        job, ["review.budget=4"], seed=11, flags={"label_studio.url": "http://ls:1"}
    )
    assert (cfg.seed, settings.budget, settings.label_studio.url) == (11, 4, "http://ls:1")
    old = tmp_path / "old.yaml"  # review.seed: the deprecated alias of the one seed
    old.write_text("review: {seed: 5, budget: 3}\n")
    with pytest.warns(FutureWarning, match="review.seed is deprecated"):
        cfg, settings = review_settings(old, None)
    assert cfg.seed == 5 and settings.budget == 3

    seen: dict = {}

    def select(documents, settings, exclude, seed):
        seen.update(budget=settings.budget, low_score=settings.low_score, seed=seed)
        return []

    # the command takes them from the public surface, `pipelines`: patched there (patching the module
    # that defines them would let `pipelines` cache the stand-in for the rest of the session)
    monkeypatch.setattr(pipelines, "read_review_documents", lambda labels, rows: ([], {}))
    monkeypatch.setattr(pipelines, "select_for_review", select)
    labels = tmp_path / "weak_labels"
    labels.mkdir()
    result = CliRunner().invoke(
        review_app, ["push", "--labels", str(labels), "--config", str(job), "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    assert seen == {"budget": 2, "low_score": 0.5, "seed": 7}
    assert "0 of 0 documents selected (budget 2)" in result.output
