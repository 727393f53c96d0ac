"""Strict span-level P/R/F1 in gliner_core.metrics."""

from __future__ import annotations

import pytest

from gliner_core.metrics import SpanReport, evaluate_spans

# Three documents, computed by hand:
#   doc 1: PER (0,5) found; LOC (10,15) predicted as (10,14) -> LOC fp 1, fn 1
#   doc 2: ORG (0,4) predicted as PER                       -> ORG fn 1, PER fp 1
#   doc 3: PER (3,8) found (listed twice: counts once); extra LOC (20,25) -> LOC fp 1
# per label:
#   PER  tp 2 fp 1 fn 0: P = 2/3, R = 1,  F1 = 2*(2/3)*1/(5/3) = 0.8, support 2
#   LOC  tp 0 fp 2 fn 1: P = 0,   R = 0,  F1 = 0,                    support 1
#   ORG  tp 0 fp 0 fn 1: P = 0 (0/0), R = 0, F1 = 0,                 support 1
# micro: tp 2 fp 3 fn 2: P = 2/5, R = 2/4, F1 = 2*0.4*0.5/0.9 = 4/9
# macro: P = (2/3)/3 = 2/9, R = 1/3, F1 = 0.8/3
GOLD = [
    [(0, 5, "PER"), (10, 15, "LOC")],
    [(0, 4, "ORG")],
    [(3, 8, "PER")],
]
PRED = [
    [(0, 5, "PER"), (10, 14, "LOC")],
    [(0, 4, "PER")],
    [(3, 8, "PER"), (3, 8, "PER"), (20, 25, "LOC")],
]


@pytest.fixture
def report() -> SpanReport:
    return evaluate_spans(GOLD, PRED)


def test_per_label_counts(report: SpanReport) -> None:
    assert list(report.per_label) == ["LOC", "ORG", "PER"]
    per = report.per_label["PER"]
    assert (per.tp, per.fp, per.fn, per.support) == (2, 1, 0, 2)
    assert per.precision == pytest.approx(2 / 3)
    assert per.recall == pytest.approx(1.0)
    assert per.f1 == pytest.approx(0.8)
    loc = report.per_label["LOC"]
    assert (loc.tp, loc.fp, loc.fn, loc.support) == (0, 2, 1, 1)
    assert (loc.precision, loc.recall, loc.f1) == (0.0, 0.0, 0.0)
    org = report.per_label["ORG"]
    assert (org.tp, org.fp, org.fn, org.support) == (0, 0, 1, 1)
    assert (org.precision, org.recall, org.f1) == (0.0, 0.0, 0.0)


def test_micro_and_macro(report: SpanReport) -> None:
    assert report.micro_precision == pytest.approx(0.4)
    assert report.micro_recall == pytest.approx(0.5)
    assert report.micro_f1 == pytest.approx(4 / 9)
    assert report.macro_precision == pytest.approx(2 / 9)
    assert report.macro_recall == pytest.approx(1 / 3)
    assert report.macro_f1 == pytest.approx(0.8 / 3)


def test_perfect_prediction() -> None:
    report = evaluate_spans(GOLD, GOLD)
    assert report.micro_f1 == 1.0
    assert report.macro_f1 == 1.0
    assert all(score.fp == score.fn == 0 for score in report.per_label.values())


def test_empty_inputs_give_zero_not_error() -> None:
    report = evaluate_spans([], [])
    assert report.micro_f1 == report.macro_f1 == 0.0
    assert report.per_label == {}
    report = evaluate_spans([[], []], [[], []])
    assert report.micro_precision == report.micro_recall == 0.0


def test_nothing_predicted() -> None:
    report = evaluate_spans([[(0, 1, "A")]], [[]])
    assert report.per_label["A"].fn == 1
    assert (report.micro_precision, report.micro_recall, report.micro_f1) == (0.0, 0.0, 0.0)


def test_length_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="documents"):
        evaluate_spans([[]], [[], []])


def test_strict_matching_needs_same_document() -> None:
    # The same span in another document is no match.
    report = evaluate_spans([[(0, 3, "A")], []], [[], [(0, 3, "A")]])
    assert (report.per_label["A"].tp, report.per_label["A"].fp, report.per_label["A"].fn) == (0, 1, 1)


def test_given_labels_restrict_and_order() -> None:
    # Only PER and DATE are scored: LOC/ORG spans are ignored, DATE never occurs.
    report = evaluate_spans(GOLD, PRED, labels=["PER", "DATE"])
    assert list(report.per_label) == ["PER", "DATE"]
    assert report.per_label["DATE"].f1 == 0.0
    assert report.per_label["DATE"].support == 0
    # micro over PER only: tp 2 fp 1 fn 0
    assert report.micro_precision == pytest.approx(2 / 3)
    assert report.micro_recall == pytest.approx(1.0)
    assert report.macro_f1 == pytest.approx(0.8 / 2)


def test_extra_fields_and_lists_are_accepted() -> None:
    # Spans from JSON come as lists; predictions may carry a score after the label.
    report = evaluate_spans([[[0, 5, "PER"]]], [[(0, 5, "PER", 0.93), (0, 5, "PER", 0.5)]])
    assert (report.per_label["PER"].tp, report.per_label["PER"].fp) == (1, 0)


def test_to_dict_is_flat(report: SpanReport) -> None:
    metrics = report.to_dict()
    assert metrics["micro_f1"] == pytest.approx(4 / 9)
    assert metrics["macro_f1"] == pytest.approx(0.8 / 3)
    assert metrics["f1/PER"] == pytest.approx(0.8)
    assert metrics["precision/PER"] == pytest.approx(2 / 3)
    assert metrics["recall/LOC"] == 0.0
    assert metrics["support/ORG"] == 1.0
    assert all(isinstance(value, float) for value in metrics.values())


def test_format_table(report: SpanReport) -> None:
    table = report.format_table()
    lines = table.splitlines()
    assert lines[0].split() == ["label", "precision", "recall", "f1", "support"]
    assert [line.split()[0] for line in lines if not line.startswith("-")] == [
        "label",
        "LOC",
        "ORG",
        "PER",
        "micro",
        "macro",
    ]
    assert lines[3].split() == ["PER", "0.6667", "1.0000", "0.8000", "2"]
    assert lines[-2].split() == ["micro", "0.4000", "0.5000", "0.4444", "4"]
    assert len({len(line) for line in lines}) == 1  # aligned
