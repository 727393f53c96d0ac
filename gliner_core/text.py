"""Words, prompts and character offsets.

GLiNER works on words, not characters: a text is split into words (the official
default splitter, a regex), the labels are put in front as a prompt, and spans
are counted in words. Everything that leaves this package is in characters
again (start inclusive, end exclusive).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

# The official package's default ("whitespace") splitter: words with inner
# hyphens/underscores stay whole, every other non-space character is a word.
WORD_PATTERN = re.compile(r"\w+(?:[-_]\w+)*|\S")
SURROGATES = re.compile("[\ud800-\udfff]")  # lone UTF-16 surrogates: no tokenizer can encode them


def clean_text(text: str) -> str:
    """Lone UTF-16 surrogates (e.g. from a JSON `\\ud800` escape) cannot be tokenized: each becomes
    U+FFFD, so lengths and character offsets stay the same."""
    return text if text.isascii() else SURROGATES.sub("\ufffd", text)


@dataclass(frozen=True)
class Words:
    """A text split into words, with each word's character offsets."""

    text: str
    tokens: list[str]
    starts: list[int]  # character offset of each word's first character
    ends: list[int]  # character offset one past each word's last character

    def __len__(self) -> int:
        return len(self.tokens)

    def char_span(self, first_word: int, last_word: int) -> tuple[int, int]:
        """Character offsets (end exclusive) of words first_word..last_word (inclusive)."""
        return self.starts[first_word], self.ends[last_word]


def split_words(text: str) -> Words:
    """Split `text` into words with character offsets, like the official splitter."""
    tokens: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    for match in WORD_PATTERN.finditer(text):
        tokens.append(match.group())
        starts.append(match.start())
        ends.append(match.end())
    return Words(text=text, tokens=tokens, starts=starts, ends=ends)


def char_to_word_span(words: Words, start: int, end: int) -> tuple[int, int] | None:
    """Word indices (inclusive) covering characters [start, end), or None.

    A character span maps to the words it touches; a span that touches no word
    (only whitespace) gives None.
    """
    first = bisect.bisect_right(words.ends, start)  # first word ending after `start`
    last = bisect.bisect_left(words.starts, end) - 1  # last word starting before `end`
    if first >= len(words) or last < first:
        return None
    return first, last
