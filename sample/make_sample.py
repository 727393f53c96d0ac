"""Writes the shipped sample data: a multi-domain gold seed, and an unlabeled corpus and a gold dev
set from another domain, plus a country gazetteer for the weak-label stage.

    python sample/make_sample.py          # rewrites the files beside this script

gold_seed.jsonl   news, business and travel sentences (what a generalist seed is trained on)
corpus.jsonl      sport reports, one to three sentences each (unlabeled: what self-training reads)
gold_dev.jsonl    sport sentences, labeled (what every model is scored on)
countries.txt     ISO 3166-1 country names from the `pycountry` package (a location gazetteer)

Every sentence comes from templates written for this project, with entities marked inline as
[text](label); offsets are computed, never typed by hand. The seed's entity names and the sport
names are disjoint, and no dev entity is a gazetteer name (checked here and by the tests). The
output is deterministic (a fixed random seed and pycountry's data), so the committed files can be
regenerated exactly: `tests/pipelines/test_sample.py` compares them.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

HERE = Path(__file__).resolve().parent
RANDOM_SEED = 2026
SEED_ROWS_PER_DOMAIN = 40
DEV_ROWS = 120
CORPUS_DOCUMENTS = 200
MARK = re.compile(r"\[([^\]]+)\]\(([^)]+)\)")

# --- the seed: news, business and travel ------------------------------------------------------

SEED_PEOPLE = [
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
SEED_COMPANIES = [
    "Nordhavn Shipping",
    "Helix Biotech",
    "Solaris Energy",
    "Arcadia Software",
    "Mistral Foods",
    "Blue Harbor Bank",
    "Quantum Rail",
    "Atlas Mining",
    "Copperline Telecom",
    "Verdant Insurance",
]
SEED_PUBLIC_BODIES = [
    "the Ministry of Transport",
    "the city council",
    "the World Bank",
    "the Red Cross",
    "the European Space Agency",
    "the National Theatre",
    "Greenfield Hospital",
    "the University of Oslo",
    "UNESCO",
    "the Supreme Court",
]
SEED_TRAVEL_ORGS = [
    "Kestrel Airlines",
    "Seabright Ferries",
    "the Grand Meridian Hotel",
    "Wayfarer Tours",
    "the Port of Rotterdam Authority",
    "Skyline Coaches",
    "the national tourist board",
    "Aurora Cruises",
]
SEED_CITIES = [
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
]
SEED_COUNTRIES = ["Brazil", "Norway", "Kenya", "Japan", "Canada", "Portugal", "Chile", "Vietnam"]
# (preposition, date): a template's "{when}" becomes e.g. "on [Tuesday](date)" or "[last year](date)"
SEED_DATES = [
    ("on", "14 March 2025"),
    ("on", "Tuesday"),
    ("", "last year"),
    ("in", "June 2023"),
    ("on", "1 January 2024"),
    ("in", "the spring of 2022"),
    ("in", "2019"),
    ("on", "Monday morning"),
    ("in", "October 2021"),
    ("on", "12 August"),
    ("by", "the end of 2026"),
    ("on", "5 May 2020"),
    ("", "next month"),
    ("in", "1998"),
]
NEWS = [
    "{when}, [{person}](person), a spokesperson for [{body}](organisation), said the new law would take effect in [{city}](location).",
    "[{body}](organisation) opened an inquiry into the flooding in [{city}](location) {when}.",
    "Speaking in [{city}](location), [{person}](person) urged [{body}](organisation) to publish the report.",
    "[{person}](person) was elected mayor of [{city}](location) {when}.",
    "Protesters gathered outside [{body}](organisation) in [{city}](location) {when}.",
    "[{person}](person) and [{person2}](person) met in [{city}](location) to discuss the water shortage.",
    "A report by [{body}](organisation) says that rents in [{city}](location) have doubled {when}.",
    "[{body}](organisation) appointed [{person}](person) as its new director {when}.",
    "The minister, [{person}](person), visited [{country}](location) and [{country2}](location) {when}.",
    "Volunteers from [{body}](organisation) arrived in [{city}](location) after the storm.",
    "The committee will publish its findings after the review is complete.",
    "Officials said the bridge would stay closed until repairs were finished.",
]
BUSINESS = [
    "{when}, [{person}](person), chief executive of [{company}](organisation), announced a new office in [{city}](location).",
    "[{person}](person) joined [{company}](organisation) {when} after ten years in [{city}](location).",
    "[{company}](organisation) opened a research centre in [{city}](location) {when}.",
    "The agreement between [{company}](organisation) and [{company2}](organisation) was signed in [{city}](location) {when}.",
    "Shares of [{company}](organisation) rose sharply {when}, analysts in [{city}](location) said.",
    "[{person}](person), who grew up in [{city}](location), now leads [{company}](organisation).",
    "{when}, [{person}](person) resigned from the board of [{company}](organisation).",
    "[{company}](organisation) hired [{person}](person) as its new head of research.",
    "According to [{person}](person), [{company}](organisation) will move its headquarters to [{city}](location).",
    "[{company}](organisation) reported higher profits in [{country}](location) {when}.",
    "Prices fell across the region, and nobody expected a recovery before the summer.",
    "The company said it would cut costs and sell two of its factories.",
]
TRAVEL = [
    "[{travel}](organisation) will start daily flights between [{city}](location) and [{city2}](location) {when}.",
    "Flights between [{city}](location) and [{city2}](location) were cancelled {when}.",
    "Our guide, [{person}](person), showed us the old harbour of [{city}](location).",
    "[{travel}](organisation) added a summer route to [{country}](location) {when}.",
    "We stayed at [{travel}](organisation) in [{city}](location) for three nights.",
    "The festival in [{city}](location) was opened by [{person}](person) {when}.",
    "Travellers to [{country}](location) need a visa {when}, [{travel}](organisation) said.",
    "A delegation from [{travel}](organisation) visited [{city}](location) and [{city2}](location) {when}.",
    "[{person}](person) booked a ferry with [{travel}](organisation) from [{city}](location) to [{country}](location).",
    "The night train from [{city}](location) arrived four hours late {when}.",
    "The museum is closed on public holidays, and tickets must be bought in advance.",
    "It rained for most of the week, so we spent the afternoons in cafes.",
]

# --- the target domain: sport reports (corpus and dev) ---------------------------------------

ATHLETES = [
    "Anna Kowal",
    "Mateo Quiroga",
    "Yusuf Demir",
    "Leah Brandt",
    "Kofi Boateng",
    "Saskia Vermeer",
    "Diego Salazar",
    "Ingrid Solheim",
    "Tariq Mansour",
    "Nia Adeyemi",
    "Bruno Ferraz",
    "Keiko Mori",
    "Callum Reid",
    "Zofia Wrona",
    "Emeka Nwosu",
    "Lotte Janssen",
    "Arjun Mehta",
    "Carla Benitez",
    "Mikkel Dahl",
    "Amina Diallo",
    "Stefan Horvat",
    "Yara Haddou",
    "Jack Whitmore",
    "Paula Esteves",
    "Ivan Sokolov",
    "Rosa Delgado",
    "Felix Brandtner",
    "Hye-jin Park",
]
COACHES = [
    "Marco Bellini",
    "Sean O'Leary",
    "Helga Krause",
    "Ricardo Pinto",
    "Agnieszka Zielinska",
    "Thabo Mokoena",
    "Lars Eklund",
    "Monique Dubois",
]
CLUBS = [
    "Riverside Rovers",
    "Northgate United",
    "Eastbrook Athletic",
    "Kingsmere Rangers",
    "Saltcombe Town",
    "Ironbridge Albion",
    "Port Ellis",
    "Valley Wanderers",
    "Lakeside Comets",
    "Redcliffe Harriers",
    "Ashford Falcons",
    "Marlow Mariners",
]
GOVERNING_BODIES = [
    "the Continental Athletics Union",
    "the National Cycling Board",
    "the Coastal Basketball League",
    "the Premier Rowing Association",
    "the league's disciplinary panel",
    "the International Skating Council",
]
VENUES_CITIES = [
    "Bergen",
    "Porto",
    "Seville",
    "Turin",
    "Lyon",
    "Graz",
    "Ghent",
    "Utrecht",
    "Aarhus",
    "Tampere",
    "Brno",
    "Cork",
    "Bilbao",
    "Leipzig",
    "Durban",
    "Adelaide",
    "Auckland",
    "Montreal",
    "Curitiba",
    "Rosario",
    "Mombasa",
    "Kumasi",
    "Pune",
    "Busan",
]
SPORT_DATES = [
    ("on", "Saturday"),
    ("on", "Sunday"),
    ("on", "Wednesday evening"),
    ("on", "Friday night"),
    ("on", "3 April"),
    ("on", "21 September 2025"),
    ("", "last weekend"),
    ("in", "March 2026"),
    ("in", "2023"),
    ("during", "the 2024 season"),
    ("on", "11 November"),
    ("on", "2 February 2026"),
    ("", "last month"),
    ("in", "July 2025"),
]
# "{a}" is an athlete's full name, "{sa}" the same athlete's surname; "{place}" is a city in the dev
# set and a city or a country in the corpus (country names never appear in the dev set).
SPORT = [
    "[{a}](person) scored twice as [{club}](organisation) beat [{club2}](organisation) 3-1 in [{city}](location) {when}.",
    "[{club}](organisation) coach [{coach}](person) said the 2-2 draw left the title race wide open.",
    "[{a}](person) won the 10,000 metres in [{place}](location) in 29 minutes and 41 seconds.",
    "[{sa}](person) equalised in the 88th minute with a header from a corner.",
    "[{club}](organisation) have signed midfielder [{a}](person) from [{club2}](organisation) on a three-year deal.",
    "The marathon in [{city}](location) {when} was won by [{a}](person) in 2:07:15.",
    "[{body}](organisation) fined [{club}](organisation) after crowd trouble at the match {when}.",
    "[{a}](person) and [{a2}](person) will meet in the semi-final in [{city}](location).",
    "[{a}](person), 24, broke the national record at the indoor meeting in [{place}](location) {when}.",
    "After the match, [{sa}](person) told reporters that [{club}](organisation) deserved the win.",
    "[{club}](organisation) sacked manager [{coach}](person) {when} after five straight defeats.",
    "Goalkeeper [{a}](person) kept a clean sheet as [{club}](organisation) won 1-0 away at [{club2}](organisation).",
    "Tickets for the final in [{city}](location) sold out within an hour, [{body}](organisation) said.",
    "[{a}](person) finished second, eight seconds behind [{a2}](person), in the time trial in [{place}](location).",
    "[{sa}](person) has not played since injuring a knee against [{club2}](organisation) {when}.",
    "[{body}](organisation) will hold the championships in [{place}](location) {when}.",
    "[{club}](organisation) moved top of the table with a 4-0 win over [{club2}](organisation) {when}.",
    "[{coach}](person), who coached [{a}](person) for six years, joined [{club}](organisation) {when}.",
    "Rain delayed the start of the third stage, and the riders finished an hour late.",
    "The home side led 2-0 at half-time but conceded three goals in the last twenty minutes.",
    "Both teams lost a player to a red card before the break.",
]


def unmark(marked: str) -> dict:
    """Inline [text](label) markup -> {"text", "spans": [{"start", "end", "label"}]}."""
    text, spans, last = "", [], 0
    for match in MARK.finditer(marked):
        text += marked[last : match.start()]
        start = len(text)
        text += match.group(1)
        spans.append({"start": start, "end": len(text), "label": match.group(2)})
        last = match.end()
    text += marked[last:]
    return {"text": text[0].upper() + text[1:], "spans": spans}


def capitalised(marked: str) -> str:
    """A sentence that starts with a slot value such as 'the city council' starts with a capital."""
    if marked.startswith("[") and len(marked) > 1:
        return "[" + marked[1].upper() + marked[2:]
    return marked[0].upper() + marked[1:]


def when(date: tuple[str, str]) -> str:
    preposition, value = date
    return f"{preposition} [{value}](date)".lstrip()


def seed_sentence(rng: random.Random, templates: Sequence[str]) -> str:
    people, cities = rng.sample(SEED_PEOPLE, 2), rng.sample(SEED_CITIES, 2)
    companies, countries = rng.sample(SEED_COMPANIES, 2), rng.sample(SEED_COUNTRIES, 2)
    return rng.choice(templates).format(
        person=people[0],
        person2=people[1],
        body=rng.choice(SEED_PUBLIC_BODIES),
        company=companies[0],
        company2=companies[1],
        travel=rng.choice(SEED_TRAVEL_ORGS),
        city=cities[0],
        city2=cities[1],
        country=countries[0],
        country2=countries[1],
        when=when(rng.choice(SEED_DATES)),
    )


def sport_sentences(rng: random.Random, n: int, countries: Sequence[str]) -> list[str]:
    """`n` sentences of one sport report: the same athletes, clubs and places throughout, so a
    later sentence can name an athlete by surname only."""
    athletes, clubs = rng.sample(ATHLETES, 2), rng.sample(CLUBS, 2)
    city = rng.choice(VENUES_CITIES)
    place = rng.choice(countries) if countries and rng.random() < 0.5 else city
    values = {
        "a": athletes[0],
        "a2": athletes[1],
        "sa": athletes[0].split()[-1],
        "coach": rng.choice(COACHES),
        "club": clubs[0],
        "club2": clubs[1],
        "body": rng.choice(GOVERNING_BODIES),
        "city": city,
        "place": place,
        "when": when(rng.choice(SPORT_DATES)),
    }
    return [capitalised(t.format(**values)) for t in rng.sample(SPORT, n)]


def country_names() -> list[str]:
    """ISO 3166-1 country names from pycountry: `name`, `common_name` and `official_name` where the
    record has them; names written "Korea, Republic of" (never how a text says it) are left out."""
    import pycountry

    names: list[str] = []
    for country in pycountry.countries:
        for attribute in ("name", "common_name", "official_name"):
            name = getattr(country, attribute, None)
            if name and "," not in name and name not in names:
                names.append(name)
    return names


def short_country_names() -> list[str]:
    """The name a sport report would use for each country: `common_name`, else `name` (no commas)."""
    import pycountry

    names = [getattr(c, "common_name", None) or c.name for c in pycountry.countries]
    return [name for name in names if "," not in name]


def check_disjoint(rows: Sequence[dict], names: Sequence[str], what: str) -> None:
    """No entity of `rows` is a gazetteer name (case aside): the gazetteer cannot know the dev set."""
    folded = {name.casefold() for name in names}
    leaked = sorted(
        {
            row["text"][s["start"] : s["end"]]
            for row in rows
            for s in row["spans"]
            if row["text"][s["start"] : s["end"]].casefold() in folded
        }
    )
    if leaked:
        raise SystemExit(f"{what}: entities that are gazetteer names: {leaked}")


def sample_rows() -> tuple[list[dict], list[dict], list[dict]]:
    """(seed rows, dev rows, corpus rows): gold rows `{"text", "spans"}`; the corpus rows also carry
    `doc_id` and their true spans, which the shipped corpus leaves out (they measure weak labels)."""
    rng = random.Random(RANDOM_SEED)
    seed = [
        unmark(capitalised(seed_sentence(rng, templates)))
        for templates in (NEWS, BUSINESS, TRAVEL)
        for _ in range(SEED_ROWS_PER_DOMAIN)
    ]
    rng.shuffle(seed)
    dev: list[dict] = []
    while len(dev) < DEV_ROWS:  # first, so that the dev set does not depend on the corpus size
        row = unmark(" ".join(sport_sentences(rng, rng.randint(1, 2), [])))
        if row["text"] not in {r["text"] for r in dev}:
            dev.append(row)
    texts = {row["text"] for row in dev}
    corpus: list[dict] = []
    sport_countries = short_country_names()
    while len(corpus) < CORPUS_DOCUMENTS:
        row = unmark(" ".join(sport_sentences(rng, rng.randint(1, 3), sport_countries)))
        if row["text"] not in texts:  # no dev text, no text twice
            texts.add(row["text"])
            corpus.append({"doc_id": f"sport-{len(corpus):04d}", **row})
    return seed, dev, corpus


def build() -> dict[str, str]:
    """File name -> content of every sample file (deterministic)."""
    countries = country_names()
    seed, dev, corpus = sample_rows()
    check_disjoint(dev, countries, "gold_dev.jsonl")

    def jsonl(rows: Sequence[dict]) -> str:
        return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)

    header = (
        f"# ISO 3166-1 country names from pycountry {version('pycountry')} (LGPL-2.1-only; data from\n"
        "# Debian iso-codes), written by sample/make_sample.py. One name per line.\n"
    )
    return {
        "gold_seed.jsonl": jsonl(seed),
        "gold_dev.jsonl": jsonl(dev),
        "corpus.jsonl": jsonl([{"doc_id": row["doc_id"], "text": row["text"]} for row in corpus]),
        "countries.txt": header + "".join(f"{name}\n" for name in countries),
    }


def main() -> None:
    for name, content in build().items():
        path = HERE / name
        path.write_text(content, encoding="utf-8")
        print(f"wrote {content.count(chr(10))} lines to {path}")


if __name__ == "__main__":
    main()
