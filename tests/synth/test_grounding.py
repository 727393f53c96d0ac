"""Grounding: exact, then tolerant; occurrences; word boundaries; nothing invented."""

from __future__ import annotations

from synth import Grounder, GroundingConfig

TEXT = 'The World Bank hired Ada  Lovelace. Ada left the “World Bank” in 2019; bankers said: "Ada"!'


def spans(needle: str, **config) -> list[tuple[int, int, bool]]:
    return [(m.start, m.end, m.exact) for m in Grounder(TEXT, GroundingConfig(**config)).find(needle)]


def test_exact_match_gives_character_offsets_end_exclusive() -> None:
    [(start, end, exact)] = spans("World Bank")
    assert TEXT[start:end] == "World Bank" and start == 4 and exact


def test_first_or_all_occurrences_in_text_order() -> None:
    first = spans("Ada")
    every = spans("Ada", occurrences="all")
    assert first == every[:1]
    assert [TEXT[s:e] for s, e, _ in every] == ["Ada", "Ada", "Ada"]
    assert [s for s, _, _ in every] == sorted(s for s, _, _ in every)


def test_tolerant_match_case_whitespace_quotes() -> None:
    [(start, end, exact)] = spans("ada lovelace")  # case + the double space in the text
    assert TEXT[start:end] == "Ada  Lovelace" and not exact
    [(start, end, _)] = spans('"World Bank"', occurrences="first")  # exact hit inside typographic quotes
    assert TEXT[start:end] == "World Bank"
    [(start, end, exact)] = spans("“world bank”.")  # quotes and trailing punctuation stripped
    assert TEXT[start:end] == "World Bank" and not exact


def test_tolerant_can_be_switched_off() -> None:
    assert spans("ada lovelace", tolerant=False) == []


def test_word_boundaries() -> None:
    assert spans("bank", tolerant=False) == []  # exact only inside "bankers"
    [(start, end, exact)] = spans("bank")  # tolerant: the word "Bank", not "bank" in "bankers"
    assert (TEXT[start:end], start, exact) == ("Bank", TEXT.index("Bank"), False)
    assert spans("Lovelac") == []
    assert spans("Lovelac", word_boundaries=False) != []


def test_not_in_text_or_no_content_is_ungrounded() -> None:
    assert spans("Charles Babbage") == []
    assert spans("") == []
    assert spans(";") == []  # punctuation only
    assert spans("   ") == []


def test_scores_follow_match_kind() -> None:
    grounder = Grounder(TEXT, GroundingConfig(exact_score=1.0, tolerant_score=0.7))
    assert grounder.score(grounder.find("Ada")[0]) == 1.0
    assert grounder.score(grounder.find("ADA LOVELACE")[0]) == 0.7
