"""Gazetteer and regex labeling functions on tricky text; the batch function through real Parquet."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from pipelines.config import GazetteerConfig, LabelingFunctionsConfig, RegexConfig
from pipelines.data.read import DOCUMENT_SCHEMA
from pipelines.data.spans import SPANS_TYPE
from pipelines.weak.labeling_functions import (
    Gazetteer,
    GazetteerError,
    LabelingFunctions,
    apply_labeling_functions,
    fold_case,
    read_gazetteer,
)


def gazetteer(tmp_path: Path, names: list[str], **options) -> Gazetteer:
    path = tmp_path / "names.txt"
    path.write_text("\n".join(names), encoding="utf-8")
    options.setdefault("label", "place")
    return Gazetteer(GazetteerConfig(name="g", path=str(path), **options))


def found(lf, text: str) -> list[tuple[str, str]]:
    return [(text[s:e], label) for s, e, label in lf.find(text)]


def test_whole_words_only(tmp_path):
    lf = gazetteer(tmp_path, ["Paris", "York", "C++"])
    text = "Parisian York-based Paris_2 C++ C++11 xC++ (Paris)."
    assert [(s, e) for s, e, _ in lf.find(text)] == [(9, 13), (28, 31), (32, 35), (44, 49)]
    assert found(lf, text) == [("York", "place"), ("C++", "place"), ("C++", "place"), ("Paris", "place")]


def test_longest_match_wins_then_leftmost(tmp_path):
    lf = gazetteer(tmp_path, ["New York", "York City", "New York City", "City Hall"])
    assert found(lf, "New York City Hall") == [("New York City", "place")]
    assert found(lf, "New York City") == [("New York City", "place")]
    lf = gazetteer(tmp_path, ["New York", "York City"])
    assert found(lf, "in New York City") == [("York City", "place")]  # 9 chars beat 8
    lf = gazetteer(tmp_path, ["ab", "bc"])
    assert found(lf, "x ab bc abc") == [("ab", "place"), ("bc", "place")]  # `abc` is one other word


def test_case_folding_keeps_offsets(tmp_path):
    # "İ".lower() is two characters: folding must not shift the offsets of what follows
    text = "İSTANBUL and İzmir, STRASSE vs straße, ПАРИЖ"
    assert len(fold_case(text)) == len(text)
    lf = gazetteer(tmp_path, ["istanbul", "Izmir", "strasse", "париж"])
    assert found(lf, text) == [("STRASSE", "place"), ("ПАРИЖ", "place")]  # İ is not I; ß is not ss
    strict = gazetteer(tmp_path, ["strasse", "STRASSE"], case_sensitive=True)
    assert found(strict, "strasse STRASSE Strasse") == [("strasse", "place"), ("STRASSE", "place")]
    loose = gazetteer(tmp_path, ["strasse"])
    assert [text for text, _ in found(loose, "strasse STRASSE Strasse")] == ["strasse", "STRASSE", "Strasse"]


def test_unicode_offsets_are_code_points(tmp_path):
    lf = gazetteer(tmp_path, ["Zürich", "東京"])
    text = "😀 Zürich, 東京 and Zürichsee; Cafe\u0301 東京都"
    spans = lf.find(text)
    assert [text[s:e] for s, e, _ in spans] == ["Zürich", "東京"]  # 東京都 is one word to `whole_word`
    assert spans[0][:2] == (2, 8)
    assert [text[s:e] for s, e, _ in gazetteer(tmp_path, ["東京"], whole_word=False).find(text)] == [
        "東京"
    ] * 2
    # a combining accent continues the word: "Cafe" is not found in "Café" written decomposed
    assert gazetteer(tmp_path, ["Cafe"]).find("Cafe\u0301 ") == []


def test_gazetteer_formats(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"country": ["France", "Peru"], "city": ["Lima"]}))
    (tmp_path / "b.json").write_text(json.dumps([{"name": "France", "label": "country"}, {"name": "Lima"}]))
    (tmp_path / "c.csv").write_text("name,label\nFrance,country\nLima,\n", encoding="utf-8")
    (tmp_path / "d.tsv").write_text("label\tname\ncountry\tFrance\n", encoding="utf-8")
    (tmp_path / "e.jsonl").write_text('{"name": "France", "label": "country"}\n\n{"name": "Lima"}\n')
    (tmp_path / "f.txt").write_text("\ufeff# comment\nFrance \n\n  Peru\nFrance\n", encoding="utf-8")
    assert read_gazetteer(str(tmp_path / "a.json")) == {
        "France": "country",
        "Peru": "country",
        "Lima": "city",
    }
    expected = {"France": "country", "Lima": "city"}
    for name in ("b.json", "c.csv", "e.jsonl"):
        assert read_gazetteer(str(tmp_path / name), "city") == expected, name
    assert read_gazetteer(str(tmp_path / "d.tsv")) == {"France": "country"}
    assert read_gazetteer(str(tmp_path / "f.txt"), "country") == {"France": "country", "Peru": "country"}
    with pytest.raises(GazetteerError, match=r"b\.json: name 'Lima' has no label"):
        read_gazetteer(str(tmp_path / "b.json"))
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(GazetteerError, match=r"bad\.json: not valid JSON"):
        read_gazetteer(str(tmp_path / "bad.json"))
    (tmp_path / "bad.csv").write_text("label\nx\n")
    with pytest.raises(GazetteerError, match="needs a header with a `name` column"):
        read_gazetteer(str(tmp_path / "bad.csv"))
    (tmp_path / "latin1.txt").write_bytes("Zürich".encode("latin-1"))
    with pytest.raises(GazetteerError, match="not UTF-8"):
        read_gazetteer(str(tmp_path / "latin1.txt"), "city")


def test_regex_whole_match_and_groups():
    text = "Born 1987-03-04, died 2001-11-30; call +1 555 0100. ISO 9001."
    whole = LabelingFunctions(
        LabelingFunctionsConfig(
            regexes=[RegexConfig(name="dates", label="date", pattern=r"\b\d{4}-\d\d-\d\d\b")]
        )
    )
    assert [text[s["start"] : s["end"]] for s in whole.spans(text)] == ["1987-03-04", "2001-11-30"]
    named = RegexConfig(name="year", label="year", pattern=r"(?P<year>\d{4})-\d\d", group="year", score=0.4)
    numbered = RegexConfig(
        name="iso", label="standard", pattern=r"iso (\d+)|(x)", group=1, flags=["IGNORECASE"]
    )
    spans = LabelingFunctions(LabelingFunctionsConfig(regexes=[named, numbered])).spans(text + " x")
    assert [(text[s["start"] : s["end"]], s["label"], s["origin"], s["score"]) for s in spans] == [
        ("1987", "year", "lf:regex:year", 0.4),
        ("2001", "year", "lf:regex:year", 0.4),
        ("9001", "standard", "lf:regex:iso", 0.9),  # the `(x)` branch has no group 1: no span
    ]


def test_config_errors_are_one_line(tmp_path):
    cases = [
        (dict(name="r", label="x", pattern="(unclosed"), "regex 'r': bad pattern '(unclosed': missing )"),
        (dict(name="r", label="x", pattern="a", group=2), "regex 'r': group 2 not in the pattern (0 groups)"),
        (
            dict(name="r", label="x", pattern="(?P<y>a)", group="z"),
            "no group named 'z' (named groups: ['y'])",
        ),
        (dict(name="bad name", label="x", pattern="a"), "may hold only letters"),
    ]
    for kwargs, message in cases:
        with pytest.raises(
            ValidationError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
        ):
            RegexConfig(**kwargs)
    missing = tmp_path / "nope.txt"
    with pytest.raises(ValidationError) as error:
        GazetteerConfig(name="g", label="x", path=str(missing))
    [item] = error.value.errors()
    assert item["msg"] == f"Value error, gazetteer 'g': file not found: {missing}"
    with pytest.raises(ValidationError, match="lists bare names, so give `label`"):
        GazetteerConfig(name="g", path=str(missing))
    with pytest.raises(ValidationError, match="unknown extension '.xlsx'"):
        GazetteerConfig(name="g", label="x", path="names.xlsx")
    with pytest.raises(ValidationError, match="repeated: lf:regex:r"):
        LabelingFunctionsConfig(regexes=[RegexConfig(name="r", label="x", pattern="a")] * 2)


def test_batch_function_parquet_round_trip(tmp_path):
    (tmp_path / "countries.txt").write_text("France\nPeru\nUnited States\n", encoding="utf-8")
    config = LabelingFunctionsConfig(
        gazetteers=[GazetteerConfig(name="countries", label="country", path=str(tmp_path / "countries.txt"))],
        regexes=[RegexConfig(name="years", label="date", pattern=r"\b(?:19|20)\d\d\b", score=0.6)],
    )
    texts = ["In 1998 france beat peru.", "", "Nothing here.", "the united states, 2024 and 1850"]
    docs = pa.table([[f"d{i}" for i in range(4)], texts, ["test"] * 4], schema=DOCUMENT_SCHEMA)
    pq.write_table(docs, tmp_path / "docs.parquet")
    labeled = apply_labeling_functions(pq.read_table(tmp_path / "docs.parquet"), config)
    pq.write_table(labeled, tmp_path / "labeled.parquet")
    back = pq.read_table(tmp_path / "labeled.parquet")
    assert back.schema.field("spans").type == SPANS_TYPE
    assert back.column_names == ["doc_id", "text", "source", "spans"]
    rows = back.to_pylist()
    got = [[(r["text"][s["start"] : s["end"]], s["label"], s["origin"]) for s in r["spans"]] for r in rows]
    assert got == [
        [
            ("france", "country", "lf:gazetteer:countries"),
            ("peru", "country", "lf:gazetteer:countries"),
            ("1998", "date", "lf:regex:years"),
        ],
        [],
        [],
        [("united states", "country", "lf:gazetteer:countries"), ("2024", "date", "lf:regex:years")],
    ]
    assert rows[0]["spans"][2]["score"] == pytest.approx(0.6)
    # a second pass appends to the spans already there (e.g. GLiNER's), keeping them first
    again = apply_labeling_functions(back, config)
    assert again.column("spans").to_pylist()[0] == rows[0]["spans"] * 2
    assert LabelingFunctions(config).scopes == {
        "lf:gazetteer:countries": ["country"],
        "lf:regex:years": ["date"],
    }
