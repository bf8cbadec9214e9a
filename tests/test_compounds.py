"""dealhunter_vectors.compounds: German compound splitting for the text leg (issue 23).

Expectations are hand-labelled (the parts a German reader cuts a word into), never the
splitter's own output; the PostgreSQL tests check the effect with to_tsvector/websearch_to_tsquery
on the real server.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator

import asyncpg
import pytest

from dealhunter_vectors import compounds
from dealhunter_vectors.compounds import (
    MAX_PARTS_CHARS,
    MAX_QUERY_CHARS,
    MAX_QUERY_COMPOUNDS,
    MAX_TEXT_CHARS,
    compound_parts_text,
    decompound_query,
    decompound_text,
    split_compound,
)
from dealhunter_vectors.errors import ConfigurationError, InvalidArgumentError

pytestmark = pytest.mark.skipif(not compounds.compounds_available(), reason="needs the [compounds] extra (wordfreq)")

# Word -> its parts, lower case, linking elements (Fugen) removed. Hand-labelled.
COMPOUNDS = {
    "Rahmenvertragsangebot": ["rahmen", "vertrag", "angebot"],
    "Barrierefreiheitsprüfung": ["barriere", "freiheit", "prüfung"],
    "Leistungsverzeichnis": ["leistung", "verzeichnis"],
    "Webentwicklung": ["web", "entwicklung"],
    "Ausschreibungsunterlagen": ["ausschreibung", "unterlagen"],
    "Rahmenvertrag": ["rahmen", "vertrag"],
    "Barrierefreiheit": ["barriere", "freiheit"],
    "Vergabeverfahren": ["vergabe", "verfahren"],
    "Angebotsfrist": ["angebot", "frist"],
    "Datenschutzgrundverordnung": ["daten", "schutz", "grund", "verordnung"],
    "Sicherheitskonzept": ["sicherheit", "konzept"],
    "Wartungsvertrag": ["wartung", "vertrag"],
    "Qualitätssicherung": ["qualität", "sicherung"],
    "Zuschlagskriterien": ["zuschlag", "kriterien"],
    "Eignungsnachweis": ["eignung", "nachweis"],
    "Referenznachweis": ["referenz", "nachweis"],
    "Redaktionssystem": ["redaktion", "system"],
    "Stadtverwaltung": ["stadt", "verwaltung"],
    "Bürgerportal": ["bürger", "portal"],
    "Relaunchprojekt": ["relaunch", "projekt"],
    "Fehlerbehebungen": ["fehler", "behebungen"],
    "Projektleitung": ["projekt", "leitung"],
    "Abnahmeprotokoll": ["abnahme", "protokoll"],
    "Wirtschaftlichkeitsprüfung": ["wirtschaftlichkeit", "prüfung"],
    "Bauleistungen": ["bau", "leistungen"],
    "Hosting-Betrieb": ["hosting", "betrieb"],
    "Hosting-Betriebskonzept": ["hosting", "betrieb", "konzept"],
    "TYPO3-Portals": ["typo3", "portals"],
}
# Derived or prefixed words: no compounds, never cut.
NOT_COMPOUNDS = [
    "Angebot", "Angebote", "Vertrag", "Verträge", "Ausschreibung", "Entwicklung", "Leistungen",
    "Verantwortung", "Unterlagen", "Betrieb", "Sicherheit", "Dokumentation", "Verfügbarkeit",
    "Wirtschaftlichkeit", "Beschreibung", "Hosting", "Website", "Internet", "Redaktion", "Einführung",
    "Unternehmen", "Verfahren", "Frontend",
]  # fmt: skip


@pytest.mark.parametrize(("word", "parts"), COMPOUNDS.items())
def test_compound_is_cut_into_its_parts(word: str, parts: list[str]) -> None:
    assert split_compound(word) == parts


@pytest.mark.parametrize("word", NOT_COMPOUNDS)
def test_non_compound_stays_whole(word: str) -> None:
    assert split_compound(word) == [word.lower()]


def test_parts_text_holds_parts_and_inner_runs() -> None:
    parts = compound_parts_text("Das Rahmenvertragsangebot für Webentwicklung.").split("\n")
    assert parts == ["rahmen vertrag angebot rahmenvertrag vertragsangebot", "web entwicklung"]


def test_inner_runs_keep_hyphens_and_drop_the_last_linking_element() -> None:
    assert compound_parts_text("Hosting-Betriebskonzept") == "hosting betrieb konzept hosting-betrieb betriebskonzept"


def test_lower_case_words_are_not_split_in_texts() -> None:
    # Participles and adjectives: a frequency splitter would cut fehl|ende, sicher|gestellt.
    assert compound_parts_text("fehlende Angaben, sichergestellt und zugelassen, barrierefreie Angebote") == ""
    assert compound_parts_text("Barrierefreie Angebote") == "barriere freie"  # capitalised: taken for a noun
    assert decompound_query("rahmenvertrag") == '"rahmen vertrag"'  # queries: any case


def test_text_without_compounds_is_unchanged() -> None:
    text = "Angebote für Hosting und den Betrieb der Website."
    assert compound_parts_text(text) == ""
    assert decompound_text(text) == text


def test_decompounded_text_starts_with_the_text() -> None:
    text = "Die Barrierefreiheitsprüfung der Website. Die Barrierefreiheitsprüfung!"
    out = decompound_text(text)
    assert out.startswith(text + "\n")
    assert out[len(text) + 1 :] == "barriere freiheit prüfung barrierefreiheit freiheitsprüfung"  # once, not twice


def test_nul_and_control_characters_become_spaces() -> None:
    out = decompound_text("Leistungs\x00verzeichnis\x07Webentwicklung")
    assert "\x00" not in out and "\x07" not in out
    assert out.startswith("Leistungs verzeichnis Webentwicklung\n")


def test_only_the_indexed_prefix_is_read() -> None:
    filler = "x " * (MAX_TEXT_CHARS // 2)
    assert compound_parts_text(filler[: MAX_TEXT_CHARS - 1] + " Webentwicklung") == ""
    assert compound_parts_text("Webentwicklung " + filler) == "web entwicklung"


def test_query_compound_becomes_a_phrase_of_its_parts() -> None:
    assert decompound_query("Rahmenvertrag") == '"rahmen vertrag"'
    assert decompound_query("Angebot Hosting") is None
    assert decompound_query("") is None


def test_query_operators_keep_their_meaning() -> None:
    query = 'Rahmenvertrag -Leistungsverzeichnis or "Barrierefreiheit der Website"'
    # a negated compound stays: both ORed queries exclude the same rows (a row holding
    # "Leistungsverzeichnis" without its parts indexed would match `-"leistung verzeichnis"`)
    assert decompound_query(query) == '"rahmen vertrag" -Leistungsverzeichnis or "barriere freiheit der Website"'
    assert decompound_query("Hosting -Rahmenvertrag") is None
    assert decompound_query('"Angebot -Rahmenvertrag"') == '"Angebot -rahmen vertrag"'  # in quotes: no operator
    assert decompound_query("Web-Entwicklung -x") == '"web entwicklung" -x'  # a hyphen inside a word


def test_parts_text_is_bounded_by_whole_groups() -> None:
    nouns = [
        "Rahmen",
        "Vertrag",
        "Angebot",
        "Leistung",
        "Schnitt",
        "Stelle",
        "Betrieb",
        "Konzept",
        "Hosting",
        "Prüfung",
        "Frist",
        "Termin",
    ]
    words = [a + b.lower() + c.lower() for a in nouns for b in nouns for c in nouns if len({a, b, c}) == 3]
    parts = compound_parts_text(" ".join(words))  # 1,320 distinct compounds of three parts: all fit
    assert len(parts) < MAX_PARTS_CHARS and parts.count("\n") == len(words) - 1
    many = " ".join(w + suffix for suffix in ("", "en", "s", "e", "er") for w in words)  # 6,600 compounds
    bounded = compound_parts_text(many)
    assert MAX_PARTS_CHARS - 100 < len(bounded) <= MAX_PARTS_CHARS
    groups = bounded.split("\n")
    unbounded = [" ".join(compounds._expansion(w.lower())) for w in dict.fromkeys(many.split())]
    assert groups == unbounded[: len(groups)]  # the first groups, whole


def test_query_hyphenated_word_becomes_a_phrase() -> None:
    assert decompound_query("TYPO3-Erweiterung") == '"typo3 erweiterung"'


def test_query_part_that_is_a_stop_word_keeps_the_compound() -> None:
    # 'weiter' is a german stop word: the phrase would be 'entwickl' alone, i.e. any Entwicklung.
    assert decompound_query("Weiterentwicklung") is None


def test_hostile_query_text_is_passed_through_and_bounded() -> None:
    query = "Rahmenvertrag' OR 1=1; -- \\ & | ! ( ) : * <-> \x00 \"Webentwicklung"
    alt = decompound_query(query)
    assert alt == '"rahmen vertrag"\' OR 1=1; -- \\ & | ! ( ) : * <->   "web entwicklung'
    many = " ".join(["Webentwicklung"] * (MAX_QUERY_COMPOUNDS + 5))
    assert decompound_query(many).count('"web entwicklung"') == MAX_QUERY_COMPOUNDS  # type: ignore[union-attr]
    with pytest.raises(InvalidArgumentError) as info:
        decompound_query("a" * (MAX_QUERY_CHARS + 1))
    assert info.value.argument == "query"


@pytest.mark.parametrize("fn", [decompound_text, compound_parts_text, decompound_query, split_compound])
def test_non_text_is_a_typed_error(fn: object) -> None:
    with pytest.raises(InvalidArgumentError):
        fn(b"Webentwicklung")  # type: ignore[operator]


def test_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "wordfreq", None)  # import wordfreq -> ImportError
    monkeypatch.setattr(compounds._Vocabulary, "_zipf", None)
    compounds._split_lower.cache_clear()
    compounds._expansion.cache_clear()
    assert not compounds.compounds_available()
    with pytest.raises(ConfigurationError, match=r"dealhunter-vectors\[compounds\]"):
        decompound_text("Ein Rahmenvertragsangebot")
    monkeypatch.undo()
    assert decompound_text("Webentwicklung").endswith("web entwicklung")


# --------------------------------------------------------------------------- on PostgreSQL

ISSUE_TABLE = [
    # document, query, matches today (plain to_tsvector/websearch_to_tsquery, the issue's table)
    ("Rahmenvertragsangebot für Webentwicklung", "Rahmenvertrag", False),
    ("Barrierefreiheitsprüfung der Website", "Barrierefreiheit", False),
    ("Angebote für Hosting", "Angebot", True),
    ("Relaunch des TYPO3-Portals", "TYPO3 Portal", True),
    # a part finds the compound, the compound finds itself
    ("Angebot zur Webentwicklung", "Entwicklung", False),
    ("Angebot zur Webentwicklung", "Webentwicklung", True),
    ("Die Ausschreibungsunterlagen liegen vor", "Ausschreibung", False),
    ("Das Hosting-Betriebskonzept", "Betriebskonzept", True),
    ("Das Hosting-Betriebskonzept", "Hosting-Betrieb", False),
]
MATCH = """
    SELECT to_tsvector($1::regconfig, $2::text) @@ CASE WHEN $4::text IS NULL
        THEN websearch_to_tsquery($1::regconfig, $3::text)
        ELSE websearch_to_tsquery($1::regconfig, $3::text) || websearch_to_tsquery($1::regconfig, $4::text) END
"""
"""Does document $2 match query $3 (or its alternative $4) under configuration $1?"""


@pytest.fixture
async def conn(dhv_server_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(dhv_server_url)
    try:
        yield connection
    finally:
        await connection.close()


async def test_issue_table_matches_with_decompounding(conn: asyncpg.Connection) -> None:
    for document, query, today in ISSUE_TABLE:
        assert await conn.fetchval(MATCH, "german", document, query, None) is today, (document, query)
        split = decompound_text(document)
        assert await conn.fetchval(MATCH, "german", split, query, None), (document, query)
        assert await conn.fetchval(MATCH, "german", split, query, decompound_query(query)), (document, query)


async def test_simple_configuration_finds_parts_too(conn: asyncpg.Connection) -> None:
    for document, query in [ISSUE_TABLE[0][:2], ISSUE_TABLE[1][:2], ISSUE_TABLE[4][:2]]:
        assert not await conn.fetchval(MATCH, "simple", document, query, None)
        assert await conn.fetchval(MATCH, "simple", decompound_text(document), query, None), (document, query)


async def test_phrase_queries_on_the_text_are_unchanged(conn: asyncpg.Connection) -> None:
    document = "Wir bitten um ein Rahmenvertragsangebot für Webentwicklung und Hosting."
    split = decompound_text(document)
    for query in ['"Rahmenvertragsangebot für Webentwicklung"', '"Webentwicklung und Hosting"', "Hosting -Relaunch"]:
        assert await conn.fetchval(MATCH, "german", split, query, decompound_query(query)), query
    for query in ['"Webentwicklung für Rahmenvertragsangebot"', "Rahmenvertrag -Hosting"]:
        assert not await conn.fetchval(MATCH, "german", split, query, decompound_query(query)), query


async def test_hostile_alternative_is_accepted_by_websearch(conn: asyncpg.Connection) -> None:
    for query in ["Rahmenvertrag' OR 1=1; --", '"""Webentwicklung', "Webentwicklung -", "(Webentwicklung):* <-> &|!"]:
        alt = decompound_query(query)
        assert alt is not None
        await conn.fetchval("SELECT websearch_to_tsquery('german', $1::text)::text", alt)
