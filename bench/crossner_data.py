"""Data for the leave-one-domain-out evidence protocol (docs/self_training.md, "Protocol").

For a target CrossNER domain D this builds, from /work/shared/data only:
  - the generalist seed's gold rows: every gold *train* split except D's (CoNLL-2003, the other
    CrossNER domains, MIT Movie, MIT Restaurant), mixed with fixed weights (`MIX`) so the small
    CrossNER domains are not drowned by CoNLL/MIT, labels renamed to readable words;
  - the seed's selection dev set: the dev splits of CoNLL-2003 and the other CrossNER domains
    (never D's);
  - D's corpus: the text of D's train split, tags dropped;
  - D's dev split cut into two halves by a hash of the sentence text: A (model selection,
    threshold calibration) and B (reported, never tuned on);
  - D's label list and the readable names it is prompted with.

Every label name is written by us (`CROSSNER_NAMES`, `MIT_NAMES`), never derived from gold spans.
Plain Python: nothing here imports torch or Ray.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from gliner_core.data import CROSSNER_LABELS, Entity, Example, read_conll, read_mit_json

DOMAINS = ("ai", "literature", "music", "politics", "science")
CONLL = "conll2003"
MIT_SOURCES = ("mit-movie", "mit-restaurant")

# CrossNER tag suffix -> readable name (the project's own map, gliner_core.data.CROSSNER_LABELS).
CROSSNER_NAMES: dict[str, str] = dict(CROSSNER_LABELS)

# MIT tag -> readable name, our own words. Where an MIT type means something narrower than the
# CrossNER label of the same word, it gets its own name so it does not redefine the CrossNER one
# (MIT Restaurant "Location" covers "nearby", "within 5 miles"; MIT Movie "genre" is a film genre).
MIT_NAMES: dict[str, dict[str, str]] = {
    "mit-movie": {
        "actor": "actor",
        "average ratings": "average rating",
        "character": "character",
        "director": "director",
        "genre": "film genre",
        "plot": "plot",
        "rating": "film rating",
        "review": "review",
        "song": "song",
        "title": "film title",
        "trailer": "trailer",
        "year": "year",
    },
    "mit-restaurant": {
        "Amenity": "amenity",
        "Cuisine": "cuisine",
        "Dish": "dish",
        "Hours": "opening hours",
        "Location": "restaurant location",
        "Price": "price",
        "Rating": "restaurant rating",
        "Restaurant Name": "restaurant name",
    },
}

# Share of the seed's rows per source group. The other CrossNER domains split their share equally
# (each domain's 100-200 train sentences are repeated as needed; the trainer samples fresh negative
# labels at each repetition); CoNLL and MIT rows are drawn without repetition.
MIX: dict[str, float] = {"crossner": 0.4, CONLL: 0.3, "mit-movie": 0.15, "mit-restaurant": 0.15}


def rename(examples: Iterable[Example], names: Mapping[str, str]) -> list[Example]:
    """Labels through `names`; a label missing from it is an error (every name must be written down)."""
    out = []
    for ex in examples:
        missing = {e.label for e in ex.entities} - set(names)
        if missing:
            raise KeyError(f"no readable name for label(s) {sorted(missing)}: add them to the name map")
        out.append(Example(ex.text, [Entity(e.start, e.end, names[e.label]) for e in ex.entities]))
    return out


def load_crossner_raw(data: Path, domain: str, split: str) -> list[Example]:
    """A CrossNER split with its raw tag suffixes (`politicalparty`)."""
    path = data / "crossner" / domain / f"{split}.txt"
    if not path.is_file():
        raise FileNotFoundError(f"CrossNER split not found: {path} (is GLINER_DATA / --data right?)")
    return read_conll(path)


def load_source(data: Path, source: str, split: str) -> list[Example]:
    """A source's split with readable labels; MIT has only `train`."""
    if source in MIT_SOURCES:
        if split != "train":
            raise ValueError(f"{source} has only a train split here, not {split!r}")
        return rename(read_mit_json(data / "mit" / f"{source}.train.json"), MIT_NAMES[source])
    return rename(load_crossner_raw(data, source, split), CROSSNER_NAMES)


def domain_labels(data: Path, domain: str) -> dict[str, str]:
    """D's tag suffixes (as the tag set of its train and dev files defines the task) -> readable names."""
    tags = sorted(
        {
            e.label
            for split in ("train", "dev")
            for ex in load_crossner_raw(data, domain, split)
            for e in ex.entities
        }
    )
    return {tag: CROSSNER_NAMES[tag] for tag in tags}


def dev_half(text: str) -> str:
    """'A' or 'B': the first byte of the SHA-1 of the sentence text, even -> A (deterministic)."""
    return "A" if hashlib.sha1(text.encode("utf-8")).digest()[0] % 2 == 0 else "B"


def split_dev(examples: Sequence[Example]) -> tuple[list[Example], list[Example]]:
    a = [ex for ex in examples if dev_half(ex.text) == "A"]
    b = [ex for ex in examples if dev_half(ex.text) == "B"]
    return a, b


def _take(examples: Sequence[Example], n: int, rng: random.Random) -> list[Example]:
    """`n` rows: whole shuffled passes over `examples` (repeats only when n > len)."""
    out: list[Example] = []
    while len(out) < n:
        chunk = list(examples)
        rng.shuffle(chunk)
        out += chunk[: n - len(out)]
    return out


def seed_sources(target: str | None) -> list[str]:
    """Sources of the generalist seed for target D (None: all domains, e.g. for a CoNLL-only check)."""
    return [CONLL, *(d for d in DOMAINS if d != target), *MIT_SOURCES]


# Label families, in our own words: a broad type and the narrower types other sources split off it.
# A source that annotates any label of a family is never offered another label of that family as a
# negative (a CoNLL "person" may be a politician; a music "organisation" may be a university).
FAMILIES: dict[str, set[str]] = {
    "person": {
        "person",
        "politician",
        "writer",
        "scientist",
        "researcher",
        "musical artist",
        "actor",
        "director",
        "character",
    },
    "organisation": {
        "organisation",
        "political party",
        "band",
        "university",
        "restaurant name",
        "academic journal",
        "magazine",
        "conference",
    },
    "location": {"location", "country", "restaurant location"},
}
MAX_EXTRA_NEGATIVES = 4  # labels from other sources offered per row: uniform in 0..4


@dataclass
class SeedRow:
    """A gold training row and the label set it is offered (its source's labels + sampled negatives)."""

    example: Example
    labels: list[str]
    source: str


def source_labels(data: Path, source: str) -> list[str]:
    """Every readable label a source annotates (its tag set), in a fixed order."""
    if source in MIT_SOURCES:
        return sorted(MIT_NAMES[source].values())
    return sorted(set(domain_labels(data, source).values()))


def offered_labels(own: Sequence[str], pool: Sequence[str], rng: random.Random) -> list[str]:
    """The source's own labels (annotation is exhaustive: each absent one is a true negative) plus up
    to MAX_EXTRA_NEGATIVES labels of other sources, never one of a family the source annotates."""
    blocked = set(own)
    for family in FAMILIES.values():
        if family & blocked:
            blocked |= family
    others = [label for label in pool if label not in blocked]
    extra = rng.sample(others, min(rng.randint(0, MAX_EXTRA_NEGATIVES), len(others)))
    return [*own, *extra]


def generalist_rows(data: Path, target: str, n_rows: int, seed: int) -> tuple[list[SeedRow], dict[str, int]]:
    """`n_rows` gold rows mixed by `MIX` from every train split except `target`'s; also rows per source."""
    if target not in DOMAINS:
        raise ValueError(f"unknown target domain {target!r}; one of {DOMAINS}")
    rng = random.Random(seed)
    others = [d for d in DOMAINS if d != target]
    counts = {d: round(n_rows * MIX["crossner"] / len(others)) for d in others}
    counts |= {s: round(n_rows * MIX[s]) for s in (CONLL, *MIT_SOURCES)}
    own = {source: source_labels(data, source) for source in counts}
    pool = sorted({label for labels in own.values() for label in labels})
    rows: list[SeedRow] = []
    for source, n in counts.items():
        examples = load_source(data, source, "train")
        taken = _take(examples, n, rng) if source in DOMAINS else rng.sample(examples, min(n, len(examples)))
        rows += [SeedRow(ex, offered_labels(own[source], pool, rng), source) for ex in taken]
    rng.shuffle(rows)
    return rows, counts


def conll_rows(data: Path, n_rows: int, seed: int) -> list[SeedRow]:
    """`n_rows` CoNLL-2003 train sentences, each offered CoNLL's four labels (the CoNLL-only seed)."""
    examples = load_source(data, CONLL, "train")
    labels = source_labels(data, CONLL)
    return [
        SeedRow(ex, list(labels), CONLL)
        for ex in random.Random(seed).sample(examples, min(n_rows, len(examples)))
    ]


def selection_dev(data: Path, target: str | None, per_source: int) -> list[Example]:
    """Seed model selection: the first `per_source` dev sentences of CoNLL and of every domain but D."""
    sources = [CONLL] if target is None else [CONLL, *(d for d in DOMAINS if d != target)]
    return [ex for s in sources for ex in load_source(data, s, "dev")[:per_source]]


def label_union(examples: Iterable[Example]) -> list[str]:
    return sorted({e.label for ex in examples for e in ex.entities})


def offered_union(rows: Iterable[SeedRow]) -> list[str]:
    """Every label some row is offered (the selection dev's label set)."""
    return sorted({label for row in rows for label in row.labels})


# ---------------------------------------------------------------------------
# files


def gold_record(ex: Example) -> dict:
    return {
        "text": ex.text,
        "spans": [{"start": e.start, "end": e.end, "label": e.label} for e in ex.entities],
    }


def write_jsonl(records: Iterable[Mapping], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")
    return path


def write_gold(examples: Iterable[Example], path: Path) -> Path:
    return write_jsonl((gold_record(ex) for ex in examples), path)


@dataclass
class DomainFiles:
    """What `prepare_domain` wrote for target D (paths under `<work>/<D>/data/`)."""

    corpus: Path  # {"text"} per line: D's train text without tags
    dev_a: Path  # gold rows, half A of D's dev (selection, calibration)
    dev_b: Path  # gold rows, half B of D's dev (reported)
    labels: Path  # {"labels": {tag: readable}}
    labels_map: dict[str, str]

    @property
    def readable(self) -> list[str]:
        return list(self.labels_map.values())


def prepare_domain(data: Path, domain: str, out: Path) -> DomainFiles:
    """D's corpus, dev halves and labels under `out` (idempotent: same inputs, same files)."""
    out.mkdir(parents=True, exist_ok=True)
    corpus = out / "corpus.jsonl"
    corpus.write_text(
        "".join(json.dumps({"text": ex.text}) + "\n" for ex in load_crossner_raw(data, domain, "train")),
        encoding="utf-8",
    )
    a, b = split_dev(load_source(data, domain, "dev"))
    labels_map = domain_labels(data, domain)
    labels = out / "labels.json"
    labels.write_text(json.dumps({"labels": labels_map}, indent=1) + "\n", encoding="utf-8")
    return DomainFiles(
        corpus, write_gold(a, out / "dev_A.jsonl"), write_gold(b, out / "dev_B.jsonl"), labels, labels_map
    )
