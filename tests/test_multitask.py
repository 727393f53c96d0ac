"""Multi-task helpers vs the official `gliner.multitask` pipelines, on one random token-level checkpoint."""

from __future__ import annotations

import sys
import types
import warnings

import pytest

from gliner_core import GLiNER, tasks
from tests.official import build_official, load_official
from tests.test_parity import TEXTS

pytestmark = pytest.mark.parity

DOCS = [TEXTS[0], TEXTS[1], TEXTS[3], TEXTS[9]]


@pytest.fixture(scope="module")
def models(tmp_path_factory, minilm_path):
    # heads calibrated on the task labels, so that every task finds something to compare
    prompted = [tasks.prompted("Find:", d) for d in DOCS]
    probe = [(prompted, [label]) for label in ("answer", "match", "summary")] + [(DOCS, ["named entity"])]
    official = build_official(
        minilm_path, seed=4, span_mode="token_level", hidden_size=256, max_len=96, probe=probe
    )
    directory = tmp_path_factory.mktemp("official_multitask")
    official.save_pretrained(directory)
    return load_official(directory), GLiNER.from_pretrained(directory)


@pytest.fixture(scope="module")
def multitask():
    # gliner.multitask imports `evaluate` (for its evaluate() methods only); it is not a dependency here
    sys.modules.setdefault("evaluate", types.ModuleType("evaluate"))
    import gliner.multitask

    return gliner.multitask


def official_spans(
    official, instructions: list[str], texts: list[str], labels, threshold: float
) -> list[list]:
    """The official model on the official prompt, spans inside the text only, offsets into the text."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = official.inference(
            [tasks.prompted(i, t) for i, t in zip(instructions, texts, strict=True)],
            labels,
            threshold=threshold,
        )
    out = []
    for instruction, entities in zip(instructions, found, strict=True):
        shift = len(instruction) + len(tasks.PROMPT_SEPARATOR)
        out.append(
            [
                (e["start"] - shift, e["end"] - shift, e["text"], e["label"])
                for e in entities
                if e["start"] >= shift
            ]
        )
    return out


def test_question_answering(models, multitask):
    official, ours = models
    question = "Who created the programming language?"
    pipeline = multitask.GLiNERQuestionAnswerer(model=official, device="cpu")
    instruction = tasks.QA_PROMPT.format(question)
    assert pipeline.prepare_texts(DOCS, questions=question) == [tasks.prompted(instruction, t) for t in DOCS]

    answers = tasks.extract_answers(ours, DOCS, question, threshold=0.4)
    expected = official_spans(official, [instruction] * len(DOCS), DOCS, ["answer"], 0.4)
    assert sum(map(len, answers)) > 0
    for text, mine, theirs in zip(DOCS, answers, expected, strict=True):
        assert sorted((a.start, a.end, a.text) for a in mine) == sorted((s, e, t) for s, e, t, _ in theirs)
        assert all(text[a.start : a.end] == a.text and a.question == question for a in mine)
        assert [a.score for a in mine] == sorted((a.score for a in mine), reverse=True)
    # the official pipeline's answers (text and score, best first) contain ours in the same order
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs_pipeline = pipeline(DOCS, questions=question, threshold=0.4)
    for mine, theirs in zip(answers, theirs_pipeline, strict=True):
        in_text = [(p["answer"], round(p["score"], 5)) for p in theirs]
        mine_pairs = [(a.text, round(a.score, 5)) for a in mine]
        assert [p for p in in_text if p in mine_pairs] == mine_pairs

    per_text = tasks.extract_answers(ours, DOCS[:2], [question, "When?"], threshold=0.4)
    assert [(a.start, a.end) for a in per_text[0]] == [(a.start, a.end) for a in answers[0]]
    assert [a.score for a in per_text[0]] == pytest.approx([a.score for a in answers[0]], abs=1e-5)
    with pytest.raises(ValueError, match="questions"):
        tasks.extract_answers(ours, DOCS, ["one", "two"])


def test_open_information_extraction(models, multitask):
    official, ours = models
    instruction = "Find all people and the places they are associated with:"
    pipeline = multitask.GLiNEROpenExtractor(model=official, prompt=instruction, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = pipeline(DOCS, labels=["match"], threshold=0.4)
    shift = len(instruction) + len(tasks.PROMPT_SEPARATOR)
    mine = tasks.open_extract(ours, DOCS, instruction, threshold=0.4)
    assert sum(map(len, mine)) > 0
    for m, t in zip(mine, theirs, strict=True):
        expected = [
            (e["start"] - shift, e["end"] - shift, e["text"], e["label"]) for e in t if e["start"] >= shift
        ]
        assert [(e.start, e.end, e.text, e.label) for e in m] == expected
        assert [e.score for e in m] == pytest.approx([e["score"] for e in t if e["start"] >= shift], abs=1e-5)


def test_summarization(models, multitask):
    official, ours = models
    pipeline = multitask.GLiNERSummarizer(model=official, device="cpu")
    assert pipeline.prepare_texts(DOCS) == [tasks.prompted(tasks.SUMMARY_PROMPT, t) for t in DOCS]
    summaries = tasks.summarize(ours, DOCS)  # the official default threshold, 0.25
    expected = official_spans(official, [tasks.SUMMARY_PROMPT] * len(DOCS), DOCS, ["summary"], 0.25)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs_pipeline = pipeline(DOCS)
    assert any(s.spans for s in summaries)
    for summary, theirs, joined in zip(summaries, expected, theirs_pipeline, strict=True):
        assert [(s.start, s.end, s.text) for s in summary.spans] == [(s, e, t) for s, e, t, _ in theirs]
        assert summary.text == " ".join(s.text for s in summary.spans)
        assert joined.endswith(summary.text)  # the official summary may also quote the instruction


def test_relation_extraction(models, multitask):
    official, ours = models
    relations = ["founded by", "located in"]
    pipeline = multitask.GLiNERRelationExtractor(model=official, device="cpu", return_index=True)
    # step 1, NER on the bare text: the same heads (the official pipeline keeps them in a set)
    entities = ours.batch_predict_entities(DOCS, ["named entity"], threshold=0.5)
    heads = [list(dict.fromkeys(e["text"] for e in found)) for found in entities]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        their_entities = official.inference(DOCS, ["named entity"], threshold=0.5)
        assert [set(h) for h in heads] == [{e["text"] for e in found} for found in their_entities]
        # step 2 with the same labels (the official set gives them in an arbitrary order; pass ours)
        labels = [[f"{h} <> {r}" for r in relations for h in text_heads] for text_heads in heads]
        official_labels = pipeline.prepare_source_relation(
            [[{"text": h} for h in text_heads] for text_heads in heads], relations
        )
        assert [sorted(x) for x in labels] == [sorted(x) for x in official_labels]
        theirs = pipeline(DOCS, relations=relations, relation_labels=labels, rel_threshold=0.4)
    mine = tasks.extract_relations(ours, DOCS, relations, rel_threshold=0.4)
    assert sum(map(len, mine)) > 0
    for text, m, t in zip(DOCS, mine, theirs, strict=True):
        expected = [(r["source"], r["relation"], r["start"], r["end"]) for r in t if r["start"] >= 0]
        assert [(r.head, r.relation, r.tail.start, r.tail.end) for r in m] == expected
        assert all(text[r.tail.start : r.tail.end] == r.tail.text for r in m)
    given = tasks.extract_relations(ours, DOCS, relations, heads=heads, rel_threshold=0.4)
    assert [[(r.head, r.relation, r.tail.start) for r in g] for g in given] == [
        [(r.head, r.relation, r.tail.start) for r in m] for m in mine
    ]
    with pytest.raises(ValueError, match="relations"):
        tasks.extract_relations(ours, DOCS, "founded by")


def test_open_ner_with_descriptions(models):
    _, ours = models
    described = {"PER": "person", "ORG": "organization", "LOC": "location"}
    found = tasks.open_ner(ours, DOCS, described, threshold=0.4)
    plain = ours.batch_predict_entities(DOCS, described, threshold=0.4)
    assert [[(e.start, e.end, e.label, e.score) for e in r] for r in found] == [
        [(e["start"], e["end"], e["label"], e["score"]) for e in r] for r in plain
    ]
    assert {e.label for r in found for e in r} <= set(described)
