"""Reading CoNLL/MIT data and converting to and from the official GLiNER JSON."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from gliner_core.data import (
    CROSSNER_LABELS,
    Entity,
    Example,
    bio_to_word_spans,
    from_official_json,
    load_crossner,
    read_conll,
    read_mit_json,
    to_official_json,
)


@pytest.fixture(scope="module")
def _shared_data_dir() -> Path:
    path = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path}")
    return path


def _write(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return path


# --- Example -----------------------------------------------------------------


def test_example_dict_round_trip() -> None:
    example = Example("Ada wrote code", [Entity(0, 3, "person")])
    record = example.to_dict()
    assert record == {"text": "Ada wrote code", "entities": [{"start": 0, "end": 3, "label": "person"}]}
    assert Example.from_dict(json.loads(json.dumps(record))) == example
    assert example.spans() == {(0, 3, "person")}
    assert example.entity_texts() == ["Ada"]


# --- BIO decoding --------------------------------------------------------------


@pytest.mark.parametrize(
    ("tags", "spans"),
    [
        ([], []),
        (["O", "O"], []),
        (["B-a", "I-a", "O"], [(0, 1, "a")]),
        (["B-a", "I-a", "I-a"], [(0, 2, "a")]),  # entity at the end
        (["I-a", "I-a", "O"], [(0, 1, "a")]),  # I- without B- starts an entity
        (["O", "I-a"], [(1, 1, "a")]),
        (["B-a", "I-b"], [(0, 0, "a"), (1, 1, "b")]),  # I- of another label starts a new one
        (["B-a", "B-a"], [(0, 0, "a"), (1, 1, "a")]),  # B- always starts a new one
        (["B-a", "I-a", "B-a", "I-a"], [(0, 1, "a"), (2, 3, "a")]),
        (["I-a", "O", "I-a"], [(0, 0, "a"), (2, 2, "a")]),
        (["B-x-y", "I-x-y"], [(0, 1, "x-y")]),  # only the first hyphen separates the prefix
    ],
)
def test_bio_to_word_spans(tags: list[str], spans: list[tuple[int, int, str]]) -> None:
    assert bio_to_word_spans(tags) == spans


@pytest.mark.parametrize("tag", ["PER", "E-per", "B-", "b-per", ""])
def test_bad_tags_raise(tag: str) -> None:
    with pytest.raises(ValueError, match="BIO"):
        bio_to_word_spans(["O", tag])


# --- read_conll ----------------------------------------------------------------


CONLL = (
    "-DOCSTART-\tO\n"
    "\n"
    "Guido\tB-person\n"
    "van\tI-person\n"
    "Rossum\tI-person\n"
    "wrote\tO\n"
    "Python\tB-programlang\n"
    ".\tO\n"
    "\n"
    "\n"
    "Paris\tI-location\n"
    "Berlin\tB-location\n"
    "\n"
)


def test_read_conll(tmp_path: Path) -> None:
    examples = read_conll(_write(tmp_path, "x.txt", CONLL))
    assert [e.text for e in examples] == ["Guido van Rossum wrote Python .", "Paris Berlin"]
    assert examples[0].entities == [Entity(0, 16, "person"), Entity(23, 29, "programlang")]
    assert examples[0].entity_texts() == ["Guido van Rossum", "Python"]
    assert examples[1].entities == [Entity(0, 5, "location"), Entity(6, 12, "location")]


def test_read_conll_label_map_keeps_unmapped(tmp_path: Path) -> None:
    examples = read_conll(_write(tmp_path, "x.txt", CONLL), {"programlang": "programming language"})
    assert [e.label for e in examples[0].entities] == ["person", "programming language"]


def test_read_conll_without_trailing_blank_and_extra_columns(tmp_path: Path) -> None:
    # Original CoNLL-2003 layout: token POS chunk tag, space separated, CRLF, no final blank line.
    path = _write(tmp_path, "x.txt", "-DOCSTART- -X- -X- O\r\n\r\nEU NNP B-NP B-ORG\r\nrejects VBZ B-VP O")
    (example,) = read_conll(path, CROSSNER_LABELS)
    assert example.text == "EU rejects"
    assert example.entities == [Entity(0, 2, "ORG")]  # "ORG" is not a key: kept as is


def test_read_conll_reports_bad_line(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="x.txt"):
        read_conll(_write(tmp_path, "x.txt", "word\tB-a\nlonely\n"))
    with pytest.raises(ValueError, match="not a BIO tag"):
        read_conll(_write(tmp_path, "x.txt", "word\tS-a\n"))


def test_load_crossner_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nosuchdomain"):
        load_crossner(tmp_path, "nosuchdomain", "dev")


# --- read_mit_json ---------------------------------------------------------------


def test_read_mit_json(tmp_path: Path) -> None:
    records = [
        {
            "sentence": "show me films with drew barrymore",
            "entities": [{"name": "drew barrymore", "type": "actor", "pos": [19, 33]}],
        },
        {"sentence": "34", "entities": []},
    ]
    examples = read_mit_json(_write(tmp_path, "m.json", json.dumps(records)))
    assert examples[0].entities == [Entity(19, 33, "actor")]
    assert examples[1] == Example("34", [])


def test_read_mit_json_moves_misaligned_entity(tmp_path: Path) -> None:
    # As in mit-movie: the rating "r" points at the "r" of "rated".
    records = [
        {
            "sentence": "a comedy rated r",
            "entities": [
                {"name": "comedy", "type": "genre", "pos": [2, 8]},
                {"name": "r", "type": "rating", "pos": [9, 10]},
            ],
        }
    ]
    (example,) = read_mit_json(_write(tmp_path, "m.json", json.dumps(records)))
    assert example.entities == [Entity(2, 8, "genre"), Entity(15, 16, "rating")]


def test_read_mit_json_drops_unplaceable_entity(tmp_path: Path) -> None:
    records = [{"sentence": "rated", "entities": [{"name": "r", "type": "rating", "pos": [0, 1]}]}]
    (example,) = read_mit_json(_write(tmp_path, "m.json", json.dumps(records)))
    assert example.entities == []


def test_read_mit_json_rejects_wrong_offsets(tmp_path: Path) -> None:
    records = [
        {
            "sentence": "films with tom hanks",
            "entities": [{"name": "tom hanks", "type": "actor", "pos": [10, 19]}],
        }
    ]
    with pytest.raises(ValueError, match="record 0"):
        read_mit_json(_write(tmp_path, "m.json", json.dumps(records)))


# --- official JSON -----------------------------------------------------------------


def test_to_official_json() -> None:
    example = Example(
        "Guido van Rossum created Python at CWI.",
        [Entity(0, 16, "person"), Entity(25, 31, "programming language"), Entity(35, 38, "organisation")],
    )
    record = to_official_json(example)
    assert record["tokenized_text"] == ["Guido", "van", "Rossum", "created", "Python", "at", "CWI", "."]
    assert record["ner"] == [[0, 2, "person"], [4, 4, "programming language"], [6, 6, "organisation"]]


def test_to_official_json_widens_partial_words_and_drops_empty() -> None:
    example = Example("Pythonic  code", [Entity(0, 6, "x"), Entity(8, 9, "space")])
    assert to_official_json(example)["ner"] == [[0, 0, "x"]]


def test_from_official_json() -> None:
    record = {
        "tokenized_text": ["Alice", "moved", "to", "New", "York", "."],
        "ner": [[0, 0, "person"], [3, 4, "city"]],
    }
    example = from_official_json(record)
    assert example.text == "Alice moved to New York ."
    assert example.entity_texts() == ["Alice", "New York"]
    assert example.entities == [Entity(0, 5, "person"), Entity(15, 23, "city")]


def test_from_official_json_rejects_bad_span() -> None:
    with pytest.raises(ValueError, match="out of range"):
        from_official_json({"tokenized_text": ["a"], "ner": [[0, 1, "x"]]})


def test_official_round_trips() -> None:
    record = {
        "tokenized_text": ["Alice", "met", "Bob", "in", "Paris", "."],
        "ner": [[0, 0, "person"], [2, 2, "person"], [4, 4, "city"]],
    }
    assert to_official_json(from_official_json(record)) == record
    example = Example("Alice met Bob in Paris .", [Entity(0, 5, "person"), Entity(17, 22, "city")])
    assert from_official_json(to_official_json(example)) == example


# --- real files under /work/shared/data --------------------------------------------


def _crossner_files(root: Path) -> list[Path]:
    files = sorted((root / "crossner").glob("*/*.txt"))
    if not files:
        pytest.skip("no CrossNER files")
    return files


def _tag_suffixes(path: Path) -> set[str]:
    suffixes = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            tag = line.split("\t")[-1]
            if tag != "O":
                suffixes.add(tag.split("-", 1)[1])
    return suffixes


def test_every_crossner_suffix_has_a_readable_name(_shared_data_dir: Path) -> None:
    suffixes = set().union(*(_tag_suffixes(path) for path in _crossner_files(_shared_data_dir)))
    assert suffixes, "no entity tags found"
    assert sorted(suffixes - set(CROSSNER_LABELS)) == []


def test_crossner_entities_match_tokens(_shared_data_dir: Path) -> None:
    for path in _crossner_files(_shared_data_dir):
        blocks = path.read_text(encoding="utf-8").split("\n\n")
        raw = [[line for line in block.splitlines() if line] for block in blocks if block.strip()]
        examples = read_conll(path)
        assert len(examples) == len(raw), path
        for lines, example in zip(raw, examples, strict=True):
            tokens = [line.split("\t")[0] for line in lines]
            tags = [line.split("\t")[1] for line in lines]
            assert example.text == " ".join(tokens)
            expected = [" ".join(tokens[a : b + 1]) for a, b, _ in bio_to_word_spans(tags)]
            assert example.entity_texts() == expected
            assert sum(tag.startswith("B-") for tag in tags) == len(example.entities)


@pytest.mark.parametrize("domain", ["ai", "literature", "music", "politics", "science", "conll2003"])
def test_load_crossner_dev(_shared_data_dir: Path, domain: str) -> None:
    examples = load_crossner(_shared_data_dir, domain, "dev")
    assert len(examples) > 100
    labels = {entity.label for example in examples for entity in example.entities}
    assert labels <= set(CROSSNER_LABELS.values())
    for example in examples[:50]:
        record = to_official_json(example)
        assert len(record["ner"]) == len(example.entities)  # every entity covers words


@pytest.mark.parametrize("name", ["mit-movie", "mit-restaurant"])
def test_read_real_mit(_shared_data_dir: Path, name: str) -> None:
    path = _shared_data_dir / "mit" / f"{name}.train.json"
    if not path.is_file():
        pytest.skip(f"{path} missing")
    records = json.loads(path.read_text(encoding="utf-8"))
    label_list = json.loads((_shared_data_dir / "mit" / f"{name}.labels.json").read_text(encoding="utf-8"))
    examples = read_mit_json(path)
    assert len(examples) == len(records)
    for record, example in zip(records, examples, strict=True):
        assert example.text == record["sentence"]
        # nothing dropped, and every entity still reads its own name
        assert Counter((e["name"], e["type"]) for e in record["entities"]) == Counter(
            zip(example.entity_texts(), (e.label for e in example.entities), strict=True)
        )
        assert {e.label for e in example.entities} <= set(label_list)
        words = to_official_json(example)
        back = from_official_json(words)
        assert back.entity_texts() == [" ".join(text.split()) for text in example.entity_texts()]
