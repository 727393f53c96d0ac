"""Writes the shipped sample data: a small unlabeled corpus and gold seed/dev sets.

    python pipelines/sample/make_sample.py

The sentences are built from templates written for this project, with entities
marked inline as [text](label); offsets are computed, never typed by hand. The
output is deterministic, so the committed files can be regenerated exactly.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent

PEOPLE = [
    "Maria Lindqvist",
    "Daniel Okafor",
    "Aiko Tanaka",
    "Rafael Moreno",
    "Priya Raman",
    "Tomasz Nowak",
    "Grace Mensah",
    "Lukas Becker",
    "Fatima Haddad",
    "Oliver Grant",
    "Chen Wei",
    "Sofia Rossi",
    "Kwame Asante",
    "Elena Petrova",
    "Jonas Berg",
    "Amara Obi",
    "Hugo Laurent",
    "Mei Lin",
    "Ines Duarte",
    "Samuel Cohen",
    "Nadia Karim",
    "Pedro Alves",
    "Hanna Virtanen",
    "Omar Farouk",
]
ORGS = [
    "Nordhavn Shipping",
    "the University of Oslo",
    "Helix Biotech",
    "the World Bank",
    "Solaris Energy",
    "the Port of Rotterdam Authority",
    "Kestrel Airlines",
    "the Red Cross",
    "Arcadia Software",
    "the European Space Agency",
    "Mistral Foods",
    "Blue Harbor Bank",
    "the National Theatre",
    "Quantum Rail",
    "Greenfield Hospital",
    "the Tokyo Stock Exchange",
    "Atlas Mining",
    "UNESCO",
]
PLACES = [
    "Gothenburg",
    "Singapore",
    "Lagos",
    "Kyoto",
    "Buenos Aires",
    "Krakow",
    "Accra",
    "Hamburg",
    "Nairobi",
    "Lisbon",
    "Toronto",
    "Chennai",
    "Helsinki",
    "Cairo",
    "Melbourne",
    "Valparaiso",
    "Reykjavik",
    "Marseille",
    "Brazil",
    "Norway",
    "Kenya",
    "Japan",
    "Canada",
    "Portugal",
]
DATES = [
    "14 March 2025",
    "Tuesday",
    "last year",
    "June 2023",
    "1 January 2024",
    "the spring of 2022",
    "2019",
    "Monday morning",
    "October 2021",
    "12 August",
    "the end of 2026",
    "5 May 2020",
    "next month",
    "1998",
]
TEMPLATES = [
    "On [{date}](date), [{person}](person), chief executive of [{org}](organisation), announced a new office in [{place}](location).",
    "[{person}](person) joined [{org}](organisation) in [{date}](date) after ten years in [{place}](location).",
    "[{org}](organisation) opened a research centre in [{place}](location) on [{date}](date).",
    "Speaking in [{place}](location), [{person}](person) said [{org}](organisation) would double its staff.",
    "The agreement between [{org}](organisation) and [{org2}](organisation) was signed in [{place}](location) on [{date}](date).",
    "[{person}](person) and [{person2}](person) met in [{place}](location) to discuss the merger.",
    "Shares of [{org}](organisation) rose sharply in [{date}](date), analysts in [{place}](location) said.",
    "[{person}](person), who grew up in [{place}](location), now leads [{org}](organisation).",
    "A delegation from [{org}](organisation) visited [{place}](location) and [{place2}](location) in [{date}](date).",
    "In [{date}](date), [{person}](person) resigned from the board of [{org}](organisation).",
    "[{org}](organisation) hired [{person}](person) as its new head of research.",
    "The festival in [{place}](location) was opened by [{person}](person) on [{date}](date).",
    "According to [{person}](person), [{org}](organisation) will move its headquarters to [{place}](location).",
    "Flights between [{place}](location) and [{place2}](location) were cancelled on [{date}](date).",
    "[{person}](person) received an award from [{org}](organisation) in [{place}](location).",
    "Prices fell across the region, and nobody expected a recovery before the summer.",
    "The committee will publish its findings after the review is complete.",
]
MARK = re.compile(r"\[([^\]]+)\]\(([^)]+)\)")


def sentence(rng: random.Random) -> str:
    people, orgs, places = rng.sample(PEOPLE, 2), rng.sample(ORGS, 2), rng.sample(PLACES, 2)
    text = rng.choice(TEMPLATES).format(
        person=people[0],
        person2=people[1],
        org=orgs[0],
        org2=orgs[1],
        place=places[0],
        place2=places[1],
        date=rng.choice(DATES),
    )
    return text[0].upper() + text[1:] if not text.startswith("[") else text


def unmark(marked: str) -> dict:
    """Inline [text](label) markup to {"text", "spans": [{"start", "end", "label"}]}."""
    text, spans, last = "", [], 0
    for match in MARK.finditer(marked):
        text += marked[last : match.start()]
        start = len(text)
        text += match.group(1)
        spans.append({"start": start, "end": len(text), "label": match.group(2)})
        last = match.end()
    text += marked[last:]
    text = text[0].upper() + text[1:]
    return {"text": text, "spans": spans}


def main() -> None:
    rng = random.Random(2025)
    seed = [unmark(sentence(rng)) for _ in range(80)]
    dev = [unmark(sentence(rng)) for _ in range(40)]
    corpus = [
        {
            "doc_id": f"sample-{i:04d}",
            "text": " ".join(unmark(sentence(rng))["text"] for _ in range(rng.randint(1, 3))),
        }
        for i in range(240)
    ]
    for name, rows in [("gold_seed.jsonl", seed), ("gold_dev.jsonl", dev), ("corpus.jsonl", corpus)]:
        with open(HERE / name, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(f"wrote {len(rows)} rows to {HERE / name}")


if __name__ == "__main__":
    main()
