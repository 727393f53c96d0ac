"""Labeling functions of the CrossNER `lf` variants: gazetteers (`bench/lexicons/`) and regular expressions.

Written from general knowledge of how these names look in English (no CrossNER sentence or gold span was
read to write them; see `bench/lexicons/README.md`). `labeling_functions(labels)` returns the
`weak_label.labeling_functions` section for a domain: only the functions whose label the domain has.
Every span of a labeling function scores `SCORE`; with the union merge policy it wins over a GLiNER
span it overlaps unless GLiNER is surer.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LEXICONS = Path(__file__).resolve().parent / "lexicons"
SCORE = 0.9

CAP = r"[A-Z][\w'&.-]*"  # a capitalised word
# (label, source name, gazetteer file, case sensitive)
GAZETTEERS: list[tuple[str, str, Path, bool]] = [
    ("country", "iso_countries", ROOT / "pipelines" / "sample" / "countries.txt", True),
    ("country", "country_short_forms", LEXICONS / "country_short_forms.txt", True),
    ("music genre", "music_genres", LEXICONS / "music_genres.txt", False),
    ("musical instrument", "musical_instruments", LEXICONS / "musical_instruments.txt", False),
    ("chemical element", "chemical_elements", LEXICONS / "chemical_elements.txt", False),
    ("astronomical object", "astronomical_objects", LEXICONS / "astronomical_objects.txt", True),
    ("discipline", "disciplines", LEXICONS / "disciplines.txt", False),
]
# (label, source name, pattern): what such names usually look like
REGEXES: list[tuple[str, str, str]] = [
    # "1998 Brazilian general election", "2004 European Parliament elections"
    ("election", "year_election", rf"\b(?:1[89]|20)\d\d\s+(?:{CAP}\s+){{0,4}}(?:[a-z]+\s+)?elections?\b"),
    # "Labour Party", "Social Democratic Party of Germany" (the part before "of")
    ("political party", "named_party", rf"\b(?:{CAP}\s+){{1,5}}Party\b"),
    # "University of Oxford", "Stanford University", "Massachusetts Institute of Technology"
    (
        "university",
        "named_university",
        rf"\b(?:University\s+of(?:\s+{CAP}){{1,3}}|(?:{CAP}\s+){{1,3}}(?:University|Institute\s+of\s+Technology))\b",
    ),
    # "Journal of Chemical Physics", "Astrophysical Journal", "Physical Review Letters"
    (
        "academic journal",
        "named_journal",
        rf"\b(?:Journal\s+of(?:\s+(?:the\s+)?{CAP}){{1,4}}|(?:{CAP}\s+){{1,3}}Journal|Physical\s+Review(?:\s+{CAP})?|Annals\s+of(?:\s+{CAP}){{1,3}})\b",
    ),
    # "Nobel Prize in Physics", "Grammy Award", "Copley Medal"
    (
        "award",
        "named_award",
        rf"\b(?:Nobel\s+Prize(?:\s+in\s+{CAP})?|(?:{CAP}\s+){{1,4}}(?:Award|Prize|Medal)s?)\b",
    ),
    # "World War II", "Woodstock Festival", "French Revolution", "1992 Summer Olympics"
    (
        "event",
        "named_event",
        rf"\b(?:World\s+War\s+(?:I{{1,2}}|One|Two)|(?:(?:1[89]|20)\d\d\s+)?(?:{CAP}\s+){{1,4}}(?:Festival|Revolution|War|Olympics|Summit|Championships?))\b",
    ),
    # lower-case words ending in -ase name enzymes ("kinase", "DNA polymerase" -> "polymerase")
    (
        "enzyme",
        "ase_suffix",
        r"\b(?!(?:base|case|release|phase|increase|decrease|disease|database|purchase|chase|ease|lease|"
        r"cease|vase|erase|showcase|suitcase|staircase|briefcase|crease|phrase|please|tease)s?\b)"
        r"[a-z][a-z-]{2,}ases?\b",
    ),
    # a quoted title in a music text: "Like a Rolling Stone"
    ("song", "quoted_title", r"\"(?P<title>[A-Z][^\"\n]{1,60}?)\""),
]


def labeling_functions(labels: list[str]) -> dict:
    """The `weak_label.labeling_functions` section for a domain with `labels`."""
    wanted = set(labels)
    return {
        "gazetteers": [
            {"name": name, "path": str(path), "label": label, "case_sensitive": case, "score": SCORE}
            for label, name, path, case in GAZETTEERS
            if label in wanted
        ],
        "regexes": [
            {
                "name": name,
                "label": label,
                "pattern": pattern,
                "group": "title" if "?P<title>" in pattern else 0,
                "score": SCORE,
            }
            for label, name, pattern in REGEXES
            if label in wanted
        ],
    }
