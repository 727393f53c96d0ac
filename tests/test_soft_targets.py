"""Soft targets: a span's probability as its training target, in the loss and in both architectures."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F

from gliner_core import GLiNER
from gliner_core.losses import focal_bce_with_logits, smooth_targets, span_loss, token_loss
from gliner_core.training import TrainingRow, make_training_batch, training_loss


def old_focal_bce_with_logits(logits, targets, alpha=-1.0, gamma=0.0, label_smoothing=0.0):
    """The loss before soft targets existed, verbatim: the reference for hard 0/1 targets."""
    hard = targets
    targets = smooth_targets(targets, label_smoothing)
    loss = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    if gamma > 0:
        p = torch.sigmoid(logits)
        p_t = p * hard + (1 - p) * (1 - hard)
        loss = loss * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = loss * (alpha * hard + (1 - alpha) * (1 - hard))
    return loss


@pytest.mark.parametrize(
    ("alpha", "gamma", "smoothing"), [(-1.0, 0.0, 0.0), (0.75, 2.0, 0.0), (0.75, 2.0, 0.1), (0.25, 1.5, 0.2)]
)
def test_hard_targets_give_bit_identical_losses_and_gradients(alpha, gamma, smoothing):
    torch.manual_seed(0)
    logits = (torch.randn(4, 7, 3, 5) * 4).requires_grad_()
    targets = (torch.rand(4, 7, 3, 5) < 0.2).float()
    new = focal_bce_with_logits(logits, targets, alpha, gamma, smoothing)
    (grad_new,) = torch.autograd.grad(new.sum(), logits)
    old = old_focal_bce_with_logits(logits, targets, alpha, gamma, smoothing)
    (grad_old,) = torch.autograd.grad(old.sum(), logits)
    assert torch.equal(new, old)
    assert torch.equal(grad_new, grad_old)


def element_loss_curve(target: float, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss of one element at p = 0.01 .. 0.99 and its gradient w.r.t. the logit."""
    p = torch.linspace(0.01, 0.99, 99, dtype=torch.float64)
    logits = torch.logit(p).requires_grad_()
    loss = focal_bce_with_logits(logits, torch.full_like(p, target), **kwargs)
    (grad,) = torch.autograd.grad(loss.sum(), logits)
    return p[loss.argmin()], grad


@pytest.mark.parametrize("kwargs", [{}, {"alpha": 0.75}, {"alpha": 0.75, "gamma": 2.0}, {"gamma": 1.0}])
def test_soft_target_loss_is_smallest_at_the_target(kwargs):
    """BCE, class weights and focusing all keep the minimum at p = 0.7; the gradient points there."""
    best, grad = element_loss_curve(0.7, **kwargs)
    assert best.item() == pytest.approx(0.7)
    p = torch.linspace(0.01, 0.99, 99, dtype=torch.float64)
    assert (grad[p < 0.69] < 0).all()  # descent raises the logit below 0.7 ...
    assert (grad[p > 0.71] > 0).all()  # ... and lowers it above


def test_soft_target_with_smoothing_moves_the_minimum_to_the_smoothed_target():
    best, _ = element_loss_curve(0.7, label_smoothing=0.2)  # 0.7 * 0.8 + 0.1 = 0.66
    assert best.item() == pytest.approx(0.66)


def test_soft_focal_and_class_weights_match_their_definition():
    p, y, alpha, gamma = 0.4, 0.7, 0.75, 2.0
    logit = torch.logit(torch.tensor([p], dtype=torch.float64))
    out = focal_bce_with_logits(logit, torch.tensor([y], dtype=torch.float64), alpha, gamma)
    as_tensor = lambda v: torch.tensor([v], dtype=torch.float64)  # noqa: E731
    bce = F.binary_cross_entropy(as_tensor(p), as_tensor(y))
    weight = abs(y - p) ** gamma * (alpha * y + (1 - alpha) * (1 - y))
    assert out.item() == pytest.approx(weight * bce.item())


@pytest.fixture(scope="module")
def span_model(minilm_path):
    torch.manual_seed(0)
    return GLiNER.from_backbone(minilm_path, hidden_size=32, max_len=32, max_width=4)


@pytest.fixture(scope="module")
def token_model(minilm_path):
    torch.manual_seed(0)
    return GLiNER.from_backbone(minilm_path, hidden_size=32, max_len=32, span_mode="token_level")


ROW = {
    "text": "Ada Lovelace met Babbage in London.",
    "spans": [
        {"start": 0, "end": 12, "label": "person", "score": 0.7},
        {"start": 17, "end": 24, "label": "person"},  # no score: certain
        {"start": 28, "end": 34, "label": "city", "score": 0.4},
    ],
    "labels": ["person", "city"],
}


def test_from_dict_keeps_span_scores():
    row = TrainingRow.from_dict(ROW)
    assert row.spans == [(0, 12, "person"), (17, 24, "person"), (28, 34, "city")]
    assert row.span_scores == [0.7, 1.0, 0.4]
    assert TrainingRow.from_dict({**ROW, "spans": ROW["spans"][1:2]}).span_scores is None
    with pytest.raises(ValueError, match="not a probability"):
        TrainingRow.from_dict({**ROW, "spans": [{"start": 0, "end": 3, "label": "person", "score": 1.5}]})
    with pytest.raises(ValueError, match="not a probability"):
        TrainingRow("Ada", [(0, 3, "person")], span_scores=[float("nan")])


def cells(tb, label_axis: int) -> dict[tuple, float]:
    """Non-zero target cells, with the label's name in place of its index."""
    out = {}
    for index in tb.targets.nonzero().tolist():
        named = list(index)
        named[label_axis] = tb.label_sets[index[0]][index[label_axis]]
        out[tuple(named)] = round(tb.targets[tuple(index)].item(), 6)
    return out


def test_span_model_soft_targets(span_model):
    row = TrainingRow.from_dict(ROW)
    hard = make_training_batch([row], span_model.inputs, [], random.Random(0), 0)
    soft = make_training_batch([row], span_model.inputs, [], random.Random(0), 0, soft_targets=True)
    # (row, first word, width, label): words Ada Lovelace met Babbage in London .
    assert cells(hard, 3) == {(0, 0, 1, "person"): 1.0, (0, 3, 0, "person"): 1.0, (0, 5, 0, "city"): 1.0}
    assert cells(soft, 3) == {(0, 0, 1, "person"): 0.7, (0, 3, 0, "person"): 1.0, (0, 5, 0, "city"): 0.4}
    # a row without scores gives the same tensor either way, and the default is the old behaviour
    plain = TrainingRow(row.text, row.spans, row.labels)
    a = make_training_batch([plain], span_model.inputs, [], random.Random(0), 0, soft_targets=True)
    assert torch.equal(a.targets, hard.targets)


def test_token_model_soft_targets(token_model):
    row = TrainingRow.from_dict(ROW)
    soft = make_training_batch([row], token_model.inputs, [], random.Random(0), 0, soft_targets=True)
    # (row, word, label, start/end/inside)
    assert cells(soft, 2) == {
        (0, 0, "person", 0): 0.7,
        (0, 1, "person", 1): 0.7,
        (0, 0, "person", 2): 0.7,
        (0, 1, "person", 2): 0.7,
        (0, 3, "person", 0): 1.0,
        (0, 3, "person", 1): 1.0,
        (0, 3, "person", 2): 1.0,
        (0, 5, "city", 0): 0.4,
        (0, 5, "city", 1): 0.4,
        (0, 5, "city", 2): 0.4,
    }


def test_overlapping_soft_spans_keep_the_larger_target(token_model, span_model):
    row = TrainingRow(
        "Ada Lovelace met Babbage.",
        [(0, 12, "person"), (0, 3, "person"), (0, 12, "person")],
        labels=["person"],
        span_scores=[0.6, 0.9, 0.3],
    )
    tok = make_training_batch([row], token_model.inputs, [], random.Random(0), 0, soft_targets=True)
    assert tok.targets[0, 0, 0].tolist() == pytest.approx([0.9, 0.9, 0.9])  # "Ada": start, end, inside
    assert tok.targets[0, 1, 0].tolist() == pytest.approx([0.0, 0.6, 0.6])  # "Lovelace"
    span = make_training_batch([row], span_model.inputs, [], random.Random(0), 0, soft_targets=True)
    assert span.targets[0, 0, 1, 0].item() == pytest.approx(0.6)  # the same span twice: the larger score


@pytest.mark.parametrize("arch", ["span", "token"])
def test_training_on_a_soft_target_moves_its_probability_toward_it(arch, span_model, token_model):
    """Gradient steps on the logits alone: the soft cell's sigmoid goes to 0.7 (from above and below)."""
    model = span_model if arch == "span" else token_model
    row = TrainingRow("Ada Lovelace met Babbage.", [(0, 12, "person")], ["person"], span_scores=[0.7])
    tb = make_training_batch([row], model.inputs, [], random.Random(0), 0, soft_targets=True)
    with torch.no_grad():
        out = model.model(**tb.batch.model_inputs("cpu"))
    cell = (0, 0, 1, 0) if arch == "span" else (0, 0, 0, 0)  # the span / its start mark
    loss_fn = span_loss if arch == "span" else token_loss
    mask = out.span_mask if arch == "span" else out.word_mask
    for start in (-3.0, 3.0):
        logits = out.logits.clone()
        logits[cell] = start
        logits.requires_grad_()
        optimizer = torch.optim.SGD([logits], lr=1.0)
        for _ in range(200):
            loss = loss_fn(logits, tb.targets, mask, out.label_mask, alpha=0.75)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        assert torch.sigmoid(logits[cell]).item() == pytest.approx(0.7, abs=0.02), (arch, start)
    # and the full forward accepts the soft batch
    assert training_loss(model.model, tb, alpha=0.75, gamma=2.0, label_smoothing=0.1).item() > 0
