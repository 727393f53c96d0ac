"""Threshold calibration on a real MiniLM model: gold rows that a lower threshold for one label fits."""

from __future__ import annotations

import pytest
import torch

from gliner_core import GLiNER
from gliner_core.calibration import calibrate_thresholds
from gliner_core.metrics import evaluate_spans

LABELS = ["person", "organization", "location", "date"]
TEXTS = [
    "Marie Curie and Pierre Curie worked in Paris at the University of Paris in 1903.",
    "Guido van Rossum created Python at CWI in Amsterdam; later he joined Google and Dropbox.",
    "On 4 July 1976 the United States declared independence in Philadelphia.",
    "Angela Merkel met Emmanuel Macron in Berlin on Tuesday to discuss the European Union budget.",
    "The World Health Organization said on Monday that Kenya and Uganda reported new cases.",
    "Serena Williams won her first Wimbledon title in 2002, beating her sister Venus in London.",
    "Apple opened its first store in Tokyo in November 2003, two years after the one in Virginia.",
    "Ada Lovelace wrote the first program for Charles Babbage's Analytical Engine in 1843.",
    "Toyota and Honda moved part of their production from Japan to Mexico last spring.",
    "Nelson Mandela was released from Victor Verster Prison near Cape Town on 11 February 1990.",
]


@pytest.fixture(scope="module")
def model(minilm_path):
    """A MiniLM span model whose labels prefer different spans and score on different scales.

    Random label heads score every label alike (one label wins every span), so
    two forward hooks shape the real encoder's span scores: each label's vector
    is a fixed random direction (independent preferences), and each label's
    logits are standardised, then spread around its own centre, as a model
    that is sure of one label and timid about another.
    """
    torch.manual_seed(0)
    gliner = GLiNER.from_backbone(minilm_path, hidden_size=64, max_len=64, max_width=4)
    directions = torch.randn(len(LABELS), 64, generator=torch.Generator().manual_seed(1))
    gliner.model.prompt_rep_layer.register_forward_hook(
        lambda module, inputs, out: directions[: out.size(1)].expand_as(out)
    )
    found = gliner.score_candidates(TEXTS, LABELS, threshold=0.0)
    logits = [
        torch.logit(torch.tensor(label_scores(found, c), dtype=torch.float64)) for c in range(len(LABELS))
    ]
    mean = torch.tensor([x.mean().item() for x in logits])
    std = torch.tensor([x.std().item() for x in logits])
    centre = torch.tensor([0.5, -0.5, 0.0, -2.5])  # person, organization, location, date

    def spread(module, inputs, out):
        C = out.logits.size(-1)
        out.logits = (out.logits - mean[:C]) / std[:C] * 1.2 + centre[:C]
        return out

    gliner.model.register_forward_hook(spread)
    return gliner


def label_scores(found, c: int) -> list[float]:
    return [s for _, cands in found for s, k in zip(cands.scores, cands.labels, strict=True) if k == c]


@pytest.fixture(scope="module")
def gold_thresholds(model) -> dict[str, float]:
    """Each label's 97th percentile score: a different threshold per label."""
    found = model.score_candidates(TEXTS, LABELS, threshold=0.0)
    return {
        name: round(torch.quantile(torch.tensor(label_scores(found, c)), 0.97).item(), 3)
        for c, name in enumerate(LABELS)
    }


def gold_rows(model, threshold) -> list[dict]:
    predictions = model.batch_predict_entities(TEXTS, LABELS, threshold=threshold)
    return [{"text": t, "spans": p} for t, p in zip(TEXTS, predictions, strict=True)]


def report(model, rows, threshold):
    predicted = model.batch_predict_entities([r["text"] for r in rows], LABELS, threshold=threshold)
    gold = [[(s["start"], s["end"], s["label"]) for s in r["spans"]] for r in rows]
    return evaluate_spans(gold, [[(e["start"], e["end"], e["label"]) for e in p] for p in predicted], LABELS)


DEFAULT = 0.7
GRID = [round(0.3 + 0.05 * i, 2) for i in range(14)]  # 0.30 .. 0.95


def test_per_label_thresholds_are_found(model, gold_thresholds):
    """Gold made at a different threshold per label: one shared threshold cannot fit it, calibration can."""
    rows = gold_rows(model, gold_thresholds)
    grid = sorted({*GRID, *gold_thresholds.values()})
    before = report(model, rows, DEFAULT)
    assert min(score.support for score in before.per_label.values()) >= 2, "every label needs gold spans"
    assert before.micro_f1 < 0.9
    low = [name for name, t in gold_thresholds.items() if t < DEFAULT]
    high = [name for name, t in gold_thresholds.items() if t > DEFAULT]
    assert low and high, "the case needs labels whose threshold must go down and labels where it must go up"

    result = calibrate_thresholds(
        model, rows, LABELS, default_threshold=DEFAULT, floor=0.3, grid=grid, min_support=2
    )
    for name in LABELS:
        row = result.per_label[name]
        assert row.calibrated and row.f1_before == pytest.approx(before.per_label[name].f1), name
        assert row.f1_after == 1.0, result.table()
    assert all(result.thresholds[name] < DEFAULT for name in low)
    assert all(result.thresholds[name] > DEFAULT for name in high)
    assert result.micro_f1_before == pytest.approx(before.micro_f1) and result.micro_f1_after == 1.0
    # the cheap re-decoding agrees with a real prediction at the calibrated thresholds
    after = report(model, rows, result.thresholds)
    assert after.micro_f1 == 1.0
    # stored in the model, they are predict's default
    result.apply(model)
    try:
        assert model.batch_predict_entities(TEXTS, LABELS) == model.batch_predict_entities(
            TEXTS, LABELS, threshold=result.thresholds
        )
    finally:
        model.set_thresholds(None)
    assert "person" in result.table() and result.to_dict()["threshold/person"] == result.thresholds["person"]
    assert 1 < result.settings_tried <= 3 * len(LABELS) * len(grid) + 1

    micro = calibrate_thresholds(
        model, rows, LABELS, default_threshold=DEFAULT, floor=0.3, grid=grid, min_support=2, objective="micro"
    )
    assert micro.micro_f1_after == 1.0


def test_floor_and_fallback(model, gold_thresholds):
    rows = gold_rows(model, {**gold_thresholds, "person": 0.0})  # person: all its candidates, below the floor
    support = {name: score.support for name, score in report(model, rows, DEFAULT).per_label.items()}
    rare = min(support, key=support.get)
    assert rare != "person"
    floor = 0.35
    result = calibrate_thresholds(
        model, rows, LABELS, default_threshold=DEFAULT, floor=floor, grid=GRID, min_support=support[rare] + 1
    )
    assert result.thresholds["person"] == floor  # it would go lower if it could
    assert min(result.thresholds.values()) >= floor
    assert result.thresholds[rare] == DEFAULT and not result.per_label[rare].calibrated
    assert result.per_label["person"].calibrated
    # the cheap re-decoding agrees with a real prediction at the calibrated thresholds
    after = report(model, rows, result.thresholds)
    for name in LABELS:
        assert result.per_label[name].f1_after == pytest.approx(after.per_label[name].f1), name


def test_bad_arguments():
    with pytest.raises(ValueError, match="floor"):
        calibrate_thresholds(None, [], LABELS, default_threshold=0.3, floor=0.4)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="objective"):
        calibrate_thresholds(None, [], LABELS, objective="best")  # type: ignore[arg-type]
