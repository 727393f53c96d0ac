"""Per-label thresholds: resolution, decoding with a (C,) threshold, storage in the checkpoint."""

from __future__ import annotations

import json

import pytest
import torch

from gliner_core import GLiNER
from gliner_core.decoding import (
    Candidates,
    find_candidates,
    find_token_candidates,
    greedy_select,
    resolve_thresholds,
)
from tests.official import build_official, load_official, official_predict

LABELS = ["person", "organization", "location", "date"]
TEXTS = [
    "Marie Curie and Pierre Curie worked in Paris at the University of Paris in 1903.",
    "Guido van Rossum created Python at CWI in Amsterdam; later he joined Google and Dropbox.",
    "On 4 July 1976 the United States declared independence in Philadelphia.",
]


def test_resolve_thresholds():
    names = ["person", "city", "date"]
    assert resolve_thresholds(0.3, names) == [0.3, 0.3, 0.3]
    assert resolve_thresholds(None, names) == [0.5, 0.5, 0.5]
    assert resolve_thresholds({"city": 0.2}, names) == [0.5, 0.2, 0.5]
    assert resolve_thresholds({"city": 0.2, "other": 0.9}, names, default=0.4) == [0.4, 0.2, 0.4]
    calibrated = {"person": 0.35, "date": 0.7}
    assert resolve_thresholds(None, names, calibrated, default=0.45) == [0.35, 0.45, 0.7]
    assert resolve_thresholds(0.6, names, calibrated) == [0.6] * 3  # a number overrides calibration
    assert resolve_thresholds({"city": 0.1}, names, calibrated) == [0.5, 0.1, 0.5]  # a mapping too
    for bad in (1.5, -0.1, float("nan"), True, "0.5", {"city": 2.0}, {"city": None}, {1: 0.5}):
        with pytest.raises(ValueError, match="threshold"):
            resolve_thresholds(bad, names)


def per_label_reference(run, probs, thresholds):
    """Candidates with per-label thresholds, the slow way: one scalar-threshold run per label."""
    found = set()
    for c, t in enumerate(thresholds):
        row, start, width, label, score = run(probs, t)
        found |= {
            (r, s, w, lab, sc)
            for r, s, w, lab, sc in zip(*(x.tolist() for x in (row, start, width, label, score)), strict=True)
            if lab == c
        }
    return found


def as_set(found):
    return set(zip(*(x.tolist() for x in found), strict=True))


def test_span_candidates_with_per_label_thresholds_match_one_pass_per_label():
    torch.manual_seed(0)
    probs = torch.rand(3, 6, 4, 5)  # (B, L, K, C)
    allowed = torch.rand(3, 6, 4) < 0.8
    thresholds = [0.3, 0.5, 0.7, 0.9, 0.1]
    found = find_candidates(probs, allowed, torch.tensor(thresholds))
    reference = per_label_reference(lambda p, t: find_candidates(p, allowed, t), probs, thresholds)
    assert as_set(found) == reference and len(reference) > 20
    row, start, width, label, _ = found  # still ordered by (row, start, width, label)
    keys = (((row * 6 + start) * 4 + width) * 5 + label).tolist()
    assert keys == sorted(keys)


def test_token_candidates_with_per_label_thresholds_match_one_pass_per_label():
    torch.manual_seed(0)
    probs = torch.rand(2, 7, 3, 3) ** 0.5  # (B, L, C, 3), mostly high so that spans grow
    words = torch.ones(2, 7, dtype=torch.bool)
    words[1, 5:] = False
    thresholds = [0.4, 0.6, 0.8]
    found = find_token_candidates(probs, words, words, torch.tensor(thresholds))
    reference = per_label_reference(lambda p, t: find_token_candidates(p, words, words, t), probs, thresholds)
    assert as_set(found) == reference and len(reference) > 10


@pytest.fixture(scope="module", params=["markerV0", "token_level"])
def model(request, minilm_path, tmp_path_factory):
    """A MiniLM span or token model with random heads whose scores spread over (0, 1)."""
    official = build_official(
        minilm_path, hidden_size=64, max_len=64, span_mode=request.param, probe=(TEXTS, LABELS)
    )
    directory = tmp_path_factory.mktemp(request.param)
    official.save_pretrained(directory)
    return GLiNER.from_pretrained(directory)


def score_quantiles(model, *qs: float, labels=LABELS) -> list[float]:
    found = model.score_candidates(TEXTS, labels, threshold=0.0)
    scores = torch.tensor([s for _, c in found for s in c.scores])
    return [round(q, 3) for q in torch.quantile(scores, torch.tensor(qs)).tolist()]


def spans(predictions):
    return [[(e["start"], e["end"], e["label"], round(e["score"], 6)) for e in p] for p in predictions]


def test_predict_applies_each_labels_threshold_before_greedy_selection(model):
    low, mid, high = score_quantiles(model, 0.5, 0.9, 0.99)
    mapping = {"person": low, "organization": mid, "location": high}  # date: the default, 0.5
    got = model.batch_predict_entities(TEXTS, LABELS, threshold=mapping)
    # reference: every candidate above 0, filtered per label, then the same greedy selection
    limits = [low, mid, high, 0.5]
    expected = []
    for words, c in model.score_candidates(TEXTS, LABELS, threshold=0.0):
        keep = [i for i in range(len(c)) if c.scores[i] > limits[c.labels[i]]]
        sub = Candidates(*([getattr(c, f)[i] for i in keep] for f in ("starts", "ends", "labels", "scores")))
        expected.append(model._entities(sub, greedy_select(sub), words, LABELS))
    assert spans(got) == spans(expected)
    assert sum(map(len, got)) >= 2, "the case must have work to do"
    assert got != model.batch_predict_entities(TEXTS, LABELS, threshold=mid), (
        "the per-label thresholds matter"
    )
    # one threshold for every label, as a number or as a mapping, gives the same entities
    same = {label: mid for label in LABELS}
    assert model.batch_predict_entities(TEXTS, LABELS, threshold=same) == model.batch_predict_entities(
        TEXTS, LABELS, threshold=mid
    )
    assert model.thresholds(LABELS, mapping) == {**mapping, "date": 0.5}


def test_described_labels_are_keyed_by_name(model):
    described = {"person": "a human being", "location": "a place"}
    low, high = score_quantiles(model, 0.5, 0.99, labels=described)
    by_name = model.batch_predict_entities(TEXTS, described, threshold={"person": low, "location": high})
    prompt_keys = model.batch_predict_entities(
        TEXTS, described, threshold={"a human being": low, "a place": high}
    )
    uniform = model.batch_predict_entities(TEXTS, described, threshold=0.5)
    assert prompt_keys == uniform  # a description is not a label name: both labels got the default
    assert by_name != uniform


def test_calibrated_thresholds_round_trip_and_are_the_default(model, tmp_path):
    low, mid, high = score_quantiles(model, 0.5, 0.9, 0.99)
    mapping = {"person": low, "location": high}
    expected = model.batch_predict_entities(
        TEXTS, LABELS, threshold={**mapping, "organization": mid, "date": mid}
    )
    model.set_thresholds(mapping, default=mid)
    try:
        assert model.batch_predict_entities(TEXTS, LABELS) == expected  # threshold=None: the calibrated ones
        model.save_pretrained(tmp_path)
    finally:
        model.set_thresholds(None)
    saved = json.loads((tmp_path / "gliner_config.json").read_text())
    assert saved["label_thresholds"] == mapping and saved["default_threshold"] == mid
    loaded = GLiNER.from_pretrained(tmp_path)
    assert loaded.config.label_thresholds == mapping and loaded.config.default_threshold == mid
    assert loaded.batch_predict_entities(TEXTS, LABELS) == expected
    assert loaded.batch_predict_entities(TEXTS, LABELS, threshold=low) == model.batch_predict_entities(
        TEXTS, LABELS, threshold=low
    )
    with pytest.raises(ValueError, match="threshold"):
        loaded.set_thresholds({"person": 1.2})

    # the official package ignores the new keys and loads the same model
    official = load_official(tmp_path)
    theirs = official_predict(official, TEXTS, LABELS, threshold=low)
    mine = loaded.batch_predict_entities(TEXTS, LABELS, threshold=low)
    assert [[(e["start"], e["end"], e["label"]) for e in p] for p in theirs] == [
        [(e["start"], e["end"], e["label"]) for e in p] for p in mine
    ]
    assert sum(map(len, mine)) > 0
