"""Which rows each training step sees, on every rank: one deterministic plan per epoch.

    plan = epoch_plan(lengths, global_batch=16, seed=0, epoch=2, window_batches=32)
    rows_of_rank = plan[step][rank::world]          # rank r's part of global batch `step`

Every rank computes the same plan from the same inputs (row lengths, seed, epoch), so the ranks agree
on the number of steps and on which rows form each global batch without talking to each other:
no rank can skip or add a step on its own, and across ranks each row is trained exactly once per
epoch. The plan is a function of the global batch size (`batch_size × world`), not of the world:
one worker with batch 16 trains on the same global batches as two workers with batch 8.

Length bucketing: the rows are shuffled, cut into windows of `window_batches` global batches, each
window sorted by length and cut into batches, and the batches shuffled again. A batch pads to rows
of similar length, and the order of batches (and which rows meet in a window) stays random. Rank r
takes every world-th row of a sorted batch, so the ranks get rows of similar length too.
`window_batches=0` turns bucketing off (plain shuffled batches).
"""

from __future__ import annotations

import random
from collections.abc import Sequence


def epoch_plan(
    lengths: Sequence[int], global_batch: int, seed: int, epoch: int, window_batches: int
) -> list[list[int]]:
    """Global batches of row indices for one epoch, in training order. Rows of length 0 (no word:
    nothing to learn) are left out; every other row is in exactly one batch."""
    if global_batch < 1:
        raise ValueError(f"global batch size must be >= 1, got {global_batch}")
    rng = random.Random(f"plan:{seed}:{epoch}")  # a str seed: the same on every process
    order = [i for i, n in enumerate(lengths) if n > 0]
    rng.shuffle(order)
    if window_batches <= 0:
        return [order[i : i + global_batch] for i in range(0, len(order), global_batch)]
    window = window_batches * global_batch
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: lengths[i])
        batches += [chunk[i : i + global_batch] for i in range(0, len(chunk), global_batch)]
    rng.shuffle(batches)
    return batches


def rank_rows(batch: Sequence[int], rank: int, world: int) -> list[int]:
    """Rank `rank`'s part of a global batch (empty when the batch has fewer rows than ranks)."""
    return list(batch[rank::world])


def padding_ratio(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """Padded / real length summed over batches, each batch padded to its longest row (1.0 = none)."""
    real = sum(lengths[i] for batch in batches for i in batch)
    padded = sum(max((lengths[i] for i in batch), default=0) * len(batch) for batch in batches)
    return padded / real if real else 1.0
