"""Checks of the evidence protocol's data preparation (no target-domain data reaches a seed).

    HF_HUB_OFFLINE=1 python -m pytest -q bench/test_crossner_data.py

Needs /work/shared/data (or GLINER_DATA); skips without it.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.crossner_data import (  # noqa: E402
    DOMAINS,
    FAMILIES,
    MAX_EXTRA_NEGATIVES,
    MIT_NAMES,
    MIX,
    dev_half,
    domain_labels,
    generalist_rows,
    label_union,
    load_source,
    offered_union,
    prepare_domain,
    selection_dev,
    source_labels,
    split_dev,
)

DATA = Path(os.environ.get("GLINER_DATA", ROOT.parent / "shared" / "data"))
pytestmark = pytest.mark.skipif(not (DATA / "crossner").is_dir(), reason=f"needs {DATA}")


def texts(domain: str) -> set[str]:
    return {ex.text for split in ("train", "dev") for ex in load_source(DATA, domain, split)}


@pytest.mark.parametrize("target", ["politics", "music"])
def test_generalist_rows_hold_no_target_text_and_follow_the_mix(target: str) -> None:
    rows, counts = generalist_rows(DATA, target, 400, seed=0)
    assert target not in counts and set(counts) == {*DOMAINS, "conll2003", *MIT_NAMES} - {target}
    assert len(rows) == sum(counts.values())
    assert not {row.example.text for row in rows} & texts(target)
    crossner_share = sum(n for s, n in counts.items() if s in DOMAINS) / len(rows)
    assert crossner_share == pytest.approx(MIX["crossner"], abs=0.01)
    # readable names only: no raw CrossNER tag suffix, no MIT title case; none of D's unseen types
    labels = set(label_union(row.example for row in rows)) | set(offered_union(rows))
    assert "political party" in labels or target == "politics"
    assert not {"politicalparty", "musicalartist", "programlang", "Cuisine", "misc"} & labels
    target_only = set(domain_labels(DATA, target).values()) - {
        label for s in counts for label in source_labels(DATA, s)
    }
    assert target_only and not target_only & labels


def test_offered_labels_keep_the_source_set_and_never_a_related_negative() -> None:
    rows, counts = generalist_rows(DATA, "science", 400, seed=1)
    own_by_source = {source: source_labels(DATA, source) for source in counts}
    for row in rows:
        own = own_by_source[row.source]
        assert row.labels[: len(own)] == own  # every gold label is offered, so absent ones are negatives
        assert {e.label for e in row.example.entities} <= set(own)
        extra = set(row.labels[len(own) :])
        assert len(extra) <= MAX_EXTRA_NEGATIVES and not extra & set(own)
        for family in FAMILIES.values():
            assert not (family & set(own) and family & extra), (row.source, extra)


def test_selection_dev_never_uses_the_target() -> None:
    dev = selection_dev(DATA, "science", per_source=15)
    assert len(dev) == 15 * len(DOMAINS)  # CoNLL + the four other domains
    assert not {ex.text for ex in dev} & texts("science")


def test_dev_halves_are_deterministic_disjoint_and_complete() -> None:
    dev = load_source(DATA, "politics", "dev")
    a, b = split_dev(dev)
    assert len(a) + len(b) == len(dev) and a and b
    assert {ex.text for ex in a}.isdisjoint({ex.text for ex in b})
    assert all(dev_half(ex.text) == "A" for ex in a)
    assert abs(len(a) - len(b)) < 0.15 * len(dev)


def test_prepare_domain_writes_untagged_corpus_halves_and_labels(tmp_path: Path) -> None:
    files = prepare_domain(DATA, "music", tmp_path)
    corpus = [json.loads(line) for line in files.corpus.read_text().splitlines()]
    assert len(corpus) == len(load_source(DATA, "music", "train")) and set(corpus[0]) == {"text"}
    assert json.loads(files.labels.read_text())["labels"] == domain_labels(DATA, "music")
    assert files.labels_map["musicalartist"] == "musical artist"
    halves = [json.loads(line) for p in (files.dev_a, files.dev_b) for line in p.read_text().splitlines()]
    assert len(halves) == len(load_source(DATA, "music", "dev"))
    assert {s["label"] for row in halves for s in row["spans"]} <= set(files.readable)
