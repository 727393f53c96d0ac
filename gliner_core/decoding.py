"""From span-label scores to entities: threshold, then greedy selection.

Candidates are every (span, label) whose probability passes the threshold.
They are taken best-first; a candidate is kept unless it clashes with one
already kept:
  flat    any overlap clashes;
  nested  partial overlap clashes, one span inside another does not;
  multi_label  the same span may carry several labels.
Ties keep the candidates' original order (by start, width, label), as the
official package does, and the kept spans come out sorted by start.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass
class Candidates:
    """Spans above threshold, in word indices (end inclusive); parallel lists."""

    starts: list[int]
    ends: list[int]
    labels: list[int]  # index into the label set
    scores: list[float]

    @classmethod
    def empty(cls) -> Candidates:
        return cls([], [], [], [])

    def extend(self, other: Candidates) -> None:
        self.starts += other.starts
        self.ends += other.ends
        self.labels += other.labels
        self.scores += other.scores

    def __len__(self) -> int:
        return len(self.scores)


def find_candidates(
    probs: torch.Tensor, allowed: torch.Tensor, threshold: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Vectorised threshold over a whole batch.

    probs: (B, L, K, C) probabilities; allowed: (B, L, K) spans that may be reported.
    Returns row, start, width, label, score tensors of the candidates, ordered
    by (row, start, width, label).
    """
    hits = (probs > threshold) & allowed[..., None]
    row, start, width, label = hits.nonzero(as_tuple=True)
    return row, start, width, label, probs[row, start, width, label]


def greedy_select(candidates: Candidates, flat_ner: bool = True, multi_label: bool = False) -> list[int]:
    """Indices of the kept candidates, sorted by start (stable)."""
    order = sorted(range(len(candidates)), key=lambda i: -candidates.scores[i])
    starts, ends = candidates.starts, candidates.ends
    kept: list[int] = []
    if flat_ner:
        # A kept flat span never overlaps another, so a word-occupancy set answers
        # "does this overlap anything kept?"; an identical span is only allowed
        # (multi_label) if its twin is already kept.
        taken: set[int] = set()
        kept_spans: set[tuple[int, int]] = set()
        for i in order:
            span = (starts[i], ends[i])
            if span in kept_spans:
                if multi_label:
                    kept.append(i)
                continue
            if any(w in taken for w in range(span[0], span[1] + 1)):
                continue
            taken.update(range(span[0], span[1] + 1))
            kept_spans.add(span)
            kept.append(i)
    else:
        for i in order:
            s, e = starts[i], ends[i]
            if all(_may_coexist_nested(s, e, starts[j], ends[j], multi_label) for j in kept):
                kept.append(i)
    kept.sort(key=lambda i: starts[i])
    return kept


def _may_coexist_nested(s1: int, e1: int, s2: int, e2: int, multi_label: bool) -> bool:
    if (s1, e1) == (s2, e2):
        return multi_label
    disjoint = s1 > e2 or s2 > e1
    nested = (s1 <= s2 and e1 >= e2) or (s2 <= s1 and e2 >= e1)
    return disjoint or nested


def to_entities(
    candidates: Candidates,
    kept: Sequence[int],
    text: str,
    word_starts: Sequence[int],
    word_ends: Sequence[int],
    label_names: Sequence[str],
) -> list[dict]:
    """Kept candidates as `{"start", "end", "text", "label", "score"}` with character offsets."""
    entities = []
    for i in kept:
        start, end = word_starts[candidates.starts[i]], word_ends[candidates.ends[i]]
        entities.append(
            {
                "start": start,
                "end": end,
                "text": text[start:end],
                "label": label_names[candidates.labels[i]],
                "score": candidates.scores[i],
            }
        )
    return entities
