"""Gold rows as training rows: the seed's union of gold sets, and the replay rows of each iteration.

A gold set (`data.seed_gold`, each a `GoldSource`) is JSONL `{"text", "spans"}` — a file, or a folder
of `*.jsonl` files — with its own label names mapped to the trained names (`label_map`). A gold row
offers its own set's labels (a label the set annotates but the row lacks is a true negative) plus
`negatives` labels sampled from the other sets' labels, the way GLiNER's generalists learn to tell
many types apart. `weight` makes copies of a set's rows (0.25 keeps a seeded random quarter).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipelines.config import GoldSource, PipelineConfig
from pipelines.data.read import read_gold
from pipelines.data.storage import files_in, is_dir, is_file, redact_uri


def source_files(path: str) -> list[str]:
    """The JSONL files of a gold set: the file itself, or a folder's `*.jsonl` (local or at a URI)."""
    if is_dir(path):
        files = files_in(path, ".jsonl")
        if not files:
            raise FileNotFoundError(f"gold folder {redact_uri(path)} holds no *.jsonl file")
        return files
    if not is_file(path):
        raise FileNotFoundError(f"gold rows not found: {redact_uri(path)}")
    return [path]


def read_source(source: GoldSource) -> list[dict]:
    """The set's rows with its labels mapped (a label mapped to '' loses its spans)."""
    rows = []
    for file in source_files(source.path):
        for row in read_gold(file):
            spans = []
            for span in row["spans"]:
                label = source.label_map.get(span["label"], span["label"])
                if label:
                    spans.append({"start": span["start"], "end": span["end"], "label": label})
            rows.append({"text": row["text"], "spans": spans})
    return rows


def label_set(rows: Sequence[dict]) -> list[str]:
    return sorted({span["label"] for row in rows for span in row["spans"]})


def negative_candidates(
    own: Sequence[str], union: Sequence[str], families: Sequence[Sequence[str]] = ()
) -> list[str]:
    """Labels of the other sets a row of a set annotating `own` may be offered as negatives: not its own,
    and none of a family it annotates a member of (a set that tags politicians *person* never tagged
    *politician*, so an untagged politician there is no evidence against that label)."""
    blocked = set(own)
    for family in families:
        if blocked & set(family):
            blocked |= set(family)
    return [label for label in union if label not in blocked]


def gold_training_rows(
    sources: Sequence[GoldSource], negatives: int, seed: int = 0, families: Sequence[Sequence[str]] = ()
) -> tuple[list[dict], list[str]]:
    """(training rows, the union of the sets' labels): every set's rows, `weight` copies each, offering
    the set's labels plus up to `negatives` labels of the other sets (`negative_candidates`)."""
    rng = random.Random(f"{seed}:gold")
    read = [(source, read_source(source)) for source in sources]
    own = [label_set(rows) for _, rows in read]
    union = sorted({label for labels in own for label in labels})
    out: list[dict] = []
    for (source, rows), labels in zip(read, own, strict=True):
        others = negative_candidates(labels, union, families)
        whole, part = int(source.weight), source.weight - int(source.weight)
        for i, row in enumerate(rows):
            copies = whole + (1 if rng.random() < part else 0)
            for _ in range(copies):
                offered = labels + rng.sample(others, min(negatives, len(others)))
                rng.shuffle(offered)
                out.append(
                    {
                        "doc_id": f"gold:{Path(source.path).name}:{i}",
                        "text": row["text"],
                        "spans": [{**s, "score": 1.0, "origin": "gold"} for s in row["spans"]],
                        "labels": offered,  # empty: the trainer samples from the label pool
                        "weight": 1.0,
                    }
                )
    return out, union


def seed_training_rows(config: PipelineConfig) -> tuple[list[dict], list[str]]:
    """`gold_training_rows` of the job's `data.seed_gold`, with its negatives, seed and label families."""
    return gold_training_rows(
        config.data.seed_gold, config.merge.negatives_per_row, config.seed, config.data.label_families
    )


def replay_sample(rows: Sequence[Mapping], n: int, seed: int, iteration: int) -> list[Mapping]:
    """`n` gold rows for one iteration's replay (a fresh seeded draw per iteration; cycles when the gold
    set is smaller than `n`)."""
    if not rows or n <= 0:
        return []
    rng = random.Random(f"{seed}:replay:{iteration}")
    order: list[Mapping] = []
    while len(order) < n:
        batch = list(rows)
        rng.shuffle(batch)
        order.extend(batch)
    return order[:n]


@dataclass
class JobGold:
    """The gold rows a job holds in memory: what it scores on, and what it replays."""

    dev: list[dict]  # `data.dev_gold`: model selection and promotion
    test: list[dict] | None  # `data.test_gold`, when given: reported, never chosen on
    seed_rows: list[dict]  # the seed's gold training rows (`data.seed_gold`): the seed trains on them,
    # and each iteration replays a share of them (`loop.replay`)
    seed_labels: list[str]  # their labels: negatives for rows without a label set


def job_gold(config: PipelineConfig) -> JobGold:
    """Read the job's dev and test sets and its seed rows."""
    data = config.data
    seed_rows, seed_labels = seed_training_rows(config)
    return JobGold(
        dev=read_gold(data.dev_gold),
        test=read_gold(data.test_gold) if data.test_gold else None,
        seed_rows=seed_rows,
        seed_labels=seed_labels,
    )
