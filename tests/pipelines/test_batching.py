"""The per-epoch training plan: every row once, the same on every rank, length-bucketed."""

from __future__ import annotations

import random

import pytest

from pipelines.training.batching import epoch_plan, padding_ratio, rank_rows


def lengths(n: int, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    return [rng.choice([0, rng.randint(1, 8), rng.randint(5, 60)]) for _ in range(n)]


@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("window", [0, 4, 50])
def test_every_row_with_words_is_in_exactly_one_rank_shard_per_epoch(world, window):
    sizes = lengths(203)
    for epoch in range(3):
        plan = epoch_plan(sizes, global_batch=8 * world, seed=1, epoch=epoch, window_batches=window)
        shards = [[i for batch in plan for i in rank_rows(batch, rank, world)] for rank in range(world)]
        seen = [i for shard in shards for i in shard]
        assert sorted(seen) == [i for i, n in enumerate(sizes) if n > 0]  # once each, none without words
        assert all(len(batch) <= 8 * world for batch in plan)
        assert all(len(rank_rows(batch, 0, world)) <= 8 for batch in plan)


def test_the_plan_depends_on_the_global_batch_not_on_the_world():
    sizes = lengths(100)
    one = epoch_plan(sizes, global_batch=16, seed=3, epoch=1, window_batches=8)
    assert one == epoch_plan(sizes, global_batch=16, seed=3, epoch=1, window_batches=8)  # any process
    two = [rank_rows(b, 0, 2) + rank_rows(b, 1, 2) for b in one]
    assert [sorted(b) for b in two] == [sorted(b) for b in one]  # two ranks train the same global batches
    # a new epoch, a new order
    assert one != epoch_plan(sizes, global_batch=16, seed=3, epoch=2, window_batches=8)


def test_length_buckets_cut_padding_and_keep_the_batch_order_random():
    sizes = [random.Random(i).randint(3, 120) for i in range(2000)]
    plain = epoch_plan(sizes, 16, seed=0, epoch=0, window_batches=0)
    bucketed = epoch_plan(sizes, 16, seed=0, epoch=0, window_batches=50)
    assert padding_ratio(sizes, bucketed) < 1.1 < 1.5 < padding_ratio(sizes, plain)
    first = [max(sizes[i] for i in b) for b in bucketed]
    # batches are not sorted by length globally: the order of batches is shuffled
    assert first != sorted(first) and first != sorted(first, reverse=True)
    rising = sum(a < b for a, b in zip(first, first[1:], strict=False))
    assert 0.35 < rising / (len(first) - 1) < 0.65


def test_an_empty_global_batch_size_is_refused():
    with pytest.raises(ValueError, match="global batch"):
        epoch_plan([1, 2], 0, 0, 0, 0)
