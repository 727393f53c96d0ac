"""Checks of the phase-2 variants: valid pipeline configs, and synonyms that are not the data's spans.

    HF_HUB_OFFLINE=1 python -m pytest -q bench/test_crossner_variants.py

Needs /work/shared/data (or GLINER_DATA); skips without it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.crossner_data import DOMAINS, domain_labels, load_source  # noqa: E402
from bench.crossner_variants import ALL, SYNONYMS, VARIANTS, Features, variant_config  # noqa: E402
from pipelines import configured_views  # noqa: E402

DATA = Path(os.environ.get("GLINER_DATA", ROOT.parent / "shared" / "data"))
pytestmark = pytest.mark.skipif(not (DATA / "crossner").is_dir(), reason=f"no CrossNER data at {DATA}")


def config(features: Features, domain: str, tmp_path: Path):
    labels = sorted(set(domain_labels(DATA, domain).values()))
    return variant_config(
        features,
        name=f"{domain}-test",
        seed=1,
        labels=labels,
        corpus=tmp_path / "corpus.jsonl",
        dev_a=tmp_path / "dev_A.jsonl",
        start_model=str(tmp_path / "model"),
        storage=tmp_path / "runs",
        tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
    )


@pytest.mark.parametrize("domain", DOMAINS)
def test_every_label_has_two_synonyms_and_views_map_back(domain: str, tmp_path: Path) -> None:
    cfg = config(ALL, domain, tmp_path)
    views = configured_views(cfg.weak_label.views, cfg.prompts(), cfg.data.label_synonyms)
    # the names view (the main one, as evaluation prompts) and one view per synonym rank
    assert list(views) == ["gliner", "gliner:synonyms:1", "gliner:synonyms:2"]
    for view in views.values():
        assert set(view) == set(cfg.data.labels)  # every label asked for in every view


@pytest.mark.parametrize("domain", DOMAINS)
def test_synonyms_are_not_spans_of_the_target_domain(domain: str) -> None:
    """No synonym is the text of a gold entity in the domain's train or dev split (ours, not the data's)."""
    surfaces = {
        ex.text[e.start : e.end].casefold()
        for split in ("train", "dev")
        for ex in load_source(DATA, domain, split)
        for e in ex.entities
    }
    labels = set(domain_labels(DATA, domain).values())
    taken = {s for label in labels for s in SYNONYMS[label] if s.casefold() in surfaces}
    assert not taken


def test_variants_switch_one_feature_at_a_time(tmp_path: Path) -> None:
    hard = config(VARIANTS["hard"], "politics", tmp_path)
    assert hard.merge.label_model is None and not hard.merge.soft_targets
    assert not hard.eval.calibrate and hard.loop.replay == 0.0 and hard.merge.max_label_share == 1.0
    assert hard.eval.threshold == 0.5 and hard.merge.min_score == 0.5
    assert not hard.weak_label.labeling_functions.enabled
    assert hard.loop.start_from == str(tmp_path / "model") and hard.seed == 1
    every = config(ALL, "politics", tmp_path)
    assert every.merge.label_model is not None and every.merge.label_model.method == "dawid_skene"
    assert every.merge.soft_targets and every.eval.calibrate and every.loop.replay == 0.25
    assert every.eval.calibration_gold == str(tmp_path / "dev_A.jsonl") == every.data.dev_gold
    assert hard.loop.interpolation == [] == every.loop.interpolation  # students kept as trained
    for name, features in VARIANTS.items():
        if name not in ("hard", "all", "lf"):
            assert sum(vars(features).values()) == 1, name
    rules = config(VARIANTS["lf"], "politics", tmp_path)
    assert rules.eval.calibrate and rules.merge.label_model is None
    functions = rules.weak_label.labeling_functions
    assert {g.label for g in functions.gazetteers} | {r.label for r in functions.regexes} == {
        "country", "election", "political party", "event"
    }  # fmt: skip
