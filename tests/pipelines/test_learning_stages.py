"""The stages that make self-training learn: gold sets for a generalist seed, several weak sources
resolved by a label model into (soft) training rows, class balance, replay, the promotion guard."""

from __future__ import annotations

import json
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gliner_core.metrics import evaluate_spans
from pipelines.config import GoldSource, LoopConfig, PipelineConfig
from pipelines.data.gold import gold_training_rows, negative_candidates, replay_sample
from pipelines.data.spans import SPANS_TYPE
from pipelines.reports import EvalReport
from pipelines.selection.promotion import decide
from pipelines.weak.merge import TRAINING_SCHEMA, balance_batch, balance_rates


def write_jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def gold_row(text: str, *spans: tuple[str, str]) -> dict:
    found = []
    for entity, label in spans:
        start = text.index(entity)
        found.append({"start": start, "end": start + len(entity), "label": label})
    return {"text": text, "spans": found}


def test_a_gold_set_is_never_offered_a_negative_of_a_family_it_annotates(tmp_path):
    """CoNLL tags politicians *person*: its rows may not be told that a politician is not a *politician*."""
    news = write_jsonl(
        tmp_path / "news.jsonl", [gold_row("Ada Obi won in Lagos.", ("Ada Obi", "person"))] * 30
    )
    politics = write_jsonl(
        tmp_path / "politics.jsonl",
        [gold_row("Senator Kim met the Greens.", ("Kim", "politician"), ("Greens", "party"))] * 30,
    )
    sources = [GoldSource(path=news), GoldSource(path=politics)]
    rows, union = gold_training_rows(sources, negatives=2, seed=0)
    offered = {label for r in rows if r["text"].startswith("Ada") for label in r["labels"]}
    assert offered == {"person", "politician", "party"}  # without families: any other set's label
    families = [["person", "politician"]]
    rows, union = gold_training_rows(sources, negatives=2, seed=0, families=families)
    assert union == ["party", "person", "politician"]
    news_offered = {label for r in rows if r["text"].startswith("Ada") for label in r["labels"]}
    politics_offered = {label for r in rows if r["text"].startswith("Senator") for label in r["labels"]}
    assert news_offered == {"person", "party"} and politics_offered == {"politician", "party"}
    assert negative_candidates(["party"], union, families) == ["person", "politician"]
    with pytest.raises(ValueError, match="at least two labels"):
        PipelineConfig.model_validate({"data": {"label_families": [["person"]]}})


def test_gold_sets_map_labels_weight_rows_and_offer_negatives_from_other_sets(tmp_path):
    news = write_jsonl(
        tmp_path / "news.jsonl",
        [gold_row("Ada met Bob in Paris.", ("Ada", "PER"), ("Paris", "LOC")), gold_row("Rain today.")],
    )
    folder = tmp_path / "music"
    folder.mkdir()
    write_jsonl(
        folder / "a.jsonl", [gold_row("Nina Simone sang jazz.", ("Nina Simone", "musicalartist"))] * 40
    )
    sources = [
        GoldSource(path=news, weight=2.0, label_map={"PER": "person", "LOC": ""}),
        GoldSource(path=str(folder), weight=0.5, label_map={"musicalartist": "musical artist"}),
    ]
    rows, union = gold_training_rows(sources, negatives=1, seed=0)
    assert union == ["musical artist", "person"]
    by_set = Counter(r["doc_id"].split(":")[1] for r in rows)
    assert by_set["news.jsonl"] == 4  # two rows, two copies each
    assert 10 < by_set["music"] < 30  # a seeded random half of the 40 rows
    ada = next(r for r in rows if r["text"].startswith("Ada"))
    assert [(s["label"], s["score"], s["origin"]) for s in ada["spans"]] == [
        ("person", 1.0, "gold")
    ]  # LOC dropped
    assert sorted(ada["labels"]) == ["musical artist", "person"]  # its own set's labels + one from the other
    assert rows == gold_training_rows(sources, negatives=1, seed=0)[0]  # seeded
    at_uris = [
        GoldSource(path=f"file://{news}", weight=2.0, label_map={"PER": "person", "LOC": ""}),
        GoldSource(path=f"file://{folder}", weight=0.5, label_map={"musicalartist": "musical artist"}),
    ]
    assert gold_training_rows(at_uris, negatives=1, seed=0) == (rows, union)  # object storage reads alike
    with pytest.raises(FileNotFoundError, match="no \\*.jsonl"):
        (tmp_path / "empty").mkdir()
        gold_training_rows([GoldSource(path=str(tmp_path / "empty"))], negatives=0)
    with pytest.raises(FileNotFoundError, match="gold rows not found"):
        gold_training_rows([GoldSource(path=f"file://{tmp_path / 'missing.jsonl'}")], negatives=0)
    assert len(replay_sample(rows, 10, seed=0, iteration=1)) == 10  # cycles over a small set
    assert replay_sample(rows, 3, 0, 1) != replay_sample(rows, 3, 0, 2)  # a fresh draw per iteration


def test_seed_gold_config_accepts_paths_lists_and_mappings():
    config = PipelineConfig.model_validate(
        {"data": {"seed_gold": ["a.jsonl", {"path": "b", "weight": 0.5, "label_map": {"x": "y"}}]}}
    )
    assert [(s.path, s.weight) for s in config.data.seed_gold] == [("a.jsonl", 1.0), ("b", 0.5)]
    assert PipelineConfig.model_validate({"data": {"seed_gold": None}}).data.seed_gold == []


def test_default_labeling_functions_follow_the_labels_and_named_ones_must_use_them():
    default = PipelineConfig().weak_label.labeling_functions
    assert [g.label for g in default.gazetteers] == ["location"]
    assert [r.label for r in default.regexes] == ["date"]
    people = PipelineConfig.model_validate({"data": {"labels": ["person", "date"]}})
    assert not people.weak_label.labeling_functions.gazetteers
    assert [r.label for r in people.weak_label.labeling_functions.regexes] == ["date"]
    regex = {"name": "years", "label": "year", "pattern": r"\d{4}"}
    with pytest.raises(ValueError, match=r"labels not in data.labels: lf:regex:years \(year\)"):
        PipelineConfig.model_validate({"weak_label": {"labeling_functions": {"regexes": [regex]}}})


def test_a_section_set_in_part_keeps_its_own_defaults():
    config = PipelineConfig.model_validate({"seed_train": {"bucket_window": 0}, "train": {"lr_heads": 1e-4}})
    seed_train = config.seed_train
    assert (seed_train.max_steps, seed_train.lr_heads, seed_train.bucket_window) == (500, 2e-3, 0)
    assert (config.train.max_steps, config.train.patience, config.train.lr_heads) == (300, 2, 1e-4)


def test_class_balance_caps_a_dominating_label():
    rates = balance_rates({"date": 600, "person": 100, "location": 100}, max_share=0.5)
    assert set(rates) == {"date"} and rates["date"] == pytest.approx(200 / 600)
    assert balance_rates({"date": 600, "person": 100}, max_share=1.0) == {}
    rows = [
        {"doc_id": f"d{i}", "text": "x", "labels": ["date"], "weight": 1.0, "spans": [{"label": "date"}]}
        for i in range(600)
    ] + [
        {"doc_id": f"p{i}", "text": "x", "labels": ["person"], "weight": 1.0, "spans": [{"label": "person"}]}
        for i in range(100)
    ]
    spans = [
        [{"start": 0, "end": 1, "label": r["spans"][0]["label"], "score": 1.0, "origin": "x"}] for r in rows
    ]
    table = pa.table(
        {
            "doc_id": [r["doc_id"] for r in rows],
            "text": ["x"] * len(rows),
            "spans": pa.array(spans, type=SPANS_TYPE),
            "labels": [r["labels"] for r in rows],
            "weight": pa.array([1.0] * len(rows), pa.float32()),
        }
    )
    kept = balance_batch(table, {"date": 0.25}, seed=0).to_pylist()
    counts = Counter(r["spans"][0]["label"] for r in kept)
    assert counts["person"] == 100 and 110 < counts["date"] < 190  # about a quarter of the date rows


def report(per_label: dict[str, tuple[int, int, int]]) -> EvalReport:
    """An EvalReport from (true positives, false positives, false negatives) per label."""
    gold, predicted = [], []
    for label, (tp, fp, fn) in per_label.items():
        spans = [(i, i + 1, label) for i in range(tp + fn)]
        gold.append(spans)
        predicted.append(spans[:tp] + [(1000 + i, 1001 + i, label) for i in range(fp)])
    return EvalReport("dev", evaluate_spans(gold, predicted, list(per_label)), 0.5)


def test_promotion_needs_a_gain_and_no_watched_label_that_collapses():
    champion = report({"person": (40, 10, 10), "date": (20, 5, 5), "rare": (2, 0, 3)})
    loop = LoopConfig(guard_min_support=10, guard_max_drop=0.05)
    better = report({"person": (45, 5, 5), "date": (21, 4, 4), "rare": (0, 0, 5)})  # rare: support 5 < 10
    assert decide(better, champion, loop).promote
    forgets_dates = report({"person": (50, 0, 0), "date": (10, 5, 15), "rare": (2, 0, 3)})
    decision = decide(forgets_dates, champion, loop)
    assert forgets_dates.micro_f1 > champion.micro_f1 and not decision.promote
    assert "date" in decision.reason and "promotion guard" in decision.reason
    assert not decide(champion, champion, loop).promote


def weak_table(rows: list[tuple[str, list[dict]]]) -> pa.Table:
    return pa.table(
        {
            "doc_id": [f"d{i}" for i in range(len(rows))],
            "text": [t for t, _ in rows],
            "source": ["test"] * len(rows),
            "spans": pa.array([s for _, s in rows], type=SPANS_TYPE),
        }
    )


def span(text: str, entity: str, label: str, origin: str, score: float = 0.9) -> dict:
    start = text.index(entity)
    return {"start": start, "end": start + len(entity), "label": label, "score": score, "origin": origin}


@pytest.mark.integration
def test_merge_stage_with_a_label_model_soft_targets_and_replay(ray_local, tmp_path):
    from pipelines.loop.stages import merge_training_rows

    docs = []
    for i in range(40):
        text = f"Maria Costa {i} visited Lisbon on 3 May 20{i:02d}."
        spans = [
            span(text, f"Maria Costa {i}", "person", "gliner"),
            span(text, "Lisbon", "location", "gliner"),
        ]
        if i % 2:
            spans.append(span(text, "Lisbon", "location", "gliner:names"))
        spans.append(span(text, f"3 May 20{i:02d}", "date", "lf:regex:dates", 0.9))
        docs.append((text, spans))
    pq.write_table(weak_table(docs), tmp_path / "weak.parquet")
    gold = [
        {"doc_id": "gold:0", "text": "Ada.", "spans": [], "labels": ["person"], "weight": 1.0},
    ]
    config = PipelineConfig.model_validate(
        {
            "data": {"labels": ["person", "location", "date"], "label_descriptions": {"person": "a person"}},
            "weak_label": {
                "views": {"names": True},
                "labeling_functions": {
                    "regexes": [{"name": "dates", "label": "date", "pattern": r"\d+ May \d+"}]
                },
            },
            "merge": {"label_model": {"method": "dawid_skene"}, "soft_targets": True, "drop_empty_rows": 0.0},
            "loop": {"replay": 0.1},
        }
    )
    out = merge_training_rows(
        config, str(tmp_path / "weak.parquet"), str(tmp_path / "rows"), gold=gold, iteration=1
    )
    assert out.rows == 44 and out.replay_rows == 4  # 40 documents + 10% replay (the one gold row, cycled)
    assert out.label_model is not None and out.label_model.method == "dawid_skene"
    metrics = out.tracked().metrics
    assert (
        "label_model/lf:regex:dates/date/coverage" in metrics
    )  # each source's coverage per label, for MLflow
    rows = pq.read_table(tmp_path / "rows").to_pylist()
    weak_rows = [r for r in rows if not r["doc_id"].startswith("gold:")]
    assert all(
        0.0 < s["score"] <= 1.0 and s["origin"] == "label_model" for r in weak_rows for s in r["spans"]
    )
    assert {s["label"] for r in weak_rows for s in r["spans"]} == {"person", "location", "date"}
    assert all({s["label"] for s in r["spans"]} <= set(r["labels"]) for r in weak_rows)
    assert (tmp_path / "rows_votes").is_dir()  # every source's votes, kept for review and audit


@pytest.mark.slow
@pytest.mark.integration
def test_two_runs_of_one_config_give_the_same_models(loop_run, tmp_path):
    """One `seed` drives the heads' initialisation, the training order, negative sampling, the merge
    and the interpolation: the session's job (tests/loop_run.py), run again with its config, gives the
    same dev scores and the same weights. The second run has its own storage and registered model, so
    it too trains its own seed. (A tiny encoder: what is checked is the seeding, not what the model
    learns.)"""
    import torch
    from mlflow.tracking import MlflowClient

    from gliner_core import GLiNER
    from pipelines.loop.self_training import run

    first = loop_run.summary
    second = run(
        loop_run.variant(
            tmp_path / "runs", tracking={"experiment": "determinism", "registered_model": "determinism"}
        )
    )
    client = MlflowClient(loop_run.server.url)
    experiment = client.get_experiment_by_name("determinism").experiment_id
    nested = client.search_runs([experiment], filter_string=f"tags.mlflow.parentRunId = '{second.run_id}'")
    names = {r.info.run_name for r in nested}
    assert names == {"seed", "start-model", "synth", "iteration-1"}  # it trained its own seed
    assert first.start_f1 == pytest.approx(second.start_f1, abs=0.005)
    assert [r.dev_f1 for r in first.iterations] == pytest.approx(
        [r.dev_f1 for r in second.iterations], abs=0.005
    )
    assert first.start_per_label_f1 == pytest.approx(second.start_per_label_f1, abs=0.005)
    weights = [GLiNER.from_pretrained(s.iterations[0].model_path).state_dict() for s in (first, second)]
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])


def test_training_refuses_rows_that_teach_nothing(ray_local, tmp_path, tiny_backbone):
    from gliner_core import GLiNER
    from pipelines.loop.stages import train_on_rows

    GLiNER.from_backbone(tiny_backbone, hidden_size=32, max_len=48).save_pretrained(tmp_path / "model")
    rows = [
        {"doc_id": str(i), "text": "Nothing here.", "spans": [], "labels": ["person"], "weight": 1.0}
        for i in range(4)
    ]
    table = pa.Table.from_pylist(rows, schema=TRAINING_SCHEMA)
    pq.write_table(table, tmp_path / "rows.parquet")
    with pytest.raises(ValueError, match="no positive span in 4 rows"):
        train_on_rows(
            PipelineConfig(), str(tmp_path / "rows.parquet"), str(tmp_path / "out"), str(tmp_path / "model")
        )
    assert not (tmp_path / "out" / "ray_train").exists()  # refused before Ray Train started


def test_calibration_stage_stores_thresholds_the_evaluation_then_uses(tmp_path, tiny_backbone):
    from gliner_core import GLiNER
    from pipelines.loop.stages import calibrate_model, evaluate_model

    GLiNER.from_backbone(tiny_backbone, hidden_size=32, max_len=48).save_pretrained(tmp_path / "model")
    config = PipelineConfig.model_validate({"eval": {"calibrate": True, "calibration_min_support": 1}})
    report = calibrate_model(config, str(tmp_path / "model"))
    saved = json.loads((tmp_path / "model" / "gliner_config.json").read_text())
    assert saved["label_thresholds"] == report.result.thresholds and set(saved["label_thresholds"]) == {
        "person", "organisation", "location", "date"
    }  # fmt: skip
    assert "calibration_micro_f1_after" in report.tracked().metrics
    assert evaluate_model(config, str(tmp_path / "model")).threshold is None  # the calibrated thresholds


def test_the_loop_can_start_from_a_pretrained_model_on_the_hub(tmp_path, tiny_backbone, monkeypatch):
    """`loop.start_from: OWNER/NAME` loads an official pretrained GLiNER through the Hugging Face cache
    (a cache built here, HF_HUB_OFFLINE=1: nothing downloads); an unknown id fails with the fix."""
    from gliner_core import GLiNER
    from pipelines.loop.self_training import SelfTraining

    repo = tmp_path / "hub" / "models--urchade--gliner_tiny-test"
    GLiNER.from_backbone(tiny_backbone, hidden_size=32, max_len=48).save_pretrained(repo / "snapshots" / "r1")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("r1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def job(start: str) -> SelfTraining:
        return SelfTraining(
            PipelineConfig.model_validate(
                {"storage_path": str(tmp_path / "runs"), "loop": {"start_from": start}}
            )
        )

    path, version = job("urchade/gliner_tiny-test").start_model()
    assert path == str(repo / "snapshots" / "r1") and version is None
    message = "loop.start_from: .*urchade/unknown.*`hf download urchade/unknown`"
    with pytest.raises(FileNotFoundError, match=message):
        job("urchade/unknown").start_model()
