"""Grounding: find a span string from the LLM in the source text, as character offsets.

Exact match first; on a miss (and with `tolerant`), a match that ignores case, runs of
whitespace, typographic quotes/dashes and quotes or trailing punctuation around the string.
A string found several times gives its first occurrence or all of them (by config), always
in text order. A string that is not in the text gives nothing: whatever the model says, a
span points at characters of the document (this is what makes prompt injection harmless).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from synth.config import GroundingConfig

_QUOTES = {c: "'" for c in "\u2018\u2019\u201a\u201b\u2032`\u00b4"} | {
    c: '"' for c in "\u201c\u201d\u201e\u201f\u00ab\u00bb\u2033"
}
_DASHES = {c: "-" for c in "\u2010\u2011\u2012\u2013\u2014\u2015\u2212"}
_TRANSLATE = _QUOTES | _DASHES
_STRIP = " \t\r\n\"'"
_TRAILING = ".,;:!?"


@dataclass(frozen=True)
class Match:
    start: int
    end: int
    exact: bool


def _normalise_char(ch: str) -> str:
    if ch.isspace():
        return " "
    return _TRANSLATE.get(ch, ch).casefold()


def _normalise(text: str) -> tuple[str, list[int]]:
    """Normalised text and, per normalised character, the index of its source character.
    Whitespace runs collapse to one space."""
    out: list[str] = []
    index: list[int] = []
    previous_space = False
    for i, ch in enumerate(text):
        norm = _normalise_char(ch)
        if norm == " ":
            if previous_space:
                continue
            previous_space = True
        else:
            previous_space = False
        for piece in norm:
            out.append(piece)
            index.append(i)
    return "".join(out), index


def _has_content(needle: str) -> bool:
    return any(ch.isalnum() for ch in needle)


class Grounder:
    """Finds span strings in one document (normalises the document once, lazily)."""

    def __init__(self, text: str, config: GroundingConfig | None = None):
        self.text = text
        self.config = config or GroundingConfig()
        self._norm: tuple[str, list[int]] | None = None

    def _boundary_ok(self, start: int, end: int) -> bool:
        if not self.config.word_boundaries:
            return True
        text = self.text
        if start > 0 and text[start].isalnum() and text[start - 1].isalnum():
            return False
        return not (end < len(text) and text[end - 1].isalnum() and text[end].isalnum())

    def _exact(self, needle: str) -> list[Match]:
        found: list[Match] = []
        at = self.text.find(needle)
        while at >= 0:
            if self._boundary_ok(at, at + len(needle)):
                found.append(Match(at, at + len(needle), True))
            at = self.text.find(needle, at + 1)
        return found

    def _tolerant(self, needle: str) -> list[Match]:
        if self._norm is None:
            self._norm = _normalise(self.text)
        norm_text, index = self._norm
        key = _normalise(needle)[0].strip(_STRIP).rstrip(_TRAILING).strip(_STRIP)
        if not key:
            return []
        found: list[Match] = []
        for hit in re.finditer(re.escape(key), norm_text):
            start = index[hit.start()]
            end = index[hit.end() - 1] + 1
            if self._boundary_ok(start, end):
                found.append(Match(start, end, False))
        return found

    def find(self, needle: str | None) -> list[Match]:
        """Occurrences of `needle` (first, or all, per config); [] when it is not in the text
        or has no letter or digit."""
        if not needle or not _has_content(needle):
            return []
        matches = self._exact(needle)
        if not matches and self.config.tolerant:
            matches = self._tolerant(needle)
        if self.config.occurrences == "first":
            return matches[:1]
        return matches

    def first(self, needle: str | None) -> Match | None:
        """The first occurrence only (used where one answer needs one position, e.g. a
        relation's head), whatever `occurrences` says."""
        if not needle or not _has_content(needle):
            return None
        matches = self._exact(needle)
        if not matches and self.config.tolerant:
            matches = self._tolerant(needle)
        return matches[0] if matches else None

    def score(self, match: Match) -> float:
        return self.config.exact_score if match.exact else self.config.tolerant_score
