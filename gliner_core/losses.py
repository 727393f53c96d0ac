"""Training losses over span-label scores.

All three ideas from the papers act on the same element-wise binary loss:
  BCE              every (span, label) pair is a binary decision;
  label smoothing  target y becomes y(1 - alpha) + alpha / 2 (self-training on
                   weak labels should not be pushed to 0/1 certainty);
  focal loss       weight (1 - p_t)^gamma and alpha / (1 - alpha) for positives /
                   negatives, so the many easy negatives stop dominating.

Targets may be soft: y in [0, 1], e.g. a weak label's confidence. Then
  1 - p_t = |y - p|                      the distance to the target (quality focal loss,
                                         Li et al. 2020), so the weighted loss is still
                                         smallest at p = y (a linear mix p y + (1-p)(1-y)
                                         would pull p above y);
  class weight = alpha y + (1 - alpha)(1 - y).
For y in {0, 1} both are exactly the hard-target numbers (the same float
operations), so hard targets give bit-identical losses and gradients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def smooth_targets(targets: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    """y(1 - alpha) + alpha/2: 1 -> 1 - alpha/2, 0 -> alpha/2."""
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    return targets * (1.0 - label_smoothing) + 0.5 * label_smoothing


def focal_bce_with_logits(
    logits: torch.Tensor,
    targets: torch.Tensor,
    alpha: float = -1.0,
    gamma: float = 0.0,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Element-wise loss (same shape as logits); targets in [0, 1], hard (0/1) or soft.

    alpha < 0 turns class weighting off; gamma = 0 turns focusing off; with
    both off this is plain binary cross-entropy on (smoothed) targets. Focal
    and class weights use the unsmoothed target y.
    """
    y = targets
    smoothed = smooth_targets(targets, label_smoothing)
    loss = F.binary_cross_entropy_with_logits(logits, smoothed, reduction="none")
    if gamma > 0:
        p = torch.sigmoid(logits)
        p_t = p * y + (1 - p) * (1 - y)  # hard y: the probability given to the true class
        # 1 - p_t equals |y - p| for y in {0, 1}; this float expression is kept for them
        # (bit-identical to hard-target training), the distance for soft targets
        miss = torch.where((y == 0) | (y == 1), 1 - p_t, (y - p).abs())
        loss = loss * miss**gamma
    if alpha >= 0:
        loss = loss * (alpha * y + (1 - alpha) * (1 - y))
    return loss


def span_loss(
    logits: torch.Tensor,  # (B, L, K, C)
    targets: torch.Tensor,  # (B, L, K, C) 1 (or the span's probability) where span has that label
    span_mask: torch.Tensor,  # (B, L, K) real spans
    label_mask: torch.Tensor,  # (B, C) real labels
    alpha: float = -1.0,
    gamma: float = 0.0,
    label_smoothing: float = 0.0,
    reduction: str = "sum",
    weights: torch.Tensor | None = None,  # (B,) per-example weight, e.g. weak-label confidence
) -> torch.Tensor:
    """Loss over the valid (span, label) pairs only; padding spans and labels count for nothing."""
    loss = focal_bce_with_logits(logits, targets, alpha, gamma, label_smoothing)  # (B, L, K, C)
    valid = span_mask[..., None] & label_mask[:, None, None, :]  # (B, L, K, C)
    return _reduce(loss * valid, valid, reduction, weights)


def token_loss(
    logits: torch.Tensor,  # (B, L, C, 3) start, end, inside logits
    targets: torch.Tensor,  # (B, L, C, 3) 1 (or a probability) where a span starts / ends / covers
    word_mask: torch.Tensor,  # (B, L) real words
    label_mask: torch.Tensor,  # (B, C) real labels
    alpha: float = -1.0,
    gamma: float = 0.0,
    label_smoothing: float = 0.0,
    reduction: str = "sum",
    weights: torch.Tensor | None = None,  # (B,) per-example weight
) -> torch.Tensor:
    """Loss of the token-level model over valid (word, label) pairs; 'mean' divides by their count."""
    loss = focal_bce_with_logits(logits, targets, alpha, gamma, label_smoothing)  # (B, L, C, 3)
    valid = word_mask[:, :, None] & label_mask[:, None, :]  # (B, L, C)
    return _reduce(loss * valid[..., None], valid, reduction, weights)


def _reduce(
    loss: torch.Tensor,  # (B, L, K, C) or (B, L, C, 3) element-wise loss, zero on padding
    valid: torch.Tensor,  # the valid (span or word, label) pairs, whose count 'mean' divides by
    reduction: str,
    weights: torch.Tensor | None,  # (B,) per-example weight
) -> torch.Tensor:
    if weights is not None:
        loss = loss * weights.view(-1, 1, 1, 1)
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.sum() / valid.sum().clamp(min=1)
    raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
