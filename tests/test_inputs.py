"""Bad input gets an empty result or a clear ValueError; long texts are windowed, not cut."""

from __future__ import annotations

import pytest
import torch

from gliner_core import GLiNER
from gliner_core.processing import normalize_labels
from gliner_core.text import split_words


@pytest.fixture(scope="module")
def model(minilm_path):
    torch.manual_seed(0)
    return GLiNER.from_backbone(minilm_path, max_len=40, hidden_size=128)


@pytest.mark.parametrize("text", ["", "   ", "\n\t  \r\n"])
def test_empty_and_blank_texts_give_no_entities(model, text):
    assert model.predict_entities(text, ["person"], threshold=0.0) == []
    assert model.batch_predict_entities([text, "Ada Lovelace"], ["person"], threshold=0.0)[0] == []


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ([], "empty"),
        ("person", "not one string"),
        ([1, 2], "strings"),
        (["person", ""], "blank"),
        (None, "list of strings"),
    ],
)
def test_bad_labels_raise_value_error(model, labels, message):
    with pytest.raises(ValueError, match=message):
        model.predict_entities("Ada Lovelace met Babbage.", labels)


def test_duplicate_labels_are_dropped(model):
    text = "Ada Lovelace met Charles Babbage in London."
    once = model.predict_entities(text, ["person", "city"], threshold=0.0)
    twice = model.predict_entities(text, ["person", "city", "person"], threshold=0.0)
    assert once == twice and once


def test_label_descriptions_prompt_with_description_and_return_name(model):
    out = model.predict_entities("Ada Lovelace", {"PER": "person", "LOC": "city"}, threshold=0.0)
    assert out and {e["label"] for e in out} <= {"PER", "LOC"}


def test_label_longer_than_the_window_is_refused(model):
    with pytest.raises(ValueError, match="fewer or shorter labels"):
        model.predict_entities("Ada Lovelace met Babbage.", ["very " * 600 + "long label"])


@pytest.mark.parametrize("text", [None, 42, b"bytes", ["a list"]])
def test_non_string_text_raises(model, text):
    with pytest.raises(ValueError, match="string"):
        model.predict_entities(text, ["person"])
    with pytest.raises(ValueError, match="string"):
        model.batch_predict_entities(["fine", text], ["person"])


def test_batch_must_be_a_list_and_options_in_range(model):
    with pytest.raises(ValueError, match="list of strings"):
        model.batch_predict_entities("one string", ["person"])
    with pytest.raises(ValueError, match="threshold"):
        model.predict_entities("Ada", ["person"], threshold=1.5)
    with pytest.raises(ValueError, match="batch_size"):
        model.batch_predict_entities(["Ada"], ["person"], batch_size=0)


def test_control_characters_and_odd_unicode_do_not_crash(model):
    text = "\x00\x01 Ada \u200b Lovelace \ufeff and 🎉 in 東京\x7f."
    out = model.predict_entities(text, ["person", "city"], threshold=0.0)
    assert all(text[e["start"] : e["end"]] == e["text"] for e in out)


def test_windows_cover_a_long_text_within_the_encoder_limits(model):
    words = split_words(" ".join(f"word{i} is fine." for i in range(200)))  # 800 words
    windows = model.inputs.windows([words], normalize_labels(["person"]))
    assert len(windows) > 1
    assert all(w.num_words <= model.config.max_len for w in windows)
    assert all(len(w.input_ids) <= model.inputs.max_tokens for w in windows)
    owned = [w.offset + i for w in windows for i in range(w.own_start, w.own_end)]
    assert owned == list(range(len(words)))  # every word owned by exactly one window, in order
    for w in windows:  # a span owned by a window fits in it
        assert w.own_end == w.num_words or w.own_end + model.config.max_width <= w.num_words


def test_token_budget_cuts_windows_before_max_len(tiny_backbone):
    """Windowing and reading the last word: the tiny encoder (MiniLM's tokenizer and 512 positions)
    does it in a second where MiniLM took seven."""
    torch.manual_seed(0)
    model = GLiNER.from_backbone(tiny_backbone, max_len=384, hidden_size=64)
    words = split_words(" ".join(["Pneumonoultramicroscopicsilicovolcanoconiosis"] * 300))
    windows = model.inputs.windows([words], normalize_labels(["disease"]))
    assert len(windows) > 1
    assert all(len(w.input_ids) <= model.inputs.max_tokens for w in windows)
    out = model.predict_entities(words.text, ["disease"], threshold=0.0)
    assert max(e["end"] for e in out) == len(words.text)  # the last word was read


def test_save_and_reload_keeps_predictions(model, tmp_path):
    text = "Ada Lovelace met Charles Babbage in London."
    before = model.predict_entities(text, ["person", "city"], threshold=0.0)
    model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "gliner_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    assert (
        GLiNER.from_pretrained(tmp_path).predict_entities(text, ["person", "city"], threshold=0.0) == before
    )


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        GLiNER.from_pretrained(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="gliner_config.json"):
        GLiNER.from_pretrained(tmp_path)
