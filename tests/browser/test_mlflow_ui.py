"""The MLflow UI as a person looks at a self-training job: Chromium on the session's `mlflow server`, after
the session's job (`loop_run`, tests/loop_run.py: a seed, one iteration, two registered versions).

One browser session walks the way a person would: the link the job printed opens the experiment on its
runs (not on MLflow 3's GenAI overview of traces); the job's run lists its nested runs and the datasets
it used; an iteration's page shows its per-label F1; the registered model shows the `champion` alias on
the version the job promoted."""

from __future__ import annotations

import re

import pytest

from tests.loop_run import LABELS

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.integration]

CHILDREN = ["seed", "start-model", "synth", "iteration-1"]


def metric_value(page, name: str) -> float:
    """The value the run page's metrics table shows for `name`."""
    row = page.get_by_role("row").filter(has=page.get_by_text(name, exact=True))
    text = row.first.inner_text()
    return float(text.replace(name, "").strip().split()[0])


def test_a_person_inspects_the_job_in_the_mlflow_ui(loop_run, page, shots):
    from mlflow.tracking import MlflowClient
    from playwright.sync_api import expect

    from pipelines.registry.tracking import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG

    client = MlflowClient(loop_run.server.url)
    summary = loop_run.summary
    parent = client.get_run(summary.run_id)
    experiment = client.get_experiment(parent.info.experiment_id)
    assert experiment.tags.get(EXPERIMENT_KIND_TAG) == EXPERIMENT_KIND  # a training experiment, not GenAI
    name = parent.info.run_name
    assert name.startswith("shared-loop-")  # the job's name, then when it ran

    # 1. the link the job printed opens the experiment on its runs
    assert summary.ui_link in loop_run.output
    assert summary.ui_link.startswith(loop_run.server.url)  # the server's address, no credentials
    page.goto(summary.ui_link)
    expect(page.get_by_role("link", name=name, exact=True)).to_be_visible()
    expect(page.get_by_role("columnheader", name="Dataset").first).to_be_visible()
    assert "/overview" not in page.url and "traces" not in page.url
    # the job's row names its datasets in the Dataset column
    # (the grid draws a row in two parts, the pinned run name and the rest: both carry the run id)
    job_row = page.locator(f'[role=row][row-id="{summary.run_id}"]', has_text="corpus.jsonl")
    expect(job_row).to_have_count(1)
    shots(page, "mlflow-runs")

    # 2. the job's run page: its nested runs and every dataset it used
    page.get_by_role("link", name=name, exact=True).click()
    expect(page.get_by_text("Child runs", exact=True)).to_be_visible()
    for child in CHILDREN:
        expect(page.get_by_role("link", name=child, exact=True)).to_be_visible()
    inputs = parent.inputs.dataset_inputs
    names = {i.dataset.name for i in inputs}
    assert {
        "corpus.jsonl",
        "gold_seed.jsonl",
        "gold_dev.jsonl",
        "seed/train_rows",
        "iter_01/train_rows",
    } <= names
    # the run page's "Datasets" entry: the first dataset by name, then "+N" for the others
    datasets = page.get_by_text(re.compile(r"^Datasets\s*corpus\.jsonl")).first
    expect(datasets).to_contain_text(f"+{len(inputs) - 1}")
    shots(page, "mlflow-job-run")

    # 3. an iteration's page: its F1 per label, as logged
    page.get_by_role("link", name="iteration-1", exact=True).click()
    expect(page.get_by_text("dev_micro_f1", exact=True)).to_be_visible()
    iteration = next(
        c
        for c in client.search_runs(
            [experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
        )
        if c.info.run_name == "iteration-1"
    )
    for label in LABELS:
        logged = iteration.data.metrics[f"dev_f1/{label}"]
        assert metric_value(page, f"dev_f1/{label}") == pytest.approx(logged, abs=1e-3)

    # 4. the registered model: the champion alias on the version the job promoted
    champion = client.get_model_version_by_alias("test-gliner", "champion")
    promoted = [r.version for r in summary.iterations if r.promoted] or [champion.version]
    assert champion.version == promoted[-1]
    page.goto(f"{loop_run.server.url}/#/models/test-gliner")
    version_rows = page.get_by_role("row").filter(has_text=re.compile(r"Version \d+"))
    expect(version_rows.first).to_be_visible()
    rows = {re.search(r"Version (\d+)", t).group(1): t for t in version_rows.all_inner_texts()}  # type: ignore[union-attr]
    assert set(rows) >= {"1", "2"}
    assert [v for v, text in rows.items() if "champion" in text] == [champion.version]
    shots(page, "mlflow-registered-model")
