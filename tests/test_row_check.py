"""`check_training_rows`: what rows will teach, counted before training."""

from __future__ import annotations

import random

from gliner_core.config import GLiNERConfig
from gliner_core.training import TrainingRow, check_training_rows

SPAN = GLiNERConfig(model_name="x", max_width=3, max_len=12)
TOKEN = GLiNERConfig(model_name="x", max_width=3, max_len=12, span_mode="token_level")

TEXT = "Ada Lovelace met Charles Babbage in London in 1833."
#       0   4        13  17      25      33 36     43 46


def span(start, end, label="person", **extra):
    return {"start": start, "end": end, "label": label, **extra}


def test_counts_each_span_once_by_its_fate():
    rows = [
        {
            "text": TEXT,
            "spans": [
                span(0, 12),  # Ada Lovelace: positive
                span(17, 32),  # Charles Babbage: positive
                span(1, 12),  # starts inside "Ada": misaligned, still trained (on "Ada Lovelace")
                span(36, 42, "city"),  # London, but the row offers no "city"
                span(0, 32, "group"),  # 5 words > max_width 3
                span(40, 99),  # past the end of the text
                span(12, 13),  # a single space: no word
            ],
            "labels": ["person", "group", "date"],
        },
        {"text": "   ", "spans": []},
        {"text": "Nothing here.", "spans": [], "labels": ["person"]},
        TrainingRow(
            " ".join(["word"] * 20) + " Ada", [(100, 103, "person")], labels=None
        ),  # word 20 >= max_len
    ]
    check = check_training_rows(rows, SPAN)
    assert (check.rows, check.rows_with_words, check.rows_with_positives) == (4, 3, 1)
    assert check.spans == 8
    assert check.positive_spans == 3
    assert check.misaligned_spans == 1
    assert check.unoffered_spans == 1 and check.unoffered_labels == {"city": 1}
    assert check.too_wide_spans == 1
    assert check.out_of_range_spans == 1
    assert check.empty_spans == 1
    assert check.truncated_spans == 1
    assert check.positives_per_label == {"person": 3}
    assert (
        sum(
            getattr(check, name)
            for name in (
                "positive_spans",
                "unoffered_spans",
                "too_wide_spans",
                "out_of_range_spans",
                "empty_spans",
            )
        )
        + check.truncated_spans
        == check.spans
    )
    assert check.problems() == []
    assert "8 spans: 3 positive" in check.summary() and check.to_dict()["positive_spans"] == 3
    # the token model has no width limit: the wide span is a positive there
    token = check_training_rows(rows, TOKEN)
    assert token.too_wide_spans == 0 and token.positive_spans == 4


def test_no_positive_span_is_a_problem():
    rows = [
        {"text": TEXT, "spans": [span(36, 42, "city")], "labels": ["person"]},
        {"text": "Hi.", "spans": []},
    ]
    check = check_training_rows(rows, SPAN)
    (problem,) = check.problems()
    assert problem.startswith(
        "no positive span in 2 rows (1 spans given: 1 with a label the row does not offer)"
    )
    assert check_training_rows([], SPAN).problems() == ["no training rows"]
    assert (
        "none of the 1 rows has any word"
        in check_training_rows([{"text": " ", "spans": []}], SPAN).problems()[0]
    )


def test_offsets_that_are_not_character_offsets_are_a_problem():
    """Byte offsets of a non-ASCII text land inside words: most spans misaligned."""
    rng = random.Random(0)
    names = ["Zoë Kravitz", "Björk", "São Paulo", "Nestlé", "Reykjavík", "Ångström"]
    rows = []
    for _ in range(20):
        picked = rng.sample(names, 3)
        text = "Über " + " und ".join(picked) + " sprachen."
        raw = text.encode()
        spans = []
        for name in picked:
            start = raw.index(name.encode())
            spans.append(span(start, start + len(name.encode())))  # bytes, not characters
        rows.append({"text": text, "spans": spans})
    check = check_training_rows(rows, SPAN)
    assert check.misaligned_fraction > 0.5
    assert any("inside a word" in p for p in check.problems())
    assert check_training_rows(rows, SPAN).problems(max_misaligned_fraction=1.0) == []


def test_bad_scores_and_malformed_spans_are_counted_not_raised():
    rows = [
        {
            "text": TEXT,
            "spans": [
                span(0, 12, score=0.8),
                span(17, 32, score=1.7),
                span(36, 42, score=float("nan")),
                {"start": "a", "end": 3, "label": "person"},
                ["not", "a", "dict"],
            ],
        }
    ]
    check = check_training_rows(rows, SPAN)
    assert check.bad_scores == 2 and check.out_of_range_spans == 2 and check.positive_spans == 3
    assert any("not a probability" in p for p in check.problems())
