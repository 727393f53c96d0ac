"""Review queue: the selection (pure, seeded), Parquet input, gold rows; push and pull against a real
Label Studio server (`label_studio`, one per session, in tests/conftest.py)."""

from __future__ import annotations

import json
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from jobs.review_cmd import review_app
from jobs.settings import UserError
from pipelines.config import ReviewConfig
from pipelines.data.spans import SPANS_TYPE
from pipelines.ops.review import (
    ReviewDocument,
    config_labels,
    document_flags,
    labeling_config,
    merge_gold,
    read_review_documents,
    region_span,
    select_for_review,
)
from tests.label_studio import free_port

LABELS = ["person", "organisation", "location", "date"]


def span(start, end, label, origin, score=0.9):
    return {"start": start, "end": end, "label": label, "score": score, "origin": origin}


def kinds(doc, config=None):
    return sorted(f.kind for f in document_flags(doc, config or ReviewConfig()))


# -- flags ------------------------------------------------------------------------------------------


def test_agreeing_confident_sources_raise_no_flag():
    doc = ReviewDocument("a", [span(0, 5, "person", "gliner"), span(0, 5, "person", "llm")])
    assert kinds(doc) == []


def test_disagreements_label_boundary_and_missed():
    label = ReviewDocument("a", [span(0, 5, "person", "gliner"), span(0, 5, "organisation", "llm")])
    assert kinds(label) == ["label"]
    assert document_flags(label, ReviewConfig())[0].labels == ("organisation", "person")
    boundary = ReviewDocument("b", [span(0, 5, "person", "gliner"), span(0, 9, "person", "llm")])
    assert kinds(boundary) == ["boundary"]
    # the LLM labeled the document (its table has it) but found nothing where GLiNER found a span
    missed = ReviewDocument("c", [span(0, 5, "person", "gliner")], covering=frozenset({"gliner", "llm"}))
    assert kinds(missed) == ["missed"]
    assert "not found by llm" in document_flags(missed, ReviewConfig())[0].detail
    # a source that never saw the document is not a disagreement ...
    assert kinds(ReviewDocument("d", [span(0, 5, "person", "gliner")], covering=frozenset({"gliner"}))) == []
    # ... unless the config says every document was labeled by it
    forced = ReviewConfig(sources=["gliner", "llm"])
    assert kinds(ReviewDocument("d", [span(0, 5, "person", "gliner")]), forced) == ["missed"]
    # origins are sources: two GLiNER prompts disagreeing count too
    prompts = [span(0, 5, "person", "gliner"), span(0, 5, "location", "gliner:descriptions")]
    assert kinds(ReviewDocument("e", prompts)) == ["label"]


def test_uncertain_band_and_low_model_score():
    config = ReviewConfig(uncertain_band=(0.3, 0.7), low_score=0.6)
    rows = [{**span(0, 5, "person", "aggregated"), "score": p} for p in (0.2, 0.5, 0.69, 0.95)]
    flags = document_flags(ReviewDocument("a", [], aggregated=rows), config)
    assert [(f.kind, f.start) for f in flags] == [("uncertain", 0), ("uncertain", 0)]
    assert flags[0].weight == pytest.approx(1.0) and flags[1].weight == pytest.approx(0.62)
    low = [span(0, 5, "person", "gliner:descriptions", 0.55), span(10, 15, "person", "llm", 0.1)]
    flags = document_flags(ReviewDocument("b", low, covering=frozenset()), config)
    assert [(f.kind, f.detail.split()[0]) for f in flags] == [
        ("low_score", "gliner:descriptions:person[0:5]")
    ]


def test_bad_band_is_refused():
    with pytest.raises(ValueError, match="uncertain_band"):
        ReviewConfig(uncertain_band=(0.8, 0.2))


# -- selection --------------------------------------------------------------------------------------


def corpus(n=60, seed=1):
    """Documents with random disagreements, mostly about persons; a few about dates."""
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        label = "date" if i % 10 == 0 else "person"
        spans = [span(0, 5, label, "gliner", rng.uniform(0.5, 1.0))]
        if rng.random() < 0.7:
            spans.append(span(0, rng.choice([5, 7]), rng.choice([label, "organisation"]), "llm"))
        docs.append(ReviewDocument(f"doc-{i:03d}", spans, covering=frozenset({"gliner", "llm"})))
    return docs


def test_selection_is_deterministic_and_order_free():
    config = ReviewConfig(budget=12)
    docs = corpus()
    first = [c.doc_id for c in select_for_review(docs, config, seed=7)]
    shuffled = docs[:]
    random.Random(3).shuffle(shuffled)
    assert [c.doc_id for c in select_for_review(shuffled, config, seed=7)] == first
    assert len(first) == len(set(first)) == 12
    flagless = {d.doc_id for d in docs if not document_flags(d, config)}
    assert flagless and not flagless & set(first)


def test_selection_takes_the_most_uncertain_first_within_a_label():
    docs = [
        ReviewDocument(f"d{i}", [], aggregated=[{**span(0, 5, "person", "agg"), "score": p}])
        for i, p in enumerate([0.32, 0.5, 0.65, 0.45, 0.9])
    ]
    chosen = select_for_review(docs, ReviewConfig(budget=3))
    assert [c.doc_id for c in chosen] == ["d1", "d3", "d2"]  # |p - 0.5| = 0, 0.05, 0.15


def test_selection_spreads_the_budget_across_labels():
    docs = corpus()
    chosen = select_for_review(docs, ReviewConfig(budget=9), seed=0)
    by_priority = sorted(
        (d for d in docs if document_flags(d, ReviewConfig())),
        key=lambda d: -sum(f.weight for f in document_flags(d, ReviewConfig())),
    )[:9]
    turns = {c.turn_label for c in chosen}
    assert {"date", "person", "organisation"} <= turns  # every flagged label gets turns
    dates = {c.doc_id for c in chosen if any("date" in f.labels for f in c.flags)}
    assert len(dates) >= 3
    assert sum(any("date" in f.labels for f in document_flags(d, ReviewConfig())) for d in by_priority) < 3


def test_selection_respects_exclude_and_a_small_pool():
    docs = corpus(20)
    everything = select_for_review(docs, ReviewConfig(budget=100))
    assert len(everything) == sum(1 for d in docs if document_flags(d, ReviewConfig()))
    excluded = {c.doc_id for c in everything[:5]}
    rest = select_for_review(docs, ReviewConfig(budget=100), exclude=excluded)
    assert not excluded & {c.doc_id for c in rest} and len(rest) == len(everything) - 5


# -- Parquet in, gold rows out ----------------------------------------------------------------------


def write_parquet(path, rows, extra=None):
    columns = {
        "doc_id": [r[0] for r in rows],
        "text": [r[1] for r in rows],
        "source": ["test"] * len(rows),
        "spans": pa.array([r[2] for r in rows], type=SPANS_TYPE),
        **(extra or {}),
    }
    pq.write_table(pa.table(columns), path)
    return str(path)


TEXTS = {
    "d1": "Ada Lovelace wrote to Charles Babbage from London in 1843.",
    "d2": "Grace Hopper joined Remington Rand 🚀 in Philadelphia.",
    "d3": "The committee met on Tuesday.",
    "d4": "Alan Turing worked at Bletchley Park.",
    "d5": "Marie Curie lectured in Paris.",
    "d6": "Niels Bohr founded an institute in Copenhagen.",
}


def at(doc_id, surface, label, origin, score=0.9, nth=0):
    text = TEXTS[doc_id]
    start = -1
    for _ in range(nth + 1):
        start = text.index(surface, start + 1)
    return span(start, start + len(surface), label, origin, score)


# (surface, label, score) per document and source
GLINER = {
    "d1": [("Ada Lovelace", "person", 0.9), ("London", "location", 0.55)],
    "d2": [
        ("Grace Hopper", "person", 0.9),
        ("Remington Rand", "location", 0.7),
        ("Philadelphia", "location", 0.9),
    ],
    "d3": [("Tuesday", "date", 0.95)],
    "d4": [("Alan Turing", "person", 0.9), ("Bletchley", "location", 0.8)],
    "d5": [("Marie Curie", "person", 0.9), ("Paris", "location", 0.9)],
    "d6": [("Niels Bohr", "person", 0.9), ("Copenhagen", "location", 0.9)],
}
LLM = {
    "d1": [("Ada Lovelace", "person", 0.9), ("Charles Babbage", "person", 0.9)],
    "d2": [
        ("Grace Hopper", "person", 0.9),
        ("Remington Rand", "organisation", 0.9),
        ("Philadelphia", "location", 0.9),
    ],
    "d3": [("Tuesday", "date", 0.9)],
    "d4": [("Alan Turing", "person", 0.9), ("Bletchley Park", "location", 0.9)],
    "d5": [("Marie Curie", "person", 0.9), ("Paris", "location", 0.9)],
    "d6": [],  # the LLM call failed (status engine_error): not a 'found nothing'
}
AGGREGATED = {  # training rows (d1, d2, d4 were dropped by the merge)
    "d3": [("Tuesday", "date", 0.97)],
    "d5": [("Marie Curie", "person", 0.99), ("Paris", "location", 0.52)],
    "d6": [("Niels Bohr", "person", 0.9), ("Copenhagen", "location", 0.9)],
}


def table_rows(spans_by_doc, origin):
    return [
        (d, TEXTS[d], [at(d, surface, label, origin, score) for surface, label, score in spans])
        for d, spans in spans_by_doc.items()
    ]


def iteration_labels(tmp_path):
    """Weak labels (GLiNER), synth rows (LLM: NER rows, a failed one, another task) and training rows."""
    weak = write_parquet(tmp_path / "weak.parquet", table_rows(GLINER, "gliner"))
    synth_rows = [*table_rows(LLM, "llm"), ("d5", TEXTS["d5"], [at("d5", "Marie", "person", "llm")])]
    synth = write_parquet(
        tmp_path / "synth.parquet",
        synth_rows,
        extra={
            "task": ["ner"] * 6 + ["relations"],  # the last row belongs to another task: ignored
            "status": ["ok", "ok", "ok", "ok", "ok", "engine_error", "ok"],
        },
    )
    rows = write_parquet(tmp_path / "rows.parquet", table_rows(AGGREGATED, "agree"))
    return weak, synth, rows


def test_reads_weak_labels_synth_rows_and_training_rows(tmp_path):
    weak, synth, rows = iteration_labels(tmp_path)
    documents, text_path = read_review_documents([weak, synth], rows)
    by_id = {d.doc_id: d for d in documents}
    assert set(by_id) == set(TEXTS) and text_path["d1"] == weak
    assert by_id["d1"].covering == {"gliner", "llm"}
    assert by_id["d6"].covering == {"gliner"}  # the failed LLM row does not cover it
    assert len(by_id["d5"].spans) == 4  # the relations row is not a NER label
    assert by_id["d1"].aggregated is None and by_id["d5"].aggregated is not None
    flags = {d: sorted(f.kind for f in document_flags(doc, ReviewConfig())) for d, doc in by_id.items()}
    assert flags == {
        "d1": ["low_score", "missed", "missed"],  # London (GLiNER only, unsure), Charles Babbage (LLM only)
        "d2": ["label"],  # Remington Rand: location vs organisation
        "d3": [],
        "d4": ["boundary"],  # Bletchley vs Bletchley Park
        "d5": ["uncertain"],  # Paris at p = 0.52
        "d6": [],
    }
    with pytest.raises(FileNotFoundError, match="labels not found"):
        read_review_documents([str(tmp_path / "missing")])


def test_region_offsets_are_checked_against_the_text():
    text = "We 🚀 met Ada Lovelace in London."
    start = text.index("Ada")
    assert region_span({"start": start, "end": start + 12, "text": "Ada Lovelace"}, text) == (
        start,
        start + 12,
    )
    # UTF-16 offsets (the emoji counts twice in JavaScript)
    assert region_span({"start": start + 1, "end": start + 13, "text": "Ada Lovelace"}, text) == (
        start,
        start + 12,
    )
    # stale offsets: the nearest occurrence of the region's text
    assert region_span({"start": 0, "end": 6, "text": "London"}, text) == (
        text.index("London"),
        len(text) - 1,
    )
    assert region_span({"start": 0, "end": 4, "text": "Paris"}, text) is None


def test_gold_rows_merge_by_doc_id(tmp_path):
    gold = tmp_path / "gold.jsonl"
    gold.write_text(json.dumps({"text": "no id", "spans": []}) + "\n")
    old = {"doc_id": "a", "text": "t", "spans": [], "annotated_at": "2026-01-01T00:00:00Z"}
    assert merge_gold(gold, [old, {**old, "doc_id": "b"}]) == (2, 0)
    newer = {**old, "spans": [{"start": 0, "end": 1, "label": "x"}], "annotated_at": "2026-02-01T00:00:00Z"}
    stale = {
        **old,
        "doc_id": "b",
        "spans": [{"start": 0, "end": 1, "label": "y"}],
        "annotated_at": "2025-01-01",
    }
    assert merge_gold(gold, [newer, stale]) == (0, 1)
    rows = [json.loads(line) for line in gold.read_text().splitlines()]
    assert [r.get("doc_id") for r in rows] == [None, "a", "b"]
    assert rows[1]["spans"] == newer["spans"] and rows[2]["spans"] == []
    assert [p.name for p in tmp_path.iterdir()] == ["gold.jsonl"]  # no temporary file left


def test_labeling_config_escapes_labels():
    labels = ["person", 'say "hi" & <b>', "l'été"]
    assert config_labels(labeling_config(labels)) == labels


def test_cli_dry_run_selects_without_a_server(tmp_path):
    weak, synth, rows = iteration_labels(tmp_path)
    args = ["push", "--labels", weak, "--labels", synth, "--rows", rows, "--budget", "3", "--dry-run"]
    result = CliRunner().invoke(review_app, args)
    assert result.exit_code == 0, result.output
    assert "3 of 6 documents selected" in result.output
    # the selection lines are indented; Ray's own lines ("(raylet) ...") may be interleaved in the output
    selected = [line.split()[0] for line in result.output.splitlines() if line.startswith("  ")]
    assert len(selected) == 3 and set(selected) <= {"d1", "d2", "d4", "d5"}


def test_cli_errors_are_one_line(tmp_path):
    weak, _, _ = iteration_labels(tmp_path)
    missing = CliRunner().invoke(review_app, ["push", "--labels", str(tmp_path / "nope"), "--dry-run"])
    assert isinstance(missing.exception, UserError) and "labels not found" in str(missing.exception)
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    down = CliRunner().invoke(
        review_app, ["push", "--labels", weak, "--url", url], env={"LABEL_STUDIO_API_KEY": "x" * 40}
    )
    assert isinstance(down.exception, UserError) and "cannot reach Label Studio" in str(down.exception)
    no_key = CliRunner().invoke(review_app, ["pull", "--output", str(tmp_path / "g.jsonl")], env={})
    assert isinstance(no_key.exception, UserError) and "LABEL_STUDIO_API_KEY" in str(no_key.exception)


# -- against a real Label Studio ----------------------------------------------------------------------


@pytest.mark.integration
def test_push_annotate_pull_against_label_studio(label_studio, tmp_path, monkeypatch):
    from label_studio_sdk import LabelStudio

    from pipelines.ops import review

    monkeypatch.setattr(review.label_studio, "PAGE_SIZE", 2)  # pages through the task list
    weak, synth, rows = iteration_labels(tmp_path)
    project = "review-e2e"
    common = ["--url", label_studio.url, "--project", project]
    admin_env = {"LABEL_STUDIO_API_KEY": label_studio.admin_token}
    runner = CliRunner()
    push = ["push", "--labels", weak, "--labels", synth, "--rows", rows, "--model-version", "iter-01"]
    result = runner.invoke(review_app, [*push, "--budget", "3", *common], env=admin_env)
    assert result.exit_code == 0, result.output
    assert "pushed 3 task(s)" in result.output and "4 flagged documents" in result.output
    again = runner.invoke(review_app, [*push, "--budget", "3", *common], env=admin_env)
    assert "pushed 1 task(s)" in again.output and "3 already in the project" in again.output  # no duplicates

    admin = LabelStudio(base_url=label_studio.url, api_key=label_studio.admin_token)
    project_id = review.find_project(admin, project)
    assert project_id is not None
    assert review.config_labels(admin.projects.get(project_id).label_config) == LABELS
    tasks = {t.data["doc_id"]: t for t in admin.tasks.list(project=project_id, fields="all")}
    assert set(tasks) == {"d1", "d2", "d4", "d5"}
    d2 = tasks["d2"]
    assert d2.data["text"] == TEXTS["d2"] and d2.data["review_flags"] == {"label": 1}
    (prediction,) = d2.predictions
    assert prediction.model_version == "iter-01" and 0 < prediction.score <= 1
    regions = {(r["value"]["text"], r["value"]["labels"][0]) for r in prediction.result}
    # no training row for d2: the sources' spans resolved by score (the LLM's 0.9 beats GLiNER's 0.7)
    assert regions == {
        ("Grace Hopper", "person"),
        ("Remington Rand", "organisation"),
        ("Philadelphia", "location"),
    }
    for r in prediction.result:
        assert TEXTS["d2"][r["value"]["start"] : r["value"]["end"]] == r["value"]["text"]

    # the annotator corrects two documents (d2 holds an emoji before its last entities) and skips one
    annotator = LabelStudio(base_url=label_studio.url, api_key=label_studio.annotator_token)

    def region(doc_id, surface, label):
        s = at(doc_id, surface, label, "gold")
        value = {"start": s["start"], "end": s["end"], "text": surface, "labels": [label]}
        return {"from_name": "label", "to_name": "text", "type": "labels", "value": value}

    corrected = {
        "d2": [region("d2", "Grace Hopper", "person"), region("d2", "Remington Rand", "organisation"),
               region("d2", "Philadelphia", "location")],
        "d4": [region("d4", "Alan Turing", "person"), region("d4", "Bletchley Park", "location")],
    }  # fmt: skip
    for doc_id, result in corrected.items():
        annotator.annotations.create(id=tasks[doc_id].id, result=result, lead_time=12.5)
    annotator.annotations.create(id=tasks["d1"].id, result=[], was_cancelled=True)  # skipped

    gold = tmp_path / "review_gold.jsonl"
    pulled = runner.invoke(review_app, ["pull", "--output", str(gold), *common], env=admin_env)
    assert pulled.exit_code == 0, pulled.output
    assert "2 of 4 task(s) annotated -> 2 gold row(s), 5 span(s); 2 added" in pulled.output
    rows_out = {r["doc_id"]: r for r in map(json.loads, gold.read_text().splitlines())}
    assert set(rows_out) == {"d2", "d4"}
    for doc_id, row in rows_out.items():
        assert row["text"] == TEXTS[doc_id] and row["annotator"] == label_studio.annotator_email
        assert row["annotated_at"].startswith("20")
        surfaces = [(row["text"][s["start"] : s["end"]], s["label"]) for s in row["spans"]]
        expected = [(r["value"]["text"], r["value"]["labels"][0]) for r in corrected[doc_id]]
        assert surfaces == expected
    assert rows_out["d2"]["spans"][2]["start"] == TEXTS["d2"].index("Philadelphia")  # code points, after 🚀

    # the annotator revises d4: a second pull updates its row instead of adding one
    annotation = annotator.annotations.list(id=tasks["d4"].id)[0]
    annotator.annotations.update(id=annotation.id, result=corrected["d4"][:1])
    again = runner.invoke(review_app, ["pull", "--output", str(gold), *common], env=admin_env)
    assert "0 added, 1 updated" in again.output, again.output
    lines = gold.read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["spans"] == [{"start": 0, "end": 11, "label": "person"}]

    bad = runner.invoke(
        review_app, ["pull", "--output", str(gold), *common], env={"LABEL_STUDIO_API_KEY": "f" * 40}
    )
    assert isinstance(bad.exception, UserError) and "refused the API key" in str(bad.exception)
