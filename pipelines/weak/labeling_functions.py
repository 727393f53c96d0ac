"""Labeling functions declared in config: gazetteers and regular expressions -> spans per document.

Each labeling function (LF) is one weak source: its spans carry `origin` = `lf:gazetteer:<name>` or
`lf:regex:<name>` and the LF's configured `score`, so the label model (`pipelines.weak.label_model`) can learn
how far to trust it.

Gazetteer  names per label from a file; matched with an Aho-Corasick automaton (`pyahocorasick`), so
           the cost grows with the text, not with the number of names. Matches are whole words by
           default (a name edge that is a word character must not touch another word character: `Paris`
           is not found in `Parisian`; an edge that is not, like the end of `C++`, needs no boundary) and
           the longest match wins among overlapping ones (then the leftmost). `case_sensitive: false`
           lower-cases text and names one character at a time, so offsets stay those of the text even
           where a lower-cased character would be longer (`İ`).
Regex      a Python regular expression per label; the span is the whole match or one (named) group.

`LabelingFunctions` is a callable class for Ray Data `map_batches` (one compiled set per actor);
`apply_labeling_functions` is the same as a plain function (compiled sets are cached per process).
Both take documents (`doc_id, text, source`, any other columns kept) and return them with the LF spans
appended to the `spans` column (created when absent).
"""

from __future__ import annotations

import bisect
import csv
import io
import json
import logging
import unicodedata
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path

import ahocorasick
import pyarrow as pa

from pipelines.config import GazetteerConfig, LabelingFunctionsConfig, RegexConfig
from pipelines.data.spans import SPANS_TYPE

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------------
# gazetteer files


class GazetteerError(ValueError):
    """A gazetteer file that cannot be read: one line naming the file and the fix."""


def read_text(path: str) -> str:
    """A local file or a pyarrow-filesystem URI (`s3://…`), as UTF-8 text."""
    try:
        if "://" in path:
            import pyarrow.fs

            filesystem, inner = pyarrow.fs.FileSystem.from_uri(path)
            with filesystem.open_input_stream(inner) as stream:
                data = stream.read()
        else:
            data = Path(path).expanduser().read_bytes()
    except (OSError, pa.ArrowException) as error:
        raise GazetteerError(f"gazetteer file {path}: cannot read it ({error})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise GazetteerError(
            f"gazetteer file {path}: not UTF-8 ({error.reason} at byte {error.start})"
        ) from None


def _pairs_from_json(data: object, path: str) -> Iterable[tuple[str, str | None]]:
    if isinstance(data, Mapping):
        for label, names in data.items():
            if not isinstance(names, list):
                raise GazetteerError(f"gazetteer file {path}: label {label!r} must map to a list of names")
            yield from ((str(name), str(label)) for name in names)
    elif isinstance(data, list):
        for item in data:
            if isinstance(item, str):
                yield item, None
            elif isinstance(item, Mapping) and isinstance(item.get("name"), str):
                label = item.get("label")
                yield item["name"], str(label) if label is not None else None
            else:
                raise GazetteerError(
                    f"gazetteer file {path}: each entry must be a name or {{'name', 'label'}}"
                )
    else:
        raise GazetteerError(f"gazetteer file {path}: expected a list of names or {{label: [names]}}")


def read_gazetteer(path: str, default_label: str | None = None) -> dict[str, str]:
    """name -> label, in file order; blank names are skipped, a repeated name keeps its first label."""
    text = read_text(path)
    suffix = Path(path).suffix.lower()
    pairs: Iterable[tuple[str, str | None]]
    if suffix == ".json":
        try:
            pairs = list(_pairs_from_json(json.loads(text), path))
        except json.JSONDecodeError as error:
            raise GazetteerError(f"gazetteer file {path}: not valid JSON ({error})") from None
    elif suffix == ".jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise GazetteerError(
                        f"gazetteer file {path}: line {number} is not JSON ({error})"
                    ) from None
        pairs = list(_pairs_from_json(rows, path))
    elif suffix in (".csv", ".tsv"):
        reader = csv.DictReader(io.StringIO(text), delimiter="\t" if suffix == ".tsv" else ",")
        if not reader.fieldnames or "name" not in reader.fieldnames:
            raise GazetteerError(f"gazetteer file {path}: needs a header with a `name` column (and `label`)")
        pairs = [(row["name"] or "", row.get("label") or None) for row in reader]
    else:
        pairs = [(line, None) for line in text.splitlines() if not line.lstrip().startswith("#")]

    names: dict[str, str] = {}
    repeated = 0
    for raw, label in pairs:
        name = raw.strip()
        if not name:
            continue
        label = label or default_label
        if not label:
            raise GazetteerError(
                f"gazetteer file {path}: name {name!r} has no label; give `label` in the config"
            )
        if name in names:
            repeated += names[name] != label
            continue
        names[name] = label
    if repeated:
        log.warning("gazetteer %s: %d name(s) listed with two labels keep their first label", path, repeated)
    if not names:
        raise GazetteerError(f"gazetteer file {path}: holds no names")
    return names


# ---------------------------------------------------------------------------------------------------
# matching


def fold_case(text: str) -> str:
    """Lower case, one character at a time, so that the result has the text's length (offsets hold)."""
    if text.isascii():
        return text.lower()
    return "".join(low if len(low := ch.lower()) == 1 else ch for ch in text)


def is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_" or unicodedata.category(ch) in ("Mn", "Mc")


def keep_longest(matches: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Non-overlapping matches: the longest first, then the leftmost; sorted by start."""
    starts: list[int] = []
    kept: list[tuple[int, int, str]] = []  # sorted by start, parallel to `starts`
    for match in sorted(matches, key=lambda m: (m[0] - m[1], m[0])):
        start, end, _ = match
        i = bisect.bisect_right(starts, start)
        if i and kept[i - 1][1] > start:
            continue
        if i < len(kept) and kept[i][0] < end:
            continue
        starts.insert(i, start)
        kept.insert(i, match)
    return kept


class Gazetteer:
    """An Aho-Corasick automaton over a gazetteer's names."""

    def __init__(self, config: GazetteerConfig, names: Mapping[str, str] | None = None):
        self.config = config
        names = names if names is not None else read_gazetteer(config.path, config.label)
        self.labels = sorted(set(names.values()))
        self.automaton = ahocorasick.Automaton()
        added = 0
        for name, label in names.items():
            key = name if config.case_sensitive else fold_case(name)
            if key not in self.automaton:  # after case folding two names may meet: the first stays
                self.automaton.add_word(key, (len(key), label))
                added += 1
        self.automaton.make_automaton()
        self.size = added

    def find(self, text: str) -> list[tuple[int, int, str]]:
        """(start, end, label) of every kept match, end exclusive, sorted by start."""
        if not text:
            return []
        haystack = text if self.config.case_sensitive else fold_case(text)
        matches = []
        for last, (length, label) in self.automaton.iter(haystack):
            start, end = last - length + 1, last + 1
            if self.config.whole_word and not self._whole_word(text, start, end):
                continue
            matches.append((start, end, label))
        return keep_longest(matches)

    @staticmethod
    def _whole_word(text: str, start: int, end: int) -> bool:
        if start > 0 and is_word_char(text[start]) and is_word_char(text[start - 1]):
            return False
        return not (end < len(text) and is_word_char(text[end - 1]) and is_word_char(text[end]))


class RegexFunction:
    def __init__(self, config: RegexConfig):
        self.config = config
        self.pattern = config.compile()
        self.labels = [config.label]

    def find(self, text: str) -> list[tuple[int, int, str]]:
        found = []
        for match in self.pattern.finditer(text):
            start, end = match.span(self.config.group)
            if 0 <= start < end:  # a group that did not take part, or matched nothing, yields no span
                found.append((start, end, self.config.label))
        return found


class LabelingFunctions:
    """All configured LFs, compiled once; a callable class for `map_batches(batch_format="pyarrow")`."""

    def __init__(self, config: LabelingFunctionsConfig, column: str = "spans"):
        self.functions: list[tuple[str, float, Gazetteer | RegexFunction]] = [
            *((g.origin, g.score, Gazetteer(g)) for g in config.gazetteers),
            *((r.origin, r.score, RegexFunction(r)) for r in config.regexes),
        ]
        self.column = column

    @property
    def scopes(self) -> dict[str, list[str]]:
        """origin -> the labels it can yield (for `label_model.SourceConfig.labels`)."""
        return {origin: list(lf.labels) for origin, _, lf in self.functions}

    def spans(self, text: str) -> list[dict]:
        out: list[dict] = []
        for origin, score, lf in self.functions:
            out.extend(
                {"start": s, "end": e, "label": label, "score": score, "origin": origin}
                for s, e, label in lf.find(text)
            )
        return out

    def __call__(self, batch: pa.Table) -> pa.Table:
        if "text" not in batch.column_names:
            raise ValueError(
                f"labeling functions: the batch has no `text` column; it has {batch.column_names}"
            )
        texts = batch.column("text").to_pylist()
        found = [self.spans(text or "") for text in texts]
        if self.column in batch.column_names:
            given = batch.column(self.column).to_pylist()
            found = [(old or []) + new for old, new in zip(given, found, strict=True)]
            index = batch.column_names.index(self.column)
            return batch.set_column(index, self.column, pa.array(found, type=SPANS_TYPE))
        return batch.append_column(self.column, pa.array(found, type=SPANS_TYPE))


@lru_cache(maxsize=4)
def _compiled(config_json: str, column: str) -> LabelingFunctions:
    return LabelingFunctions(LabelingFunctionsConfig.model_validate_json(config_json), column)


def apply_labeling_functions(
    batch: pa.Table, config: LabelingFunctionsConfig, column: str = "spans"
) -> pa.Table:
    """Documents -> the same rows with LF spans appended to `column`; compiled LFs are cached per process.
    Use: `ds.map_batches(partial(apply_labeling_functions, config=cfg), batch_format="pyarrow")`."""
    return _compiled(config.model_dump_json(), column)(batch)
