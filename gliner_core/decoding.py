"""From span-label scores to entities: threshold, then greedy selection.

Candidates are every (span, label) whose probability passes its label's
threshold (one number for all labels, or one per label: a (C,) tensor compared
with the label axis, so per-label thresholds cost no extra pass). They are
taken best-first; a candidate is kept unless it clashes with one
already kept:
  flat    any overlap clashes;
  nested  partial overlap clashes, one span inside another does not;
  multi_label  the same span may carry several labels.
Ties keep the candidates' original order (by start, width, label), as the
official package does, and the kept spans come out sorted by start.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

DEFAULT_THRESHOLD = 0.5
# predict's `threshold`: one number, {label name: threshold} (others: the default), or None
# (the checkpoint's calibrated thresholds, else the default)
Threshold = float | Mapping[str, float] | None


def _check_threshold(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{what} must be a number in [0, 1], got {value!r}")
    return float(value)


def resolve_thresholds(
    threshold: Threshold,
    names: Sequence[str],
    calibrated: Mapping[str, float] | None = None,
    default: float | None = None,
) -> list[float]:
    """One threshold per label name, in the order of `names`.

    threshold   a number: every label; a mapping: its value for the labels it
                names, `default` for the others; None: `calibrated` (a
                checkpoint's `label_thresholds`) for the labels it names,
                `default` for the others. `default` None means 0.5.
    """
    fallback = DEFAULT_THRESHOLD if default is None else _check_threshold(default, "default threshold")
    if threshold is None:
        chosen: Mapping[str, float] = calibrated or {}
    elif isinstance(threshold, Mapping):
        for key in threshold:
            if not isinstance(key, str):
                raise ValueError(f"threshold keys must be label names (strings), got {key!r}")
        chosen = threshold
    else:
        value = _check_threshold(threshold, "threshold")
        return [value] * len(names)
    return [_check_threshold(chosen[n], f"threshold of {n!r}") if n in chosen else fallback for n in names]


def threshold_tensor(thresholds: Sequence[float], like: torch.Tensor) -> float | torch.Tensor:
    """A plain number when all labels share one threshold (the fast, official path), else (C,)."""
    if all(t == thresholds[0] for t in thresholds):
        return thresholds[0]
    return torch.tensor(thresholds, dtype=like.dtype, device=like.device)


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
    probs: torch.Tensor, allowed: torch.Tensor, threshold: float | torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Vectorised threshold over a whole batch.

    probs: (B, L, K, C) probabilities; allowed: (B, L, K) spans that may be reported;
    threshold: a number or (C,) per label. Returns row, start, width, label,
    score tensors of the candidates, ordered by (row, start, width, label).
    """
    hits = (probs > threshold) & allowed[..., None]
    row, start, width, label = hits.nonzero(as_tuple=True)
    return row, start, width, label, probs[row, start, width, label]


def find_token_candidates(
    probs: torch.Tensor, word_mask: torch.Tensor, start_allowed: torch.Tensor, threshold: float | torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Spans from start / end / inside probabilities (token-level model), as the official decoder.

    probs: (B, L, C, 3) start, end, inside; word_mask: (B, L) real words;
    start_allowed: (B, L) words a span may start at; threshold t: a number or (C,)
    per label. Span (i, j) of label c is a candidate when start[i] > t, end[j] > t
    and inside >= t on every word i..j; its score is the smallest of those probabilities (official 0.2.29;
    spans have no width limit). Returns row, start, end, label, score tensors
    ordered by (row, start, label, end), the official candidate order.
    """
    start, end, inside = probs.unbind(-1)  # (B, L, C) each; a (C,) threshold broadcasts over labels
    words = word_mask[..., None]  # (B, L, 1)
    start_ok = (start > threshold) & words & start_allowed[..., None]
    end_ok = (end > threshold) & words
    inside_ok = (inside >= threshold) & words
    L = probs.size(1)
    found: list[tuple[torch.Tensor, ...]] = []
    # grow spans one word at a time: `alive` (B, L - k, C) marks spans (i, i + k) whose
    # start is a candidate and whose words are all inside; `low` is their smallest probability
    alive = start_ok & inside_ok
    low = torch.minimum(start, inside)
    for k in range(L):
        if not bool(alive.any()):
            break
        hits = alive & end_ok[:, k:]
        if bool(hits.any()):
            row, first, label = hits.nonzero(as_tuple=True)
            score = torch.minimum(low, end[:, k:])[row, first, label]
            found.append((row, first, first + k, label, score))
        if k + 1 < L:
            alive = alive[:, :-1] & inside_ok[:, k + 1 :]
            low = torch.minimum(low[:, :-1], inside[:, k + 1 :])
    if not found:
        empty = torch.zeros(0, dtype=torch.long, device=probs.device)
        return empty, empty, empty, empty, probs.new_zeros(0)
    row, first, last, label, score = (torch.cat(parts) for parts in zip(*found, strict=True))
    C = probs.size(2)
    order = torch.argsort(((row * L + first) * C + label) * L + last)
    return row[order], first[order], last[order], label[order], score[order]


def greedy_select(candidates: Candidates, flat_ner: bool = True, multi_label: bool = False) -> list[int]:
    """Indices of the kept candidates, sorted by start (stable)."""
    scores = candidates.scores
    # best first; `reverse=True` keeps equal scores in their original order (stable), as `-score` would
    order = sorted(range(len(scores)), key=scores.__getitem__, reverse=True)
    starts, ends = candidates.starts, candidates.ends
    kept: list[int] = []
    if not order:
        return kept
    if flat_ner:
        # A kept flat span never overlaps another, so a word-occupancy array answers
        # "does this overlap anything kept?" (one C-level scan per candidate); an
        # identical span is only allowed (multi_label) if its twin is already kept.
        taken = bytearray(max(ends) + 1)
        kept_spans: set[tuple[int, int]] = set()
        for i in order:
            s, e = starts[i], ends[i]
            if (s, e) in kept_spans:
                if multi_label:
                    kept.append(i)
                continue
            if taken.find(1, s, e + 1) != -1:
                continue
            taken[s : e + 1] = b"\x01" * (e + 1 - s)
            kept_spans.add((s, e))
            kept.append(i)
    else:
        for i in order:
            s, e = starts[i], ends[i]
            if all(_may_coexist_nested(s, e, starts[j], ends[j], multi_label) for j in kept):
                kept.append(i)
    kept.sort(key=starts.__getitem__)
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
