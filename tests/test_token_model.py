"""The token-level model (`span_mode: token_level`): parity with the official package, decoding, training."""

from __future__ import annotations

import random

import pytest
import torch

from gliner_core import GLiNER
from gliner_core.decoding import find_token_candidates
from gliner_core.losses import token_loss
from gliner_core.model import TokenModel, TokenScores
from gliner_core.processing import collate, normalize_labels
from gliner_core.text import split_words
from gliner_core.training import TrainingRow, make_training_batch, training_loss
from tests.official import build_official, load_official, official_predict, official_raw_logits
from tests.test_parity import LABELS, TEXTS, assert_same_entities

SHORT = TEXTS[:-1]  # each fits one window of max_len 48 words


@pytest.fixture(scope="module")
def official_dir(tmp_path_factory, minilm_path):
    model = build_official(
        minilm_path, seed=1, span_mode="token_level", hidden_size=256, max_len=48, probe=(SHORT, LABELS)
    )
    directory = tmp_path_factory.mktemp("official_token")
    model.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def official(official_dir):
    return load_official(official_dir)


@pytest.fixture(scope="module")
def ours(official_dir):
    return GLiNER.from_pretrained(official_dir)


def our_token_scores(model: GLiNER, texts: list[str], labels: list[str]) -> TokenScores:
    windows = model.inputs.windows([split_words(t) for t in texts], normalize_labels(labels))
    assert len(windows) == len(texts)
    with torch.inference_mode():
        return model.model(**collate(windows, model.tokenizer.pad_token_id).model_inputs("cpu"))


@pytest.mark.parity
def test_config_picks_token_model(ours):
    assert isinstance(ours.model, TokenModel)
    assert ours.config.model_type == "gliner_uni_encoder_token"


@pytest.mark.parity
def test_scores_match_official(official, ours):
    theirs = official_raw_logits(official, SHORT, LABELS)  # (B, L, C, 3)
    out = our_token_scores(ours, SHORT, LABELS)
    assert out.logits.shape == theirs.shape
    diff = (out.logits - theirs).abs()[out.word_mask]
    assert diff.max().item() <= 1e-4, f"max |logit difference| {diff.max().item():.2e}"
    passing = (torch.sigmoid(out.logits)[out.word_mask] > 0.5).float().mean(dim=(0, 1))  # start, end, inside
    assert (passing > 0.1).all() and (passing < 0.9).all(), passing


@pytest.mark.parity
@pytest.mark.parametrize(
    "options",
    [
        {"threshold": 0.5, "flat_ner": True, "multi_label": False},
        {"threshold": 0.3, "flat_ner": False, "multi_label": False},
        {"threshold": 0.4, "flat_ner": True, "multi_label": True},
        {"threshold": 0.35, "flat_ner": False, "multi_label": True},
    ],
)
def test_entities_match_official(official, ours, options):
    theirs = official_predict(official, SHORT, LABELS, batch_size=4, **options)
    mine = ours.batch_predict_entities(SHORT, LABELS, batch_size=3, **options)
    assert sum(map(len, theirs)) > 5
    assert_same_entities(mine, theirs, SHORT)


def calibrate(model: GLiNER, texts: list[str], labels: list[str], scale: float = 20.0) -> None:
    """Spread a fresh token head's logits: ~30% starts and ends, ~70% inside pass 0.5 on `texts`."""
    last = model.model.scorer.out_mlp[3]
    with torch.no_grad():
        last.weight.mul_(scale)
        last.bias.zero_()
        logits = our_token_scores(model, texts, labels).logits.reshape(-1, 3)
        last.bias.copy_(-torch.quantile(logits, torch.tensor([0.7, 0.7, 0.3]), dim=0).diagonal())


@pytest.mark.parity
def test_our_checkpoint_loads_in_official(tmp_path, minilm_path):
    torch.manual_seed(11)
    ours = GLiNER.from_backbone(minilm_path, span_mode="token_level", max_len=48)  # hidden 512: projection
    calibrate(ours, SHORT, LABELS)
    ours.save_pretrained(tmp_path)
    official = load_official(tmp_path)
    assert type(official.model).__name__ == "UniEncoderTokenModel"
    theirs_logits = official_raw_logits(official, SHORT, LABELS)
    out = our_token_scores(ours, SHORT, LABELS)
    assert (out.logits - theirs_logits).abs()[out.word_mask].max().item() <= 1e-4
    for options in ({"threshold": 0.5}, {"threshold": 0.3, "flat_ner": False}):
        mine = ours.batch_predict_entities(SHORT, LABELS, **options)
        assert sum(map(len, mine)) > 5
        assert_same_entities(mine, official_predict(official, SHORT, LABELS, **options), SHORT)
    reloaded = GLiNER.from_pretrained(tmp_path)
    assert isinstance(reloaded.model, TokenModel)
    assert reloaded.batch_predict_entities(SHORT, LABELS) == ours.batch_predict_entities(SHORT, LABELS)


@pytest.mark.parity
def test_long_text_is_windowed(official, ours):
    """Where the official package reads the first max_len words only, every window of ours is read."""
    text = " ".join(TEXTS[1:3] * 6)
    words = split_words(text)
    assert len(words) > 3 * ours.config.max_len
    mine = ours.predict_entities(text, LABELS, threshold=0.3)
    first = ours.inputs.windows([words], normalize_labels(LABELS))[0]
    safe_end = words.starts[first.own_end - ours.config.max_width]
    theirs = official_predict(official, [text], LABELS, threshold=0.3)[0]
    head = [[e for e in mine if e["end"] < safe_end]], [[e for e in theirs if e["end"] < safe_end]]
    assert head[0][0]
    assert_same_entities(*head, [text])
    assert max(e["start"] for e in mine) > words.starts[3 * ours.config.max_len]


def test_token_candidates_rules():
    """start > t, end > t, inside >= t on every word; score is the minimum; order (start, label, end)."""
    t = 0.5
    # one row, 4 words, 2 labels; probabilities [start, end, inside]
    probs = torch.zeros(1, 4, 2, 3)
    probs[0, :, 0] = torch.tensor([[0.9, 0.2, 0.8], [0.1, 0.7, 0.5], [0.6, 0.9, 0.4], [0.1, 0.8, 0.9]])
    probs[0, :, 1] = torch.tensor([[0.6, 0.6, 0.6], [0.2, 0.2, 0.2], [0.2, 0.2, 0.2], [0.2, 0.2, 0.2]])
    words = torch.ones(1, 4, dtype=torch.bool)
    row, first, last, label, score = find_token_candidates(probs, words, words, t)
    got = list(
        zip(first.tolist(), last.tolist(), label.tolist(), [round(s, 4) for s in score.tolist()], strict=True)
    )
    # label 0: (0, 1) passes (inside 0.8, 0.5 >= t; score min(0.9, 0.7, 0.8, 0.5) = 0.5);
    # (0, 2), (0, 3) and (2, *) fail on inside 0.4; label 1: (0, 0) with score 0.6
    assert got == [(0, 1, 0, 0.5), (0, 0, 1, 0.6)]
    # a start may be excluded (another window owns it), and padding words never count
    row, *_ = find_token_candidates(probs, words, torch.zeros_like(words), t)
    assert len(row) == 0
    short = torch.tensor([[True, False, False, False]])
    _, first, last, label, _ = find_token_candidates(probs, short, short, t)
    assert list(zip(first.tolist(), last.tolist(), label.tolist(), strict=True)) == [(0, 0, 1)]


def test_training_targets_and_loss(ours, official):
    rows = [
        TrainingRow(
            "Guido van Rossum created Python.", [(0, 16, "person"), (25, 31, "programming language")]
        ),
        TrainingRow("Nothing here.", [], labels=["person", "date"]),
    ]
    tb = make_training_batch(rows, ours.inputs, ["person", "date", "city"], random.Random(0), 0)
    B, L, C, three = tb.targets.shape
    assert (B, three) == (2, 3) and L == 6
    c = tb.label_sets[0].index("person")
    assert tb.targets[0, :, c].tolist()[:4] == [[1, 0, 1], [0, 0, 1], [0, 1, 1], [0, 0, 0]]
    assert tb.targets[1].sum() == 0

    out = ours.model(**tb.batch.model_inputs("cpu"))
    for options in ({}, {"label_smoothing": 0.1}, {"alpha": 0.75, "gamma": 2.0}):
        loss = training_loss(ours.model, tb, **options)
        manual = token_loss(out.logits, tb.targets, out.word_mask, out.label_mask, **options)
        assert torch.allclose(loss, manual)
        # the official token loss on the same logits and targets
        theirs = official.model.loss(
            out.logits, tb.targets, out.label_mask.long(), out.word_mask.long(), reduction="sum", **options
        )
        assert torch.allclose(loss, theirs, rtol=1e-5), (options, loss.item(), theirs.item())
    smoothed = token_loss(out.logits, tb.targets, out.word_mask, out.label_mask, label_smoothing=0.2)
    hard = token_loss(out.logits, tb.targets * 0.8 + 0.1, out.word_mask, out.label_mask)
    assert torch.allclose(smoothed, hard)
    training_loss(ours.model, tb, reduction="mean").backward()
    assert ours.model.scorer.out_mlp[0].weight.grad is not None
    ours.model.zero_grad(set_to_none=True)
