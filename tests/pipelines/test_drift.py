"""Drift: the figures on hand-made profiles, the scheduler's drift trigger and its state, and a real
MiniLM GLiNER that sees another domain drift and another sample of its own domain not drift."""

from __future__ import annotations

import json
import random
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.schedule import Scheduler, StateStore
from jobs.settings import UserError
from pipelines.config import REFERENCE_FILE, SAMPLE_DIR, DriftConfig, PipelineConfig
from pipelines.ops.drift import DriftReport, Profile, compare, profile_of, psi, sample_texts

LABELS = {"person": "person", "organisation": "organisation", "location": "location"}


def entities(n_docs, per_doc, label_weights, score_range, seed=0):
    """`batch_predict_entities`-like output: per_doc entities per document."""
    rng = random.Random(seed)
    labels, weights = zip(*label_weights.items(), strict=True)
    return [
        [
            {"label": rng.choices(labels, weights)[0], "score": rng.uniform(*score_range)}
            for _ in range(per_doc)
        ]
        for _ in range(n_docs)
    ]


def profile(n_docs=100, per_doc=3, label_weights=None, score_range=(0.5, 1.0), seed=0):
    weights = label_weights or {"person": 5, "organisation": 3, "location": 2}
    return profile_of(entities(n_docs, per_doc, weights, score_range, seed), LABELS, 0.3, 10)


# -- figures ----------------------------------------------------------------------------------------


def test_same_distribution_does_not_drift():
    report = compare(profile(seed=1), profile(seed=2), DriftConfig())
    assert not report.drifted and report.reason.startswith("no drift")
    assert report.figures["label_js"] < 0.1 and report.figures["score_psi"] < 0.1
    assert report.figures["rate_ratio"] == pytest.approx(1.0)
    assert report.judged == ["label_js", "score_psi", "rate_ratio"]


def test_each_figure_triggers_on_its_own_shift():
    reference = profile(seed=1)
    other_labels = compare(
        reference, profile(label_weights={"location": 8, "person": 1}, seed=2), DriftConfig()
    )
    assert (
        other_labels.drifted and "label_js" in other_labels.reason and "score_psi" not in other_labels.reason
    )
    unsure = compare(reference, profile(score_range=(0.3, 0.6), seed=2), DriftConfig())
    assert unsure.drifted and "score_psi" in unsure.reason and "label_js" not in unsure.reason
    assert unsure.figures["score_ks"] > 0.5 and unsure.figures["score_ks_pvalue"] < 1e-6
    sparse = compare(reference, profile(per_doc=1, seed=2), DriftConfig())
    assert sparse.drifted and sparse.reason == "drift: rate_ratio 2.980 > 2"  # 3 -> 1 span per document


def test_few_spans_judge_only_the_entity_rate():
    reference = profile(seed=1)
    few = profile(n_docs=10, label_weights={"location": 1}, seed=2)  # 30 spans, all locations
    assert compare(reference, few, DriftConfig(min_spans=30)).drifted
    report = compare(reference, few, DriftConfig(min_spans=31))
    assert not report.drifted and "not judged: 30 spans < 31" in report.reason
    assert report.figures["label_js"] > 0.5  # still computed and logged


def test_psi_and_empty_profiles():
    assert psi([10, 10], [10, 10]) == 0.0
    assert psi([100, 0], [0, 100]) > 5
    empty = profile_of([[] for _ in range(50)], LABELS, 0.3, 10)
    report = compare(profile(), empty, DriftConfig())
    assert report.drifted and report.figures["label_js"] == 1.0 and "rate_ratio" in report.reason


def test_reference_round_trip(tmp_path):
    reference = profile()
    path = reference.save(tmp_path / "model" / REFERENCE_FILE)
    assert Profile.load(path) == reference
    data = json.loads(path.read_text())
    assert data["format"] == 1 and data["labels"] == LABELS and len(data["score_histogram"]) == 10
    path.write_text(json.dumps({**data, "format": 99}))
    with pytest.raises(ValueError, match="format 99"):
        Profile.load(path)


def test_sample_texts_reads_every_format_and_is_seeded(tmp_path):
    (tmp_path / "a.jsonl").write_text(
        "\n".join([json.dumps({"text": f"json {i}"}) for i in range(50)] + ["not json", '{"other": 1}'])
    )
    pq.write_table(pa.table({"text": [f"parquet {i}" for i in range(50)]}), tmp_path / "b.parquet")
    (tmp_path / "c.txt").write_text("\n".join(f"line {i}" for i in range(50)))
    files = sorted(tmp_path.iterdir())
    sample, seen = sample_texts(files, "text", 30, seed=0)
    assert seen == 150 and len(sample) == len(set(sample)) == 30
    assert {t.split()[0] for t in sample} == {"json", "parquet", "line"}
    assert sample_texts(files, "text", 30, seed=0)[0] == sample
    assert sample_texts(files, "text", 30, seed=1)[0] != sample
    assert sample_texts(files, "text", 500, seed=0)[0] == [t for f in files for t in _all(f)]


def _all(path: Path) -> list[str]:
    from pipelines.ops.drift import iter_texts

    return list(iter_texts(path, "text"))


def test_drift_settings_from_yaml(tmp_path):
    """A job's `drift:` section is its drift settings; the deprecated `--drift-config` file may also be
    drift settings alone (`load_drift_job` reads both as a job config)."""
    from pipelines.ops.drift import load_drift_job

    pipeline = tmp_path / "job.yaml"
    pipeline.write_text("data:\n  labels: [person]\ndrift:\n  sample_size: 50\n  max_label_js: 0.3\n")
    assert PipelineConfig.load(pipeline).drift == DriftConfig(sample_size=50, max_label_js=0.3)
    assert load_drift_job(pipeline).drift == DriftConfig(sample_size=50, max_label_js=0.3)
    assert load_drift_job(pipeline).data.labels == ["person"]
    bare = tmp_path / "drift.yaml"
    bare.write_text("significance: 0.05\n")
    assert load_drift_job(bare).drift.significance == 0.05
    bare.write_text("sample_size: -1\nnope: 1\n")
    with pytest.raises(
        ValueError, match=r"bad drift settings: drift.sample_size: .*; drift.nope: Extra inputs"
    ):
        load_drift_job(bare)
    with pytest.raises(FileNotFoundError, match="drift config not found"):
        load_drift_job(tmp_path / "missing.yaml")


# -- the scheduler's drift trigger ------------------------------------------------------------------


class FakeCluster:
    def __init__(self):
        self.jobs: dict[str, str] = {}

    def submission_id(self, key: str) -> str:
        return f"job-{key}"

    def submit(self, key: str) -> tuple[str, bool]:
        self.jobs.setdefault(f"job-{key}", "RUNNING")
        return f"job-{key}", False

    def status(self, submission_id: str) -> str | None:
        return self.jobs.get(submission_id)

    def finish_all(self) -> None:
        self.jobs = dict.fromkeys(self.jobs, "SUCCEEDED")


class FakeDrift:
    """Drifts when a batch holds a file whose name contains 'music'; records the batches it saw."""

    def __init__(self):
        self.batches: list[list[str]] = []

    def __call__(self, files):
        names = sorted(Path(f).name for f in files)
        self.batches.append(names)
        drifted = any("music" in n for n in names)
        return DriftReport(drifted, "drift: label_js 0.6 > 0.2" if drifted else "no drift", {"label_js": 0.1})


def scheduler(tmp_path, cluster, drift, **kwargs):
    clock = lambda: datetime(2026, 12, 1, tzinfo=timezone.utc)  # noqa: E731
    return Scheduler(cluster, StateStore(tmp_path / "state.db"), clock=clock, drift=drift, **kwargs)


def test_drift_trigger_submits_only_for_a_drifted_batch(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "politics-1.jsonl").write_text('{"text": "a"}\n')
    cluster, drift = FakeCluster(), FakeDrift()
    s = scheduler(tmp_path, cluster, drift, watch=str(corpus))
    assert s.poll().action == "idle"  # the first batch is compared, does not drift: consumed
    assert s.poll().action == "idle" and len(drift.batches) == 1  # and not checked again
    (corpus / "politics-2.jsonl").write_text('{"text": "b"}\n')
    assert s.poll().action == "idle"
    (corpus / "music-1.jsonl").write_text('{"text": "c"}\n')
    decision = s.poll()
    assert decision.action == "submitted" and decision.reason.endswith("drift: label_js 0.6 > 0.2")
    assert drift.batches == [["politics-1.jsonl"], ["politics-2.jsonl"], ["music-1.jsonl"]]  # only new files

    # a drifted batch while that job runs: deferred, checked once, submitted when the job has ended
    (corpus / "music-2.jsonl").write_text('{"text": "d"}\n')
    assert s.poll().action == "deferred" and s.poll().action == "deferred"
    assert len(drift.batches) == 4
    cluster.finish_all()
    assert s.poll().action == "submitted" and len(drift.batches) == 4
    assert s.poll().action == "idle"

    state = StateStore(tmp_path / "state.db")
    checks = state.drift_checks()
    assert [c["drifted"] for c in checks] == [False, False, True, True]
    assert [c["files"] for c in checks] == [1, 1, 1, 1] and checks[0]["figures"] == {"label_js": 0.1}
    assert [r["reason"].startswith("drift in new data") for r in state.submissions()] == [True, True]


def test_a_failed_drift_check_records_nothing_and_is_retried(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "music-1.jsonl").write_text('{"text": "a"}\n')
    cluster, drift = FakeCluster(), FakeDrift()

    def broken(files):
        raise ValueError("reference made with threshold 0.5")

    with pytest.raises(UserError, match="drift check of 1 new file.*threshold 0.5"):
        scheduler(tmp_path, cluster, broken, watch=str(corpus)).poll()
    state = StateStore(tmp_path / "state.db")
    assert state.drift_checks() == [] and state.get("corpus_signature") == ""
    assert scheduler(tmp_path, cluster, drift, watch=str(corpus)).poll().action == "submitted"


def test_drift_needs_a_watched_folder(tmp_path):
    with pytest.raises(UserError, match="give --watch"):
        scheduler(tmp_path, FakeCluster(), FakeDrift(), cron="0 3 * * *")


def test_state_from_before_the_drift_trigger_still_opens(tmp_path):
    """A state file written by the scheduler before drift checks existed gains the table, keeps its rows."""
    path = tmp_path / "state.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute(
        "CREATE TABLE submissions (submission_id TEXT PRIMARY KEY,"
        " reason TEXT NOT NULL, submitted_at TEXT NOT NULL, existing INTEGER NOT NULL)"
    )
    db.execute("INSERT INTO state VALUES ('corpus_signature', 'abc')")
    db.execute("INSERT INTO submissions VALUES ('job-1', 'new data', '2026-11-01T00:00:00', 0)")
    db.commit()
    db.close()
    state = StateStore(path)
    assert state.get("corpus_signature") == "abc" and len(state.submissions()) == 1
    assert state.drift_checks() == []


# -- a real MiniLM GLiNER, a real scheduler, a real MLflow store ----------------------------------------

SAMPLE = SAMPLE_DIR
NEWS_LABELS = {"person": "person", "organisation": "organisation", "location": "location", "date": "date"}


def other_style_texts(n: int, seed: int = 0) -> list[str]:
    """Kitchen instructions, service logs and API notes: no people, companies, places or dates."""
    rng = random.Random(seed)
    templates = [
        "Whisk {a} eggs with {b} g of flour, then bake the dough at {c} degrees for {d} minutes.",
        "Stir the sauce gently, add a pinch of salt and serve it warm with {a} leaves of fresh basil.",
        "ERROR worker-{a} timed out after {b} s while reading shard {c:04d}; retrying with backoff {d}.",
        "WARN cache hit ratio fell to {a}.{b} percent on node {c}; evicting {d} stale entries.",
        "The function returns None when the buffer is empty, otherwise a list of {a} integer offsets.",
        "Set the retry limit to {a} and the timeout to {b} seconds before calling the handler {c} times.",
    ]
    return [
        rng.choice(templates).format(
            a=rng.randint(2, 9), b=rng.randint(10, 99), c=rng.randint(100, 999), d=rng.randint(1, 60)
        )
        for _ in range(n)
    ]


def write_jsonl(path: Path, texts: list[str]) -> None:
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))


@pytest.fixture(scope="module")
def news_champion(tmp_path_factory, minilm_path) -> str:
    """A MiniLM GLiNER fine-tuned for 50 steps on the shipped gold seed rows (news-like sentences). It
    finds entity spans in news text with spread scores (its labels are still rough): a real model whose
    output moves when the text does. ~50 s on two free cores."""
    import torch

    from gliner_core import GLiNER
    from gliner_core.training import TrainingRow, make_training_batch, training_loss

    torch.manual_seed(0)
    rng = random.Random(0)
    labels = list(NEWS_LABELS)
    rows = [
        TrainingRow(r["text"], [(s["start"], s["end"], s["label"]) for s in r["spans"]], labels)
        for r in map(json.loads, (SAMPLE / "gold_seed.jsonl").read_text().splitlines())
    ]
    model = GLiNER.from_backbone(minilm_path, hidden_size=256, max_len=64, max_width=8, dropout=0.1)
    encoder = [p for n, p in model.model.named_parameters() if n.startswith("token_rep_layer.bert_layer")]
    heads = [p for n, p in model.model.named_parameters() if not n.startswith("token_rep_layer.bert_layer")]
    optimizer = torch.optim.AdamW([{"params": encoder, "lr": 1e-4}, {"params": heads, "lr": 1e-3}])
    model.train()
    for _ in range(50):
        batch = make_training_batch(
            rng.sample(rows, 8), model.inputs, labels, rng, model.tokenizer.pad_token_id
        )
        loss = training_loss(model.model, batch, alpha=0.75, gamma=2.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    path = tmp_path_factory.mktemp("champion") / "model"
    model.save_pretrained(path)
    return str(path)


@pytest.mark.slow
@pytest.mark.integration
def test_the_scheduler_retrains_on_drift_and_not_on_more_of_the_same(news_champion, tmp_path):
    import mlflow

    from pipelines.ops.drift import DriftMonitor, write_reference

    news = [json.loads(line)["text"] for line in (SAMPLE / "corpus.jsonl").read_text().splitlines()]
    job = PipelineConfig(drift=DriftConfig(sample_size=60))
    config = job.drift
    reference = write_reference(news_champion, news[:60], NEWS_LABELS, job)
    assert reference == Path(news_champion) / REFERENCE_FILE
    profile = Profile.load(reference)
    assert profile.documents == 60 and profile.spans >= config.min_spans and profile.labels == NEWS_LABELS

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_jsonl(corpus / "news-0002.jsonl", news[60:120])  # more of the same domain
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monitor = DriftMonitor(news_champion, job, tracking=(uri, "drift"))
    cluster = FakeCluster()
    state = StateStore(tmp_path / "state.db")
    s = Scheduler(cluster, state, watch=str(corpus), drift=monitor, say=print)
    assert s.poll().action == "idle"
    (same,) = state.drift_checks()
    assert not same["drifted"] and same["reason"].startswith("no drift"), same

    write_jsonl(corpus / "ops-0001.jsonl", other_style_texts(60))  # another domain lands
    decision = s.poll()
    assert decision.action == "submitted", state.drift_checks()
    other = state.drift_checks()[1]
    assert other["drifted"] and other["files"] == 1 and "drift: " in decision.reason
    assert other["figures"]["score_psi"] > same["figures"]["score_psi"]
    assert state.submissions()[0]["reason"] == decision.reason

    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["drift"], order_by=["start_time ASC"])
    assert list(runs["tags.drift.decision"]) == ["keep", "retrain"]
    assert list(runs["metrics.drifted"]) == [0.0, 1.0]
    assert runs["metrics.label_js"].notna().all() and runs["metrics.score_ks"].notna().all()


@pytest.mark.slow
def test_a_champion_without_reference_gets_one_from_its_first_batch(news_champion, tmp_path):
    import shutil

    from pipelines.ops.drift import DriftMonitor

    model = tmp_path / "champion"
    shutil.copytree(news_champion, model, ignore=shutil.ignore_patterns(REFERENCE_FILE))
    batch = tmp_path / "batch.jsonl"
    news = [json.loads(line)["text"] for line in (SAMPLE / "corpus.jsonl").read_text().splitlines()]
    write_jsonl(batch, news[120:140])
    with pytest.raises(ValueError, match="no labels to make one"):
        DriftMonitor(model, PipelineConfig(drift=DriftConfig(sample_size=20)))([batch])
    job = PipelineConfig(drift=DriftConfig(sample_size=20))
    report = DriftMonitor(model, job, labels=NEWS_LABELS)([batch])
    assert not report.drifted and report.reason.startswith("no reference yet")
    assert Profile.load(model / REFERENCE_FILE).documents == 20
