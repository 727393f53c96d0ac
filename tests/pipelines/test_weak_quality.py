"""Weak-label quality: each source and the merged labels scored on gold rows of the corpus."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.data.spans import SPANS_TYPE
from pipelines.weak.quality import MERGED, weak_label_quality

A, B, C = "Ada met Bob in Rome.", "Carl flew to Oslo.", "Not in the gold."


def span(start, end, label, origin, score=0.9):
    return {"start": start, "end": end, "label": label, "score": score, "origin": origin}


def write(path, rows, doc_ids=None):
    table = pa.table(
        {
            "doc_id": doc_ids or [str(i) for i in range(len(rows))],
            "text": [text for text, _ in rows],
            "spans": pa.array([spans for _, spans in rows], type=SPANS_TYPE),
        }
    )
    pq.write_table(table, path)
    return str(path)


def test_every_source_and_the_merged_labels_are_scored_on_the_gold_documents(tmp_path):
    gold = [
        {
            "text": A,
            "spans": [
                {"start": 0, "end": 3, "label": "person"},
                {"start": 8, "end": 11, "label": "person"},
                {"start": 15, "end": 19, "label": "location"},
            ],
        },
        {
            "text": B,
            "spans": [
                {"start": 0, "end": 4, "label": "person"},
                {"start": 13, "end": 17, "label": "location"},
            ],
        },
    ]
    weak = write(
        tmp_path / "weak.parquet",
        [
            (
                A,
                [
                    span(0, 3, "person", "gliner"),
                    span(15, 19, "person", "gliner"),
                    span(15, 19, "location", "ner:spacy"),
                ],
            ),
            (
                B,
                [
                    span(0, 4, "person", "gliner"),
                    span(13, 17, "location", "ner:spacy"),
                    span(0, 4, "person", "ner:spacy"),
                ],
            ),
            (C, [span(0, 3, "person", "gliner")]),  # not a gold document: not scored
        ],
    )
    rows = write(
        tmp_path / "rows.parquet",
        [
            (A, [span(0, 3, "person", "label_model", 0.9), span(15, 19, "location", "label_model", 0.4)]),
            (B, [span(0, 4, "person", "label_model", 0.8), span(13, 17, "location", "label_model", 0.7)]),
            (A, [span(8, 11, "person", "gold", 1.0)]),  # a replayed gold row: left out
        ],
        doc_ids=["a", "b", "gold:seed.jsonl:0"],
    )
    report = weak_label_quality(weak, rows, gold, ["person", "location"], min_score=0.5)
    assert report.documents == 2 and list(report.sources) == ["gliner", "ner:spacy", MERGED]
    gliner, spacy, merged = (report.sources[k] for k in ("gliner", "ner:spacy", MERGED))
    assert (gliner.micro_precision, gliner.micro_recall) == pytest.approx((2 / 3, 2 / 5))
    assert spacy.per_label["location"].f1 == pytest.approx(1.0) and spacy.per_label[
        "person"
    ].recall == pytest.approx(1 / 3)
    assert (merged.micro_precision, merged.micro_recall) == pytest.approx((1.0, 3 / 5))  # 0.4 < min_score
    metrics = report.metrics()
    assert metrics["weak_quality/ner:spacy/f1/location"] == pytest.approx(1.0)
    assert metrics["weak_quality/documents"] == 2.0
    assert "ner:spacy" in report.table() and "merged" in report.table()
