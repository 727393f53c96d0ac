"""The review queue as a reviewer works it: `review push` from the session's job (`loop_run`), Label Studio
(`label_studio`, one server per session) in Chromium, `review pull`, and the next job's replay.

In the browser the annotator logs in, opens the queue, finds the model's spans pre-annotated and labelled,
relabels one, deletes one, marks one more, and submits; the pull must turn exactly that into a gold row
whose offsets match the text, and the next job's iteration rows must carry it."""

from __future__ import annotations

import json
import re
import time

import pytest
from typer.testing import CliRunner

from tests.label_studio import ANNOTATOR
from tests.loop_run import LABELS

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.integration]

PROJECT = "browser review"


def select_text(page, start: int, end: int) -> None:
    """Drag the mouse over characters [start, end) of the task's text, as a person marks a span."""
    box = page.evaluate(
        """([start, end]) => {
            const root = document.querySelector('.lsf-htx-richtext');
            const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
            let offset = 0, range = document.createRange(), first = null, last = null;
            while (walker.nextNode()) {
                const node = walker.currentNode, length = node.textContent.length;
                if (first === null && start < offset + length) { first = [node, start - offset]; }
                if (end <= offset + length) { last = [node, end - offset]; break; }
                offset += length;
            }
            range.setStart(first[0], first[1]); range.setEnd(first[0], first[1] + 1);
            const a = range.getBoundingClientRect();
            range.setStart(last[0], last[1] - 1); range.setEnd(last[0], last[1]);
            const b = range.getBoundingClientRect();
            return {x0: a.left + 1, y0: a.top + a.height / 2, x1: b.right - 1, y1: b.top + b.height / 2};
        }""",
        [start, end],
    )
    page.mouse.move(box["x0"], box["y0"])
    page.mouse.down()
    page.mouse.move(box["x1"], box["y1"], steps=5)
    page.mouse.up()


def spans_in_text(page) -> list[tuple[str, str]]:
    """(text, label) of every region the editor highlights in the task's text (Label Studio 1.23 marks a
    region's first highlight `data-label="<region number>:<label>"`)."""
    shown = page.evaluate(
        """() => [...document.querySelectorAll('.lsf-htx-richtext .htx-highlight')]
            .filter(el => !el.parentElement.closest('.htx-highlight'))
            .map(el => [el.textContent, el.getAttribute('data-label') || ''])"""
    )
    return [(text, label.split(":", 1)[-1]) for text, label in shown]


def test_a_reviewer_corrects_the_models_spans_in_label_studio(loop_run, label_studio, page, shots, tmp_path):
    from label_studio_sdk import LabelStudio
    from playwright.sync_api import expect

    from jobs.review_cmd import review_app
    from pipelines.ops import review

    # 1. review push: the uncertain documents of the job's iteration, with the model's spans
    (iteration,) = loop_run.storage.glob("*/iter_01")
    synth = next(loop_run.storage.glob("*/synth_rows"))
    common = ["--url", label_studio.url, "--project", PROJECT]
    admin_env = {"LABEL_STUDIO_API_KEY": label_studio.admin_token}
    push = [
        "push", "--labels", str(iteration / "weak_labels"), "--labels", str(synth),
        "--rows", str(iteration / "train_rows"), "--model-version", "iteration-1", "--budget", "4",
    ]  # fmt: skip
    runner = CliRunner()
    pushed = runner.invoke(review_app, [*push, *common], env=admin_env)
    assert pushed.exit_code == 0, pushed.output
    assert re.search(r"pushed [1-4] task\(s\)", pushed.output), pushed.output
    admin = LabelStudio(base_url=label_studio.url, api_key=label_studio.admin_token)
    project_id = review.find_project(admin, PROJECT)
    assert review.config_labels(admin.projects.get(project_id).label_config) == LABELS
    tasks = list(admin.tasks.list(project=project_id, fields="all"))
    first = tasks[0]  # sequential sampling: the first pushed is the first a reviewer gets
    text = first.data["text"]
    predicted = sorted(
        (r["value"]["start"], r["value"]["end"], r["value"]["labels"][0]) for r in first.predictions[0].result
    )
    assert len(predicted) >= 2, predicted  # something to relabel and something to delete
    assert all(label in LABELS for *_, label in predicted)

    # 2. the reviewer logs in and opens the queue
    page.goto(f"{label_studio.url}/user/login/")
    page.fill("input[name=email]", ANNOTATOR[0])
    page.fill("input[name=password]", ANNOTATOR[1])
    page.get_by_role("button", name=re.compile("log in", re.I)).click()
    page.goto(f"{label_studio.url}/projects/{project_id}/data")
    page.get_by_role("button", name=re.compile("label all tasks", re.I)).click()
    expect(page.locator(".lsf-htx-richtext")).to_contain_text(text[:40], timeout=60_000)

    # the model's spans are there, each with its label
    shown = spans_in_text(page)
    assert sorted(shown) == sorted((text[s:e], label) for s, e, label in predicted), shown
    shots(page, "review-task-opened")

    # 3. relabel the first span, delete the second, mark a new one
    (s0, e0, label0), (s1, e1, _) = predicted[0], predicted[1]
    new_label = next(label for label in LABELS if label != label0)
    # the regions list (one tree item a region: number, label, text): select one, then act on it
    regions = page.get_by_role("treeitem")
    regions.filter(has_text=text[s0:e0]).first.click()
    page.locator(".lsf-label").filter(has_text=new_label).first.click()
    page.keyboard.press("Escape")
    regions.filter(has_text=text[s1:e1]).first.click()
    page.keyboard.press("Backspace")
    expect(regions).to_have_count(len(predicted) - 1)
    covered = {i for s, e, _ in predicted for i in range(s, e)}
    word = next(m for m in re.finditer(r"[A-Z][a-z]+", text) if not covered & set(range(m.start(), m.end())))
    page.locator(".lsf-label").filter(has_text="person").first.click()
    select_text(page, word.start(), word.end())
    expected = sorted(
        [
            (s0, e0, new_label),
            *[(s, e, lab) for s, e, lab in predicted[2:]],
            (word.start(), word.end(), "person"),
        ]
    )
    expect(regions).to_have_count(len(expected))
    shots(page, "review-task-corrected")
    page.get_by_role("button", name="Submit current annotation").click()
    deadline = time.monotonic() + 60
    while not admin.tasks.get(first.id).annotations and time.monotonic() < deadline:
        time.sleep(0.5)
    assert admin.tasks.get(first.id).annotations, "the submission never reached Label Studio"

    # 4. review pull: the submission as a gold row, offsets exactly on the text
    gold = tmp_path / "review_gold.jsonl"
    pulled = runner.invoke(review_app, ["pull", "--output", str(gold), *common], env=admin_env)
    assert pulled.exit_code == 0, pulled.output
    assert "1 added" in pulled.output and "repaired" not in pulled.output, pulled.output
    (row,) = [json.loads(line) for line in gold.read_text().splitlines()]
    assert row["doc_id"] == first.data["doc_id"] and row["text"] == text
    assert row["annotator"] == ANNOTATOR[0]
    assert sorted((s["start"], s["end"], s["label"]) for s in row["spans"]) == expected
    for span in row["spans"]:
        assert text[span["start"] : span["end"]] == text[span["start"] : span["end"]].strip()

    # 5. the next job, given the pulled rows as a gold set, replays them into its iteration's rows
    import pyarrow.parquet as pq

    from pipelines.config import SAMPLE_DIR
    from pipelines.data.gold import job_gold
    from pipelines.loop import stages

    seed_gold = [str(SAMPLE_DIR / "gold_seed.jsonl"), str(gold)]
    config = loop_run.variant(
        tmp_path / "next", synth={}, data={"seed_gold": seed_gold}, loop={"replay": 20.0}
    )
    gold_rows = job_gold(config).seed_rows
    merged = stages.merge_training_rows(
        config, str(iteration / "weak_labels"), str(tmp_path / "next" / "train_rows"), None, gold_rows, 1
    )
    rows = pq.read_table(merged.path).to_pylist()
    replayed = [r for r in rows if r["doc_id"].startswith("gold:review_gold.jsonl:")]
    assert replayed, "the reviewed row is not among the next job's training rows"
    for r in replayed:
        assert r["text"] == text
        assert sorted((s["start"], s["end"], s["label"]) for s in r["spans"]) == expected
