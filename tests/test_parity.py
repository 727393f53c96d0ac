"""Parity with the official `gliner` package: same weights, same scores, same entities."""

from __future__ import annotations

import pytest
import torch

from gliner_core import GLiNER
from gliner_core.processing import collate, normalize_labels
from gliner_core.text import split_words
from tests.official import build_official_span_model, load_official, official_logits, official_predict

pytestmark = pytest.mark.parity

LABELS = ["person", "organization", "location", "date", "programming language"]

TEXTS = [
    "Barack Obama was born in Honolulu, Hawaii, on August 4, 1961.",
    "Guido van Rossum created Python at CWI in Amsterdam; later he joined Google and Dropbox.",
    "The U.S. Securities and Exchange Commission (SEC) fined Tesla Inc. $20 million in 2018!",
    "Zoë Kravitz and Björk met in Reykjavík — or was it São Paulo? Nobody at Nestlé S.A. knows.",
    "東京 is the capital of Japan, and Ангела Меркель visited it in 2019.",
    "state-of-the-art models like GLiNER-multi_v2.1 run on CPU/GPU (see arXiv:2311.08526).",
    "“Quoted” text, 'single quotes', emoji 🎉🎉 and tabs\tand\nnewlines   in between.",
    "a",
    "Apple",
    "In 1995, James Gosling released Java at Sun Microsystems, while Rasmus Lerdorf wrote PHP "
    "in Greenland and Brendan Eich wrote JavaScript at Netscape in ten days.",
]


@pytest.fixture(scope="module")
def official_dir(tmp_path_factory, minilm_path):
    """An official span model (random heads, fixed seed) saved by the official package."""
    model = build_official_span_model(minilm_path, seed=0, hidden_size=256, max_len=48)
    directory = tmp_path_factory.mktemp("official_span")
    model.save_pretrained(directory)  # pytorch_model.bin, the official default
    return directory


@pytest.fixture(scope="module")
def official(official_dir):
    return load_official(official_dir)


@pytest.fixture(scope="module")
def ours(official_dir):
    return GLiNER.from_pretrained(official_dir)


def assert_same_entities(mine: list[list[dict]], theirs: list[list[dict]], texts: list[str]) -> None:
    """Same spans, labels and order; scores equal up to float32 rounding."""
    for text, a, b in zip(texts, mine, theirs, strict=True):
        assert [(e["start"], e["end"], e["label"], e["text"]) for e in a] == [
            (e["start"], e["end"], e["label"], e["text"]) for e in b
        ], text
        for x, y in zip(a, b, strict=True):
            assert abs(x["score"] - y["score"]) <= 1e-5


def our_logits(model: GLiNER, texts: list[str], labels: list[str]):
    windows = model.inputs.windows([split_words(t) for t in texts], normalize_labels(labels))
    assert len(windows) == len(texts), "these texts must fit one window each"
    batch = collate(windows, model.tokenizer.pad_token_id)
    with torch.inference_mode():
        out = model.model(**batch.model_inputs("cpu"))
    return out.logits, out.span_mask


def test_scores_match_official(official, ours):
    texts = TEXTS[:-1]  # the last text is longer than max_len (48 words)
    theirs, their_mask = official_logits(official, texts, LABELS)
    mine, my_mask = our_logits(ours, texts, LABELS)
    assert mine.shape == theirs.shape
    assert torch.equal(my_mask, their_mask)
    diff = (mine - theirs).abs()[my_mask]  # spans past a text's end are padding in both
    assert diff.max().item() <= 1e-4, f"max |logit difference| {diff.max().item():.2e}"
    probs = torch.sigmoid(mine)[my_mask]
    assert 0.05 < (probs > 0.5).float().mean() < 0.95, "heads should give a spread of scores"


@pytest.mark.parametrize(
    "options",
    [
        {"threshold": 0.5, "flat_ner": True, "multi_label": False},
        {"threshold": 0.3, "flat_ner": False, "multi_label": False},
        {"threshold": 0.7, "flat_ner": True, "multi_label": True},
        {"threshold": 0.6, "flat_ner": False, "multi_label": True},
    ],
)
def test_entities_match_official(official, ours, options):
    texts = TEXTS[:-1]
    theirs = official_predict(official, texts, LABELS, batch_size=4, **options)
    mine = ours.batch_predict_entities(texts, LABELS, batch_size=3, **options)
    assert sum(map(len, theirs)) > 0
    assert_same_entities(mine, theirs, texts)


def test_predict_entities_single_text(official, ours):
    text = TEXTS[1]
    assert_same_entities(
        [ours.predict_entities(text, LABELS)], official_predict(official, [text], LABELS), [text]
    )


def test_long_text_is_windowed_not_truncated(official, ours):
    """The official package reads the first max_len words only; we read all of it.

    Where both read the same words (the start of the text, away from our first
    window's edge) the entities agree; past max_len only ours finds any.
    """
    text = " ".join(TEXTS[1:3] * 6)
    words = split_words(text)
    max_len = ours.config.max_len
    assert len(words) > 3 * max_len
    mine = ours.predict_entities(text, LABELS, threshold=0.5)
    theirs = official_predict(official, [text], LABELS, threshold=0.5)[0]

    first = ours.inputs.windows([words], normalize_labels(LABELS))[0]
    safe_end = words.starts[first.own_end - ours.config.max_width]
    head = [[e for e in mine if e["end"] < safe_end]], [[e for e in theirs if e["end"] < safe_end]]
    assert head[0][0], "expected entities in the first window"
    assert_same_entities(*head, [text])
    covered = words.ends[max_len - 1]
    assert not [e for e in theirs if e["end"] > covered]
    assert [e for e in mine if e["start"] > covered], "nothing found past the first window"
    assert max(e["start"] for e in mine) > words.starts[3 * max_len]


def test_safetensors_checkpoint_from_official(tmp_path, minilm_path):
    official = build_official_span_model(minilm_path, seed=3, num_rnn_layers=0)
    official.save_pretrained(tmp_path, safe_serialization=True)
    ours = GLiNER.from_pretrained(tmp_path)
    assert not hasattr(ours.model, "rnn")
    texts = TEXTS[:4]
    assert_same_entities(
        ours.batch_predict_entities(texts, LABELS), official_predict(official, texts, LABELS), texts
    )


def test_our_checkpoint_loads_in_official(tmp_path, minilm_path):
    torch.manual_seed(7)
    ours = GLiNER.from_backbone(minilm_path, max_len=48)  # hidden_size 512: projection layer present
    with torch.no_grad():
        ours.model.prompt_rep_layer[3].weight.mul_(150.0)
    ours.save_pretrained(tmp_path)
    official = load_official(tmp_path)
    texts = TEXTS[:-1]
    # fresh heads are biased low: a low threshold still leaves a real choice to make
    theirs = official_predict(official, texts, LABELS, threshold=0.05)
    mine = ours.batch_predict_entities(texts, LABELS, threshold=0.05)
    assert sum(map(len, mine)) > 0
    assert_same_entities(mine, theirs, texts)
    reloaded = GLiNER.from_pretrained(tmp_path)
    assert reloaded.batch_predict_entities(texts, LABELS, threshold=0.05) == mine


def test_scores_match_official_with_more_labels_than_dimensions(tmp_path, minilm_path):
    """With C >= D the last span layer is applied to spans, not folded into labels: same scores."""
    official = build_official_span_model(minilm_path, seed=5, hidden_size=32, max_len=48)
    official.save_pretrained(tmp_path)
    ours = GLiNER.from_pretrained(tmp_path)
    labels = [f"{label} {i}" for i in range(8) for label in LABELS][:40]  # 40 labels > 32 dims
    texts = TEXTS[:3]
    theirs, mask = official_logits(official, texts, labels)
    mine, _ = our_logits(ours, texts, labels)
    assert (mine - theirs).abs()[mask].max().item() <= 1e-4
    mine_entities = ours.batch_predict_entities(texts, labels)
    assert_same_entities(mine_entities, official_predict(official, texts, labels), texts)
