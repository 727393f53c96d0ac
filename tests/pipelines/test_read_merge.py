"""Read and merge stages: formats to the document contract; LLM + GLiNER spans to training rows."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.config import MergeConfig
from pipelines.data.read import read_documents, read_gold, text_id
from pipelines.data.spans import SPANS_TYPE
from pipelines.weak.merge import TRAINING_SCHEMA, label_statistics, merge, merge_spans, score_quantile

TEXTS = [
    "Ada Lovelace lived in London.",
    "Alan Turing worked in Manchester.",
    "Ada Lovelace lived in London.",
]


def span(start, end, label, score, origin):
    return {"start": start, "end": end, "label": label, "score": score, "origin": origin}


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "csv", "hf"])
def test_read_formats_give_documents_with_stable_ids(ray_local, tmp_path, fmt):
    rows = [{"body": t} for t in TEXTS]
    if fmt == "jsonl":
        path = tmp_path / "c.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif fmt == "parquet":
        path = tmp_path / "c.parquet"
        pq.write_table(pa.Table.from_pylist(rows), path)
    elif fmt == "csv":
        path = tmp_path / "c.csv"
        pd.DataFrame(rows).to_csv(path, index=False)
    else:
        import datasets

        path = tmp_path / "hf"
        datasets.Dataset.from_list(rows).save_to_disk(str(path))
    docs = read_documents(str(path), text_field="body").take_all()
    assert sorted(d["text"] for d in docs) == sorted(TEXTS)
    assert all(d["doc_id"] == text_id(d["text"]) and d["source"] == str(path) for d in docs)


def test_read_keeps_given_ids_and_reports_bad_input(ray_local, tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"doc_id": "a1", "text": "x"}) + "\n")
    assert read_documents(str(path)).take_all()[0]["doc_id"] == "a1"
    with pytest.raises(FileNotFoundError):
        read_documents(str(tmp_path / "missing.jsonl"))
    with pytest.raises(Exception, match="no column 'body'"):
        read_documents(str(path), text_field="body").take_all()


def test_read_gold_checks_offsets(tmp_path):
    path = tmp_path / "g.jsonl"
    path.write_text(json.dumps({"text": "abc", "spans": [{"start": 0, "end": 9, "label": "x"}]}) + "\n")
    with pytest.raises(ValueError, match="outside the text"):
        read_gold(str(path))


def test_merge_spans_agreement_policies_and_filter():
    config = MergeConfig(agreement_boost=0.2, min_score=0.5, llm_score=0.9)
    gliner = [
        span(0, 12, "person", 0.6, "gliner"),
        span(22, 28, "city", 0.4, "gliner"),
        span(0, 3, "org", 0.7, "gliner"),
    ]
    llm = [span(0, 12, "person", None, "llm"), span(22, 28, "location", None, "llm")]
    merged = merge_spans(gliner, llm, config, has_llm=True)
    # (0,12,person) agreed: 0.9 + 0.2 -> 1.0; (0,3,org) overlaps it and loses;
    # (22,28): llm 0.9 beats gliner 0.4
    assert [(s["start"], s["end"], s["label"], s["origin"]) for s in merged] == [
        (0, 12, "person", "agree"),
        (22, 28, "location", "llm"),
    ]
    assert merged[0]["score"] == pytest.approx(1.0)
    only = merge_spans(gliner, llm, config.model_copy(update={"policy": "agreement_only"}), has_llm=True)
    assert [(s["start"], s["label"]) for s in only] == [(0, "person")]
    glf = merge_spans(
        gliner, llm, config.model_copy(update={"policy": "gliner_first", "min_score": 0.0}), True
    )
    assert [(s["start"], s["end"], s["label"]) for s in glf] == [(0, 12, "person"), (22, 28, "city")]
    strict = merge_spans(gliner, [], config.model_copy(update={"min_score": 0.65}), has_llm=False)
    assert [(s["start"], s["label"]) for s in strict] == [(0, "org")]


def test_merge_stage_dedups_and_offers_negative_labels(ray_local):
    import ray.data

    weak = ray.data.from_arrow(
        pa.table(
            {
                "doc_id": ["d1", "d2", "d3"],
                "text": TEXTS,
                "source": ["t"] * 3,
                "spans": pa.array(
                    [
                        [span(0, 12, "person", 0.8, "gliner")],
                        [span(0, 11, "person", 0.3, "gliner")],
                        [span(0, 12, "person", 0.8, "gliner")],
                    ],
                    type=SPANS_TYPE,
                ),
            }
        )
    )
    synth = ray.data.from_arrow(
        pa.table(
            {
                "doc_id": ["d1", "d2"],
                "text": TEXTS[:2],
                "task": ["ner", "ner"],
                "status": ["ok", "invalid_json"],
                "spans": pa.array([[span(22, 28, "city", 0.9, "llm")], []], type=SPANS_TYPE),
            }
        )
    )
    labels = ["person", "city", "date", "award"]
    config = MergeConfig(negatives_per_row=1, drop_empty_rows=0.0, min_score=0.5)
    rows = sorted(merge(weak, labels, config, synth).take_all(), key=lambda r: r["text"])
    assert len(rows) == 2  # the two identical texts are one row
    ada, alan = rows  # sorted by text
    assert [(s["label"], s["origin"]) for s in ada["spans"]] == [("person", "gliner"), ("city", "llm")]
    assert {"person", "city"} <= set(ada["labels"]) and len(ada["labels"]) == 3
    assert alan["spans"] == [] and len(alan["labels"]) == 1  # 0.3 < min_score; one negative label
    assert set(rows[0]) >= set(TRAINING_SCHEMA.names)
    stats = label_statistics(rows)
    assert stats["rows"] == 2 and stats["empty_rows"] == 1 and stats["per_label"] == {"person": 1, "city": 1}
    assert (
        sum(stats["score_histogram"]) == 2 and score_quantile(stats["score_histogram"], 0.5) == 0.85
    )  # 0.8 in bin [0.8, 0.85)


def test_score_quantile_from_histogram():
    stats = label_statistics([{"spans": [span(0, 1, "a", x / 100, "gliner") for x in range(50, 100)]}])
    assert stats["score_histogram"][:10] == [0] * 10 and score_quantile(stats["score_histogram"], 0.5) == 0.75
    assert score_quantile([0] * 20, 0.5) == 0.0
