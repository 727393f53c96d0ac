"""Reading and converting NER data: CoNLL/BIO, MIT JSON and the official GLiNER JSON.

Inside the project an annotated text is an `Example`: the text plus entities as
character offsets (start inclusive, end exclusive), which is the data contract
between stages. The official GLiNER format (`tokenized_text` plus `ner` spans of
word indices, end inclusive) is only an import/export format.

Plain Python: nothing here imports torch.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gliner_core.text import Words, char_to_word_span, split_words

logger = logging.getLogger(__name__)

DOCSTART = "-DOCSTART-"

# CrossNER tag suffixes (all that occur in the five domains and conll2003) and the
# readable names the model is prompted with. `per`/`org`/`loc` cover original CoNLL tags.
CROSSNER_LABELS: dict[str, str] = {
    "academicjournal": "academic journal",
    "album": "album",
    "algorithm": "algorithm",
    "astronomicalobject": "astronomical object",
    "award": "award",
    "band": "band",
    "book": "book",
    "chemicalcompound": "chemical compound",
    "chemicalelement": "chemical element",
    "conference": "conference",
    "country": "country",
    "discipline": "discipline",
    "election": "election",
    "enzyme": "enzyme",
    "event": "event",
    "field": "field",
    "literarygenre": "literary genre",
    "location": "location",
    "loc": "location",
    "magazine": "magazine",
    "metrics": "metrics",
    "misc": "miscellaneous",
    "musicalartist": "musical artist",
    "musicalinstrument": "musical instrument",
    "musicgenre": "music genre",
    "organisation": "organisation",
    "org": "organisation",
    "person": "person",
    "per": "person",
    "poem": "poem",
    "politicalparty": "political party",
    "politician": "politician",
    "product": "product",
    "programlang": "programming language",
    "protein": "protein",
    "researcher": "researcher",
    "scientist": "scientist",
    "song": "song",
    "task": "task",
    "theory": "theory",
    "university": "university",
    "writer": "writer",
}


@dataclass(frozen=True)
class Entity:
    """One labelled span: character offsets into the text, end exclusive."""

    start: int
    end: int
    label: str

    def as_tuple(self) -> tuple[int, int, str]:
        """`(start, end, label)`, the shape `metrics.evaluate_spans` takes."""
        return self.start, self.end, self.label


@dataclass
class Example:
    """A text with its entities (character offsets)."""

    text: str
    entities: list[Entity] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict: `{"text": ..., "entities": [{"start", "end", "label"}, ...]}`."""
        return {
            "text": self.text,
            "entities": [{"start": e.start, "end": e.end, "label": e.label} for e in self.entities],
        }

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Example:
        """Inverse of `to_dict`."""
        entities = [Entity(int(e["start"]), int(e["end"]), str(e["label"])) for e in record["entities"]]
        return cls(text=record["text"], entities=entities)

    def spans(self) -> set[tuple[int, int, str]]:
        """The entities as a set of `(start, end, label)` tuples."""
        return {e.as_tuple() for e in self.entities}

    def entity_texts(self) -> list[str]:
        """The text each entity covers, in entity order."""
        return [self.text[e.start : e.end] for e in self.entities]


# ---------------------------------------------------------------------------
# CoNLL / BIO


def _read_conll_sentences(path: Path) -> Iterator[list[tuple[str, str]]]:
    """Yield sentences as lists of `(token, tag)`; the tag is the line's last column."""
    sentence: list[tuple[str, str]] = []
    with path.open(encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                if sentence:
                    yield sentence
                sentence = []
                continue
            columns = line.split("\t") if "\t" in line else line.split()
            if columns[0] == DOCSTART:
                continue
            if len(columns) < 2:
                raise ValueError(f"{path}:{number}: expected 'token<TAB>tag', got {line!r}")
            sentence.append((columns[0], columns[-1].strip()))
    if sentence:
        yield sentence


def _parse_tag(tag: str) -> tuple[str, str | None]:
    """Split a BIO tag into `(prefix, label)`: `"B-org"` -> `("B", "org")`, `"O"` -> `("O", None)`."""
    if tag == "O":
        return "O", None
    prefix, sep, label = tag.partition("-")
    if not sep or prefix not in ("B", "I") or not label:
        raise ValueError(f"not a BIO tag: {tag!r}")
    return prefix, label


def bio_to_word_spans(tags: Iterable[str]) -> list[tuple[int, int, str]]:
    """Decode BIO tags into `(first_word, last_word, label)` spans (last word inclusive).

    `B-X` always starts a new entity; `I-X` continues an open `X` entity and
    otherwise starts a new one (after `O` or after an entity of another label).
    """
    spans: list[tuple[int, int, str]] = []
    open_start: int | None = None
    open_label: str | None = None
    index = -1
    for index, tag in enumerate(tags):
        prefix, label = _parse_tag(tag)
        continues = prefix == "I" and label == open_label
        if continues:
            continue
        if open_label is not None and open_start is not None:
            spans.append((open_start, index - 1, open_label))
        open_start, open_label = (index, label) if label is not None else (None, None)
    if open_label is not None and open_start is not None:
        spans.append((open_start, index, open_label))
    return spans


def _word_offsets(tokens: list[str]) -> tuple[list[int], list[int]]:
    """Character starts and ends of `tokens` in `" ".join(tokens)`."""
    starts: list[int] = []
    ends: list[int] = []
    position = 0
    for token in tokens:
        starts.append(position)
        position += len(token)
        ends.append(position)
        position += 1
    return starts, ends


def _map_label(label: str, label_map: Mapping[str, str] | None) -> str:
    return label_map.get(label, label) if label_map else label


def conll_sentence_to_example(
    tokens: list[str], tags: list[str], label_map: Mapping[str, str] | None = None
) -> Example:
    """Build an `Example` from one BIO-tagged sentence; the text is the tokens joined by spaces."""
    if len(tokens) != len(tags):
        raise ValueError(f"{len(tokens)} tokens but {len(tags)} tags")
    starts, ends = _word_offsets(tokens)
    entities = [
        Entity(starts[first], ends[last], _map_label(label, label_map))
        for first, last, label in bio_to_word_spans(tags)
    ]
    return Example(text=" ".join(tokens), entities=entities)


def read_conll(path: str | Path, label_map: Mapping[str, str] | None = None) -> list[Example]:
    """Read a CoNLL file (`token<TAB>BIO-tag` lines, blank line between sentences).

    Each sentence becomes one `Example` whose text is its tokens joined by single
    spaces. Labels are the tag suffixes, mapped through `label_map` when given
    (labels it lacks are kept as they are). `-DOCSTART-` lines and empty
    sentences are skipped; with more than two columns the last one is the tag.
    """
    path = Path(path)
    examples: list[Example] = []
    for sentence in _read_conll_sentences(path):
        tokens = [token for token, _ in sentence]
        tags = [tag for _, tag in sentence]
        try:
            examples.append(conll_sentence_to_example(tokens, tags, label_map))
        except ValueError as error:
            raise ValueError(f"{path}: sentence starting {' '.join(tokens[:8])!r}: {error}") from error
    return examples


def load_crossner(data_dir: str | Path, domain: str, split: str) -> list[Example]:
    """Read `data_dir/crossner/<domain>/<split>.txt` with readable labels (`CROSSNER_LABELS`)."""
    path = Path(data_dir) / "crossner" / domain / f"{split}.txt"
    if not path.is_file():
        domains_dir = Path(data_dir) / "crossner"
        available = (
            sorted(p.name for p in domains_dir.iterdir() if p.is_dir()) if domains_dir.is_dir() else []
        )
        raise FileNotFoundError(
            f"CrossNER file not found: {path} (domain={domain!r}, split={split!r}; "
            f"domains found under {domains_dir}: {available or 'none'})"
        )
    return read_conll(path, CROSSNER_LABELS)


# ---------------------------------------------------------------------------
# MIT Movie / Restaurant JSON


def _on_word_boundaries(words: Words, start: int, end: int) -> bool:
    """Whether [start, end) starts at a word's start and ends at a word's end."""
    starts, ends = set(words.starts), set(words.ends)
    return start in starts and end in ends


def _overlaps(start: int, end: int, taken: Iterable[tuple[int, int]]) -> bool:
    return any(start < other_end and other_start < end for other_start, other_end in taken)


def _realign(text: str, words: Words, name: str, taken: list[tuple[int, int]]) -> tuple[int, int] | None:
    """First occurrence of `name` on word boundaries that overlaps no span in `taken`."""
    for match in re.finditer(re.escape(name), text):
        start, end = match.span()
        if _on_word_boundaries(words, start, end) and not _overlaps(start, end, taken):
            return start, end
    return None


def mit_record_to_example(record: Mapping[str, Any]) -> Example:
    """Build an `Example` from one MIT record `{"sentence", "entities": [{"name", "type", "pos"}]}`.

    Raises `ValueError` when an entity's `name` is not `sentence[pos[0]:pos[1]]`.
    An entity that does not sit on word boundaries (the MIT Movie conversion put
    some rating `r`s on the "r" of "rated") is moved to the first whole-word
    occurrence of its name that is free, or dropped with a warning if none is.
    """
    text: str = record["sentence"]
    words = split_words(text)
    entities: list[Entity] = []
    misplaced: list[Mapping[str, Any]] = []
    for item in record["entities"]:
        start, end = (int(x) for x in item["pos"])
        if not (0 <= start < end <= len(text)) or text[start:end] != item["name"]:
            raise ValueError(f"entity {dict(item)} does not match sentence {text!r}")
        if _on_word_boundaries(words, start, end):
            entities.append(Entity(start, end, item["type"]))
        else:
            misplaced.append(item)
    for item in misplaced:
        span = _realign(text, words, item["name"], [(e.start, e.end) for e in entities])
        if span is None:
            logger.warning("dropping misaligned entity %s in %r", dict(item), text)
            continue
        entities.append(Entity(span[0], span[1], item["type"]))
    entities.sort(key=lambda e: (e.start, e.end, e.label))
    return Example(text=text, entities=entities)


def read_mit_json(path: str | Path) -> list[Example]:
    """Read an MIT Movie/Restaurant JSON file (one list of records) into `Example`s."""
    path = Path(path)
    records = json.loads(path.read_text(encoding="utf-8"))
    examples: list[Example] = []
    for index, record in enumerate(records):
        try:
            examples.append(mit_record_to_example(record))
        except (KeyError, ValueError) as error:
            raise ValueError(f"{path}: record {index}: {error}") from error
    return examples


# ---------------------------------------------------------------------------
# Official GLiNER JSON


def to_official_json(example: Example) -> dict[str, Any]:
    """Export to the official format `{"tokenized_text": words, "ner": [[first, last, label], ...]}`.

    Words come from `split_words`; word indices are inclusive. An entity covering
    only part of a word is widened to the whole word; one touching no word is dropped.
    """
    words = split_words(example.text)
    ner: list[list[int | str]] = []
    for entity in example.entities:
        span = char_to_word_span(words, entity.start, entity.end)
        if span is not None:
            ner.append([span[0], span[1], entity.label])
    return {"tokenized_text": list(words.tokens), "ner": ner}


def from_official_json(record: Mapping[str, Any]) -> Example:
    """Import an official-format record: text is the words joined by single spaces."""
    tokens = [str(token) for token in record["tokenized_text"]]
    starts, ends = _word_offsets(tokens)
    entities: list[Entity] = []
    for first, last, label in record.get("ner", []):
        if not 0 <= first <= last < len(tokens):
            raise ValueError(f"span [{first}, {last}] out of range for {len(tokens)} words")
        entities.append(Entity(starts[first], ends[last], str(label)))
    return Example(text=" ".join(tokens), entities=entities)
