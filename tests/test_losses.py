"""Losses by hand: BCE, label smoothing, focal weighting, masking."""

from __future__ import annotations

import math

import pytest
import torch

from gliner_core.losses import focal_bce_with_logits, smooth_targets, span_loss


def bce(p: float, y: float) -> float:
    return -(y * math.log(p) + (1 - y) * math.log(1 - p))


def test_label_smoothing_targets():
    y = torch.tensor([0.0, 1.0])
    assert smooth_targets(y, 0.1).tolist() == pytest.approx([0.05, 0.95])
    assert smooth_targets(y, 0.0).tolist() == [0.0, 1.0]
    with pytest.raises(ValueError):
        smooth_targets(y, 1.0)


def test_plain_bce_and_smoothed_bce():
    logits = torch.tensor([0.0, math.log(3.0)])  # p = 0.5, 0.75
    y = torch.tensor([1.0, 0.0])
    assert focal_bce_with_logits(logits, y).tolist() == pytest.approx([bce(0.5, 1), bce(0.75, 0)])
    smoothed = focal_bce_with_logits(logits, y, label_smoothing=0.2)  # targets 0.9, 0.1
    assert smoothed.tolist() == pytest.approx([bce(0.5, 0.9), bce(0.75, 0.1)])


def test_focal_weights():
    logits = torch.tensor([math.log(3.0), math.log(3.0)])  # p = 0.75
    y = torch.tensor([1.0, 0.0])
    out = focal_bce_with_logits(logits, y, alpha=0.25, gamma=2.0)
    # positive: p_t = 0.75 -> 0.25 * (0.25)^2 * bce; negative: p_t = 0.25 -> 0.75 * (0.75)^2 * bce
    assert out.tolist() == pytest.approx([0.25 * 0.0625 * bce(0.75, 1), 0.75 * 0.5625 * bce(0.75, 0)])


def test_span_loss_masks_padding_spans_and_labels():
    logits = torch.zeros(1, 2, 1, 2)  # (B, L, K, C): every p = 0.5, every pair costs log 2
    targets = torch.zeros(1, 2, 1, 2)
    targets[0, 0, 0, 0] = 1.0
    span_mask = torch.tensor([[[True], [False]]])  # second word is padding
    label_mask = torch.tensor([[True, False]])  # second label is padding
    total = span_loss(logits, targets, span_mask, label_mask, reduction="sum")
    assert total.item() == pytest.approx(math.log(2.0))  # one valid pair
    weighted = span_loss(logits, targets, span_mask, label_mask, weights=torch.tensor([0.5]))
    assert weighted.item() == pytest.approx(0.5 * math.log(2.0))
    mean = span_loss(
        torch.zeros(1, 2, 1, 2),
        torch.zeros(1, 2, 1, 2),
        torch.ones(1, 2, 1, dtype=torch.bool),
        torch.ones(1, 2, dtype=torch.bool),
        reduction="mean",
    )
    assert mean.item() == pytest.approx(math.log(2.0))
