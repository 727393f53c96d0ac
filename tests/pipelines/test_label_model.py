"""Span alignment and the label model: votes, Dawid-Skene against crowd-kit, DS vs majority vote on a
synthetic corpus with known truth, sampling, and the batch functions through real Parquet and Ray Data."""

from __future__ import annotations

import random
from functools import partial

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.config import LabelModelConfig, SourceConfig
from pipelines.data.spans import SPANS_TYPE
from pipelines.weak.label_model import apply_label_model, dawid_skene, fit_label_model
from pipelines.weak.span_alignment import ABSTAIN, NONE, Aligner
from tests.pipelines.synthetic_sources import CLASSES, LABELS, SCOPES, make_corpus

A, N = ABSTAIN, NONE
PERSON, ORG, COUNTRY = 1, 2, 3


def span(start, end, label, origin, score=0.9):
    return {"start": start, "end": end, "label": label, "origin": origin, "score": score}


def test_alignment_votes_label_none_abstain():
    aligner = Aligner(
        ["person", "org", "country"],
        ["gliner", "gaz", "llm"],
        {"gliner": ["person", "org", "country"], "gaz": ["country"], "llm": ["person", "org", "country"]},
    )
    docs = [
        [
            span(0, 8, "country", "gaz"),  # "New York" ... a gazetteer's partial match
            span(0, 13, "country", "gliner"),  # "New York City"
            span(0, 13, "org", "gliner", 0.2),  # the same source twice on one span: the higher score counts
            span(20, 25, "person", "gliner"),
            span(20, 25, "person", "llm"),
            span(30, 34, "drug", "llm"),  # a label outside the set
            span(30, 34, "person", "gold"),  # not a source
            span(40, 99, "person", "llm"),  # ends past the text
        ],
        [span(3, 5, "org", "gliner")],
        [],
        None,
    ]
    out = aligner.align(docs, covered_by=[None, ["gliner", "gaz"], None, None], text_lengths=[50, 10, 0, 0])
    assert list(zip(out.documents.tolist(), out.starts.tolist(), out.ends.tolist(), strict=True)) == [
        (0, 0, 8),
        (0, 0, 13),
        (0, 20, 25),
        (1, 3, 5),
    ]
    assert out.votes.tolist() == [
        [N, COUNTRY, N],  # gliner labeled other boundaries: none; llm ran and said nothing: none
        [COUNTRY, N, N],  # the gazetteer matched only "New York": none on "New York City"
        [PERSON, A, PERSON],  # nobody proposed a country here: the country gazetteer abstains
        [ORG, A, A],  # llm did not run on document 1: abstains
    ]
    assert out.skipped == {"unknown_label": 1, "unknown_origin": 1, "bad_offsets": 1}


@pytest.fixture(scope="module")
def synthetic():
    corpus = make_corpus(1500, seed=0)
    return corpus, pa.Table.from_pylist(corpus.documents)


def scored(corpus, table, model):
    """Accuracy of the argmax class against the truth over all candidates, and the votes/truth used."""
    alignment = model.aligner.align(table.column("spans").to_pylist())
    ids = table.column("doc_id").to_pylist()
    truth = np.array(
        [
            CLASSES.index(corpus.truth[(ids[d], s, e)])
            for d, s, e in zip(
                alignment.documents, alignment.starts.tolist(), alignment.ends.tolist(), strict=True
            )
        ]
    )
    predicted = model.predict_proba(alignment.votes).argmax(axis=1)
    return float((predicted == truth).mean()), alignment.votes, truth


def scopes_config(**options) -> LabelModelConfig:
    return LabelModelConfig(
        sources={name: SourceConfig(labels=labels) for name, labels in SCOPES.items()}, **options
    )


@pytest.mark.filterwarnings("ignore::Warning:crowdkit")  # its pandas calls that pandas 3 deprecates
@pytest.mark.parametrize("iterations", [1, 7])
def test_em_is_crowdkits_dawid_skene(synthetic, iterations):
    from crowdkit.aggregation import DawidSkene

    corpus, table = synthetic
    model, _ = fit_label_model([table], LABELS, scopes_config(method="majority_vote"))
    votes = model.aligner.align(table.column("spans").to_pylist()).votes
    task, source = np.nonzero(votes != ABSTAIN)
    data = pd.DataFrame({"task": task, "worker": source, "label": votes[task, source].astype(np.int64)})
    reference = DawidSkene(n_iter=iterations, tol=-1.0).fit(data)  # tol < 0: exactly n_iter iterations
    prior, confusion, ran = dawid_skene(votes, len(CLASSES), iterations, tolerance=-np.inf)
    assert ran == iterations
    for (worker, vote), row in reference.errors_.iterrows():
        true_classes = row.index.to_numpy(dtype=np.int64)
        np.testing.assert_allclose(confusion[worker, vote, true_classes], row.to_numpy(), atol=1e-12)
    classes = reference.priors_.index.to_numpy(dtype=np.int64)
    np.testing.assert_allclose(prior[classes], reference.priors_.to_numpy(), atol=1e-12)


def test_dawid_skene_beats_majority_vote_and_ranks_sources(synthetic):
    corpus, table = synthetic
    mv, _ = fit_label_model([table], LABELS, scopes_config(method="majority_vote"))
    ds, report = fit_label_model([table], LABELS, scopes_config(method="dawid_skene"))
    mv_accuracy, votes, truth = scored(corpus, table, mv)
    ds_accuracy, _, _ = scored(corpus, table, ds)
    assert ds_accuracy > mv_accuracy + 0.10, (ds_accuracy, mv_accuracy)
    assert ds_accuracy > 0.8
    assert report.converged and 2 < report.iterations < 100

    learned = {s.source: {stats.label: stats.accuracy for stats in s.labels} for s in report.sources}
    true_accuracy = {
        source: {
            label: float(
                ((votes[:, s] == k) & (truth == k)).sum() / ((votes[:, s] != ABSTAIN) & (truth == k)).sum()
            )
            for k, label in enumerate(LABELS, start=1)
        }
        for s, source in enumerate(ds.sources)
    }
    for label, best, worst in [
        ("person", "person_expert", "org_expert"),
        ("organisation", "org_expert", "person_expert"),
    ]:
        in_scope = [source for source in learned if learned[source][label] is not None]
        ranked = sorted(in_scope, key=lambda source: learned[source][label], reverse=True)
        assert ranked[0] == best and ranked[-1] == worst, (label, ranked)
        for source in ranked[1:-1]:
            assert source.startswith("noisy")
        assert learned[best][label] == pytest.approx(true_accuracy[best][label], abs=0.05)
        assert learned[worst][label] == pytest.approx(true_accuracy[worst][label], abs=0.05)
    gazetteer = next(s for s in report.sources if s.source == "loc_gazetteer")
    assert gazetteer.scope == ["location"] and [s.votes for s in gazetteer.labels][:2] == [0, 0]
    metrics = report.metrics()
    assert metrics["label_model/person_expert/person/accuracy"] == learned["person_expert"]["person"]
    assert 0.0 < metrics["label_model/loc_gazetteer/voted"] < 1.0


def test_majority_vote_weights():
    docs = [[span(0, 3, "person", "a"), span(0, 3, "org", "b"), span(0, 3, "org", "c")]]
    table = pa.table({"doc_id": ["d"], "spans": pa.array(docs, SPANS_TYPE)})
    equal, _ = fit_label_model([table], ["person", "org"], LabelModelConfig(method="majority_vote"))
    heavy, _ = fit_label_model(
        [table],
        ["person", "org"],
        LabelModelConfig(method="majority_vote", sources={"a": SourceConfig(weight=3.0)}),
    )
    votes = np.array([[1, 2, 2]])
    np.testing.assert_allclose(equal.predict_proba(votes), [[0.0, 1 / 3, 2 / 3]])
    np.testing.assert_allclose(heavy.predict_proba(votes), [[0.0, 0.6, 0.4]])


def test_fit_sample_is_bounded_and_independent_of_order(synthetic):
    _, table = synthetic
    config = scopes_config(max_candidates=3000)
    batches = [table.slice(i, 100) for i in range(0, table.num_rows, 100)]
    model, report = fit_label_model(batches, LABELS, config, seed=7)
    assert 2900 <= report.candidates <= 3000 and report.documents < table.num_rows
    rows = table.to_pylist()
    random.Random(1).shuffle(rows)
    shuffled = pa.Table.from_pylist(rows, schema=table.schema)
    again, report_again = fit_label_model(
        [shuffled.slice(i, 37) for i in range(0, len(rows), 37)], LABELS, config, seed=7
    )
    assert again.model_dump_json() == model.model_dump_json()
    assert report_again == report
    other_seed, _ = fit_label_model(batches, LABELS, config, seed=8)
    assert other_seed.model_dump_json() != model.model_dump_json()


def test_apply_is_pure_and_per_document(synthetic):
    _, table = synthetic
    model, _ = fit_label_model([table], LABELS, scopes_config(min_probability=0.1))
    small = table.slice(0, 60)
    whole = apply_label_model(small, model)
    parts = pa.concat_tables([apply_label_model(small.slice(i, 7), model) for i in range(0, 60, 7)])
    assert whole.equals(parts)
    assert whole.column("source_spans").to_pylist() == small.column("spans").cast(SPANS_TYPE).to_pylist()
    restored = type(model).model_validate_json(model.model_dump_json())
    assert apply_label_model(small, restored).equals(whole)
    for spans in whole.column("spans").to_pylist():
        assert all(s["origin"] == "label_model" and 0.1 <= s["score"] <= 1.0 for s in spans)
        per_candidate: dict[tuple[int, int], float] = {}
        for s in spans:
            per_candidate[(s["start"], s["end"])] = (
                per_candidate.get((s["start"], s["end"]), 0.0) + s["score"]
            )
        assert all(total <= 1.0 + 1e-6 for total in per_candidate.values())


@pytest.mark.integration
def test_lf_and_label_model_stages_on_ray_data(tmp_path, ray_local):
    import ray.data

    from pipelines.config import GazetteerConfig, LabelingFunctionsConfig, RegexConfig
    from pipelines.weak.labeling_functions import apply_labeling_functions

    (tmp_path / "cities.txt").write_text("Lima\nOslo\nNew York\n", encoding="utf-8")
    lfs = LabelingFunctionsConfig(
        gazetteers=[GazetteerConfig(name="cities", label="location", path=str(tmp_path / "cities.txt"))],
        regexes=[RegexConfig(name="dr", label="person", pattern=r"Dr\. (?P<name>[A-Z][a-z]+)", group="name")],
    )
    texts = ["Dr. Smith flew from Lima to Oslo.", "New York hired Dr. Jones.", "nothing here"] * 20
    gliner = [  # stands in for the GLiNER stage's spans: it calls Lima a person once per document
        [span(20, 24, "person", "gliner", 0.6), span(4, 9, "person", "gliner", 0.8)],
        [span(0, 8, "location", "gliner", 0.7)],
        [],
    ] * 20
    docs = pa.table(
        {
            "doc_id": [f"d{i}" for i in range(len(texts))],
            "text": texts,
            "source": ["t"] * len(texts),
            "spans": pa.array(gliner, SPANS_TYPE),
        }
    )
    pq.write_table(docs, tmp_path / "docs.parquet")
    labeled = ray.data.read_parquet(str(tmp_path / "docs.parquet")).map_batches(
        partial(apply_labeling_functions, config=lfs), batch_format="pyarrow", batch_size=16
    )
    model, report = fit_label_model(
        labeled.iter_batches(batch_format="pyarrow"),
        ["person", "location"],
        LabelModelConfig(method="majority_vote"),
    )
    assert model.sources == ["gliner", "lf:gazetteer:cities", "lf:regex:dr"]
    assert report.candidates == 5 * 20 and report.documents == 40
    out = labeled.map_batches(partial(apply_label_model, model=model), batch_format="pyarrow", batch_size=16)
    out.write_parquet(str(tmp_path / "out"))
    back = pq.read_table(tmp_path / "out")
    assert back.schema.field("spans").type == SPANS_TYPE
    assert back.schema.field("source_spans").type == SPANS_TYPE
    row = next(r for r in back.to_pylist() if r["text"].startswith("Dr. Smith"))
    got = {(row["text"][s["start"] : s["end"]], s["label"]): round(s["score"], 3) for s in row["spans"]}
    # Smith: both person sources say person, the location gazetteer abstains (no location proposed);
    # Lima: gliner person, gazetteer location, the person regex ran and did not say it: none;
    # Oslo: gazetteer location, gliner (every label in scope) none, the person regex abstains
    assert got == {
        ("Smith", "person"): 1.0,
        ("Lima", "person"): 0.333,
        ("Lima", "location"): 0.333,
        ("Oslo", "location"): 0.5,
    }


def test_no_candidates_and_missing_columns():
    table = pa.table({"doc_id": ["a", "b"], "text": ["x", "y"], "spans": pa.array([[], None], SPANS_TYPE)})
    model, report = fit_label_model([table], ["person"], LabelModelConfig())
    assert report.candidates == 0 and model.sources == []
    assert apply_label_model(table, model).column("spans").to_pylist() == [[], []]
    with pytest.raises(ValueError, match=r"label model: the batch has no column \['spans'\]"):
        apply_label_model(table.drop_columns(["spans"]), model)
    with pytest.raises(ValueError, match=r"no column \['doc_id'\]"):
        fit_label_model([table.drop_columns(["doc_id"])], ["person"], LabelModelConfig())
