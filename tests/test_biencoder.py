"""Bi-encoder and poly-encoder: parity with the official package, label vectors and their cache, training."""

from __future__ import annotations

import random

import pytest
import torch

from gliner_core import GLiNER
from gliner_core.model import BiEncoderSpanModel, BiEncoderTokenModel
from gliner_core.processing import normalize_labels
from gliner_core.text import split_words
from gliner_core.training import TrainingRow, make_training_batch, training_loss
from tests.official import build_official, load_official, official_predict, official_raw_logits
from tests.test_parity import LABELS, TEXTS, assert_same_entities

SHORT = TEXTS[:-1]

ARCHITECTURES = {
    # name: (official config, head scale, our model class)
    "bi_span": ({"hidden_size": 256}, 150.0, BiEncoderSpanModel),
    "bi_token": ({"hidden_size": 256, "span_mode": "token_level"}, 20.0, BiEncoderTokenModel),
    # poly-encoder: fusion heads = the encoder's 12, so hidden_size must divide by 12
    "poly_span": ({"hidden_size": 384, "post_fusion_schema": "l2l-l2t-t2t"}, 50.0, BiEncoderSpanModel),
    "poly_token": (
        {
            "hidden_size": 384,
            "span_mode": "token_level",
            "post_fusion_schema": "l2t-t2l",
            "num_post_fusion_layers": 2,
        },
        20.0,
        BiEncoderTokenModel,
    ),
}


@pytest.fixture(scope="module", params=list(ARCHITECTURES))
def pair(request, tmp_path_factory, minilm_path):
    """(name, official model, ours) loaded from one official checkpoint with random heads."""
    config, scale, _ = ARCHITECTURES[request.param]
    official = build_official(
        minilm_path,
        seed=2,
        head_scale=scale,
        labels_encoder=minilm_path,
        max_len=48,
        probe=(SHORT, LABELS),
        **config,
    )
    directory = tmp_path_factory.mktemp(request.param)
    official.save_pretrained(directory)
    return request.param, load_official(directory), GLiNER.from_pretrained(directory)


def our_scores(model: GLiNER, texts: list[str], labels: list[str]):
    windows = model.inputs.windows([split_words(t) for t in texts], normalize_labels(labels))
    assert len(windows) == len(texts)
    with torch.inference_mode():
        return model._forward(windows, model.encode_labels(labels))


def valid_mask(out):
    return out.span_mask if hasattr(out, "span_mask") else out.word_mask


@pytest.mark.parity
def test_scores_match_official(pair):
    name, official, ours = pair
    assert isinstance(ours.model, ARCHITECTURES[name][2])
    assert hasattr(ours.model, "cross_fuser") == name.startswith("poly")
    theirs = official_raw_logits(official, SHORT, LABELS)
    out = our_scores(ours, SHORT, LABELS)
    assert out.logits.shape == theirs.shape
    diff = (out.logits - theirs).abs()[valid_mask(out)]
    assert diff.max().item() <= 1e-4, f"{name}: max |logit difference| {diff.max().item():.2e}"


@pytest.mark.parity
@pytest.mark.parametrize(
    "options",
    [
        {"threshold": 0.5, "flat_ner": True, "multi_label": False},
        {"threshold": 0.3, "flat_ner": False, "multi_label": False},
        {"threshold": 0.6, "flat_ner": True, "multi_label": True},
    ],
)
def test_entities_match_official(pair, options):
    name, official, ours = pair
    theirs = official_predict(official, SHORT, LABELS, batch_size=4, **options)
    mine = ours.batch_predict_entities(SHORT, LABELS, batch_size=3, **options)
    assert_same_entities(mine, theirs, SHORT)


@pytest.mark.parity
def test_precomputed_label_embeddings_match_official(pair):
    name, official, ours = pair
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        their_vectors = official.encode_labels(LABELS)
        theirs = official.batch_predict_with_embeds(SHORT, their_vectors, LABELS, threshold=0.5)
    vectors = ours.encode_labels(LABELS)
    assert torch.allclose(vectors, their_vectors, atol=1e-5)
    mine = ours.batch_predict_entities(SHORT, LABELS, threshold=0.5, label_embeddings=vectors)
    assert_same_entities(mine, theirs, SHORT)


@pytest.mark.parity
@pytest.mark.parametrize("extra", [{}, {"span_mode": "token_level", "post_fusion_schema": "l2l-l2t-t2t"}])
def test_our_checkpoint_loads_in_official(tmp_path, minilm_path, extra):
    torch.manual_seed(5)
    ours = GLiNER.from_backbone(minilm_path, labels_encoder=minilm_path, max_len=48, hidden_size=384, **extra)
    with torch.no_grad():
        head = (
            ours.model.scorer.out_mlp[3] if hasattr(ours.model, "scorer") else ours.model.prompt_rep_layer[3]
        )
        head.weight.mul_(30.0)
    ours.save_pretrained(tmp_path)
    assert (tmp_path / "labels_tokenizer" / "tokenizer_config.json").is_file()
    official = load_official(tmp_path)
    theirs = official_raw_logits(official, SHORT, LABELS)
    out = our_scores(ours, SHORT, LABELS)
    assert (out.logits - theirs).abs()[valid_mask(out)].max().item() <= 1e-4
    for threshold in (0.5, 0.3):
        assert_same_entities(
            ours.batch_predict_entities(SHORT, LABELS, threshold=threshold),
            official_predict(official, SHORT, LABELS, threshold=threshold),
            SHORT,
        )
    reloaded = GLiNER.from_pretrained(tmp_path)
    assert type(reloaded.model) is type(ours.model)
    assert reloaded.batch_predict_entities(SHORT, LABELS, threshold=0.3) == ours.batch_predict_entities(
        SHORT, LABELS, threshold=0.3
    )


@pytest.fixture(scope="module")
def bi(minilm_path):
    torch.manual_seed(3)
    model = GLiNER.from_backbone(minilm_path, labels_encoder=minilm_path, hidden_size=384, max_len=48)
    with torch.no_grad():
        model.model.prompt_rep_layer[3].weight.mul_(30.0)
    return model


def test_label_vectors_are_cached(bi, monkeypatch):
    calls: list[int] = []
    original = bi.model.encode_labels

    def counting(input_ids, attention_mask):
        calls.append(input_ids.size(0))
        return original(input_ids, attention_mask)

    monkeypatch.setattr(bi.model, "encode_labels", counting)
    bi.clear_label_cache()
    labels = [f"label number {i}" for i in range(30)]
    first = bi.batch_predict_entities(SHORT[:4], labels, batch_size=2)
    assert sum(calls) == 30  # every label once, not once per batch of texts
    assert bi.batch_predict_entities(SHORT[:4], labels, batch_size=2) == first
    bi.batch_predict_entities(SHORT[:2], labels[:10] + ["a new label"])
    assert sum(calls) == 31  # only the new label
    vectors = bi.encode_labels(labels)
    assert vectors.shape == (30, 384) and sum(calls) == 31
    assert bi.batch_predict_entities(SHORT[:4], labels, batch_size=2, label_embeddings=vectors) == first

    # changing the label encoder's weights (an optimiser step, a reload) drops the cache
    layer = bi.model.token_rep_layer.labels_encoder.model.encoder.layer[0].output.dense
    with torch.no_grad():
        layer.bias.add_(0.5)
    try:
        changed = bi.encode_labels(labels)
        assert sum(calls) == 61
        assert not torch.allclose(changed, vectors)
    finally:
        with torch.no_grad():
            layer.bias.sub_(0.5)
        bi.clear_label_cache()


def test_label_embeddings_errors(bi, minilm_path):
    with pytest.raises(ValueError, match="num_labels=2"):
        bi.predict_entities(SHORT[0], ["person", "city"], label_embeddings=torch.zeros(3, 384))
    uni = GLiNER.from_backbone(minilm_path, max_len=48, hidden_size=64)
    with pytest.raises(ValueError, match="bi-encoder"):
        uni.encode_labels(["person"])
    with pytest.raises(ValueError, match="bi-encoder"):
        uni.predict_entities(SHORT[0], ["person"], label_embeddings=torch.zeros(1, 64))
    with pytest.raises(ValueError, match="divisible"):
        GLiNER.from_backbone(
            minilm_path, labels_encoder=minilm_path, post_fusion_schema="l2t", hidden_size=500
        )
    with pytest.raises(NotImplementedError, match="post_fusion_schema"):
        GLiNER.from_backbone(minilm_path, labels_encoder=minilm_path, post_fusion_schema="l2t-x2y")


def test_hundreds_of_labels_work_with_a_bi_encoder(bi, minilm_path):
    """The uni-encoder puts labels in its 512-token window; the bi-encoder has no such limit."""
    labels = [f"entity type number {i}" for i in range(200)]
    uni = GLiNER.from_backbone(minilm_path, max_len=48, hidden_size=64)
    with pytest.raises(ValueError, match="labels"):
        uni.batch_predict_entities(SHORT[:2], labels)
    results = bi.batch_predict_entities(SHORT[:3], labels, threshold=0.3)
    assert len(results) == 3 and any(results)
    assert {e["label"] for r in results for e in r} <= set(labels)
    # a label's scores do not depend on the other labels offered (no fusion layers here)
    few, many = our_scores(bi, SHORT[:3], labels[:5]), our_scores(bi, SHORT[:3], labels)
    assert torch.allclose(many.logits[..., :5], few.logits, atol=1e-4)


def test_training_batch_carries_label_texts(bi):
    rows = [
        TrainingRow("Guido van Rossum created Python.", [(0, 16, "person"), (25, 31, "language")]),
        TrainingRow("Ada Lovelace lived in London.", [(0, 12, "person"), (22, 28, "city")]),
    ]
    tb = make_training_batch(rows, bi.inputs, ["person", "city", "language", "date"], random.Random(0), 0)
    batch = tb.batch
    assert (
        batch.labels_input_ids is not None and batch.label_index is not None and batch.label_mask is not None
    )
    distinct = {label for labels in tb.label_sets for label in labels}
    assert batch.labels_input_ids.size(0) == len(distinct)
    assert batch.label_index.shape == (2, max(map(len, tb.label_sets)))
    assert tb.targets.shape[-1] == batch.label_index.size(1)
    # the text encoder sees no prompt: the first word is the token after [CLS]
    assert batch.words_mask[0, 1] == 1
    bi.model.train()
    try:
        training_loss(bi.model, tb, label_smoothing=0.1).backward()
    finally:
        bi.model.eval()
    grad = bi.model.token_rep_layer.labels_encoder.model.embeddings.word_embeddings.weight.grad
    assert grad is not None and grad.abs().sum() > 0  # gradients reach the label encoder
    bi.model.zero_grad(set_to_none=True)
