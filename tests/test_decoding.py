"""Decoding by hand: threshold, flat / nested / multi-label greedy selection."""

from __future__ import annotations

import torch

from gliner_core.decoding import Candidates, find_candidates, greedy_select, to_entities
from gliner_core.text import split_words


def cands(*rows: tuple[int, int, int, float]) -> Candidates:
    return Candidates(
        starts=[r[0] for r in rows],
        ends=[r[1] for r in rows],
        labels=[r[2] for r in rows],
        scores=[r[3] for r in rows],
    )


def kept_spans(c: Candidates, kept: list[int]) -> list[tuple[int, int, int]]:
    return [(c.starts[i], c.ends[i], c.labels[i]) for i in kept]


def test_flat_keeps_best_non_overlapping_sorted_by_start():
    c = cands((0, 1, 0, 0.6), (1, 2, 1, 0.9), (3, 3, 0, 0.7), (2, 4, 0, 0.8), (5, 5, 1, 0.55))
    # 0.9 (1,2) first; 0.8 (2,4) overlaps word 2; 0.7 (3,3) free; 0.6 (0,1) overlaps word 1; 0.55 free
    assert kept_spans(c, greedy_select(c, flat_ner=True)) == [(1, 2, 1), (3, 3, 0), (5, 5, 1)]


def test_nested_allows_inclusion_but_not_partial_overlap():
    c = cands((0, 3, 0, 0.9), (1, 2, 1, 0.8), (2, 5, 0, 0.7), (4, 4, 1, 0.6))
    # (1,2) inside (0,3): kept; (2,5) crosses (0,3): dropped; (4,4) disjoint: kept
    assert kept_spans(c, greedy_select(c, flat_ner=False)) == [(0, 3, 0), (1, 2, 1), (4, 4, 1)]
    assert kept_spans(c, greedy_select(c, flat_ner=True)) == [(0, 3, 0), (4, 4, 1)]


def test_multi_label_keeps_the_same_span_with_several_labels():
    c = cands((0, 1, 0, 0.9), (0, 1, 1, 0.8), (1, 2, 2, 0.85))
    assert kept_spans(c, greedy_select(c, flat_ner=True, multi_label=False)) == [(0, 1, 0)]
    assert kept_spans(c, greedy_select(c, flat_ner=True, multi_label=True)) == [(0, 1, 0), (0, 1, 1)]
    assert kept_spans(c, greedy_select(c, flat_ner=False, multi_label=True)) == [(0, 1, 0), (0, 1, 1)]


def test_ties_keep_the_original_order():
    c = cands((0, 0, 0, 0.7), (0, 1, 1, 0.7))
    assert kept_spans(c, greedy_select(c)) == [(0, 0, 0)]


def test_find_candidates_thresholds_and_masks():
    probs = torch.zeros(2, 3, 2, 2)  # (B, L, K, C)
    probs[0, 0, 1, 1] = 0.9  # words 0-1, label 1
    probs[0, 2, 1, 0] = 0.95  # runs past the end: not allowed
    probs[1, 1, 0, 0] = 0.5  # not strictly above the threshold
    probs[1, 2, 0, 1] = 0.51
    allowed = torch.ones(2, 3, 2, dtype=torch.bool)
    allowed[0, 2, 1] = False
    row, start, width, label, score = find_candidates(probs, allowed, threshold=0.5)
    assert row.tolist() == [0, 1] and start.tolist() == [0, 2] and width.tolist() == [1, 0]
    assert label.tolist() == [1, 1]
    assert score.tolist() == [torch.tensor(0.9).item(), torch.tensor(0.51).item()]


def test_to_entities_uses_character_offsets():
    words = split_words("Dr. Ada Lovelace, London")
    c = cands((2, 3, 0, 0.9), (5, 5, 1, 0.8))  # words: Dr . Ada Lovelace , London
    out = to_entities(c, [0, 1], words.text, words.starts, words.ends, ["person", "city"])
    assert out == [
        {"start": 4, "end": 16, "text": "Ada Lovelace", "label": "person", "score": 0.9},
        {"start": 18, "end": 24, "text": "London", "label": "city", "score": 0.8},
    ]
