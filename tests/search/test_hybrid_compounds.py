"""German compounds in the hybrid search's text leg (issue 23, migration 011).

The issue's table must match through both hybrid functions (text only: ``query_embedding=None``);
the expected sets are written out by hand. Rows other writers inserted (no split text) match as
before the change, never less, and match fully once backfilled. The fused ranking is compared
with the independent reference of tests/search/hybrid_reference.py over the same tsvector (the
content's, then the stored parts') and the same ORed query.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest
from hybrid_reference import QUERY, assert_same, expected_hybrid, int_vector, observed

import dealhunter_vectors as dv
from dealhunter_vectors import compounds
from dealhunter_vectors.compounds import decompound_query
from dealhunter_vectors.db.fulltext import set_text_search_config
from dealhunter_vectors.testing import seed_owners, with_database

pytestmark = pytest.mark.skipif(not compounds.compounds_available(), reason="needs the [compounds] extra (wordfreq)")

ISSUE_DOCUMENTS = {
    "i1": "Rahmenvertragsangebot für Webentwicklung",
    "i2": "Barrierefreiheitsprüfung der Website",
    "i3": "Angebote für Hosting",
    "i4": "Relaunch des TYPO3-Portals",
}
ISSUE_TABLE = [  # query, the issue's document, what the issue measured before (plain to_tsvector)
    ("Rahmenvertrag", "i1", False),
    ("Barrierefreiheit", "i2", False),
    ("Angebot", "i3", True),
    ("TYPO3 Portal", "i4", True),
]
WITH_PARTS = {  # every match with the split text (written out: Rahmenvertragsangebot holds Angebot)
    "Rahmenvertrag": {"i1"},
    "Barrierefreiheit": {"i2"},
    "Angebot": {"i1", "i3"},
    "TYPO3 Portal": {"i4"},
    "Webentwicklung": {"i1"},
    "Entwicklung": {"i1"},
    "Prüfung": {"i2"},
    "Rahmenvertragsangebot": {"i1"},
    "Angebot -Rahmenvertrag": {"i3"},
    '"Barrierefreiheitsprüfung der Website"': {"i2"},
}
TODAY = {  # the same queries on rows without the split text: as before migration 011
    "Rahmenvertrag": set(),
    "Barrierefreiheit": set(),
    "Angebot": {"i3"},
    "TYPO3 Portal": {"i4"},
    "Webentwicklung": {"i1"},
    "Entwicklung": set(),
    "Prüfung": set(),
    "Rahmenvertragsangebot": {"i1"},
    "Angebot -Rahmenvertrag": {"i3"},
    '"Barrierefreiheitsprüfung der Website"': {"i2"},
}


async def write_issue_documents(pool: dv.Pool, *, library: bool) -> None:
    """The issue's documents as deal chunks of q-issue and raw chunks of pq-issue (ids r-i1 ...)."""
    await seed_owners(pool, pre_qualification_ids=["pq-issue"], qualification_ids=["q-issue"])
    vectors = {k: int_vector([i + 1, 1, 0, 2 - i]) for i, k in enumerate(ISSUE_DOCUMENTS)}
    if library:
        await dv.insert_deal_chunks(
            pool,
            [
                dv.DealChunk(id=k, qualification_id="q-issue", agent_name="a", chunk_type="t", content=t, embedding=v)
                for (k, t), v in zip(ISSUE_DOCUMENTS.items(), vectors.values(), strict=True)
            ],
        )
        await dv.replace_raw_chunks(
            pool,
            "pq-issue",
            [
                dv.RawChunk(id=f"r-{k}", chunk_index=i, content=t, token_count=4, embedding=vectors[k])
                for i, (k, t) in enumerate(ISSUE_DOCUMENTS.items())
            ],
        )
        return
    await pool.executemany(
        "INSERT INTO deal_embeddings (id, qualification_id, agent_name, chunk_type, content, embedding)"
        " VALUES ($1, 'q-issue', 'a', 't', $2, $3)",
        [(k, t, vectors[k]) for k, t in ISSUE_DOCUMENTS.items()],
    )
    await pool.executemany(
        "INSERT INTO raw_chunks (id, pre_qualification_id, chunk_index, content, token_count, embedding)"
        " VALUES ($1, 'pq-issue', $2, $3, 4, $4)",
        [(f"r-{k}", i, t, vectors[k]) for i, (k, t) in enumerate(ISSUE_DOCUMENTS.items())],
    )


async def matches(pool: dv.Pool, query: str) -> tuple[set[str], set[str]]:
    """What the two hybrid functions find for *query*, text only (raw ids without their prefix)."""
    deal = await dv.hybrid_search_deal_embeddings(pool, query, None, qualification_id="q-issue", limit=20)
    raw = await dv.hybrid_search_raw_chunks(pool, query, None, pre_qualification_id="pq-issue", limit=20)
    assert all(h.vector_rank is None and h.similarity is None for h in [*deal, *raw])
    return {h.chunk_id for h in deal}, {h.chunk_id.removeprefix("r-") for h in raw}


async def test_the_issue_table_matches_through_both_hybrid_functions(dhv_pool: dv.Pool) -> None:
    await write_issue_documents(dhv_pool, library=True)
    for query, document, _before in ISSUE_TABLE:
        deal, raw = await matches(dhv_pool, query)
        assert document in deal and document in raw, query
    for query, want in WITH_PARTS.items():
        assert await matches(dhv_pool, query) == (want, want), query


async def test_rows_of_other_writers_match_as_before_until_backfilled(dhv_pool: dv.Pool) -> None:
    await write_issue_documents(dhv_pool, library=False)
    for query, document, before in ISSUE_TABLE:
        deal, raw = await matches(dhv_pool, query)
        assert (document in deal, document in raw) == (before, before), query
    for query, want in TODAY.items():
        assert await matches(dhv_pool, query) == (want, want), query  # no row left the text leg
    await dv.backfill_content_parts(dhv_pool)
    for query, want in WITH_PARTS.items():
        assert await matches(dhv_pool, query) == (want, want), query


async def test_the_simple_configuration_finds_parts_too(dhv_pool: dv.Pool) -> None:
    await write_issue_documents(dhv_pool, library=True)
    assert await set_text_search_config(dhv_pool, "simple")
    simple = {  # no stemming: Angebot does not find Angebote, but a part is a part
        "Rahmenvertrag": {"i1"},
        "Barrierefreiheit": {"i2"},
        "Angebot": {"i1"},
        "Angebote": {"i3"},
        "Entwicklung": {"i1"},
        "der": {"i2"},  # no stop words
    }
    for query, want in simple.items():
        assert await matches(dhv_pool, query) == (want, want), query
    assert await set_text_search_config(dhv_pool, "german")
    for query, want in WITH_PARTS.items():
        assert await matches(dhv_pool, query) == (want, want), query


SPLIT_DOCUMENT = "to_tsvector('german', content) || to_tsvector('german', content_parts)"
"""The reference's tsvector of a row written by the library: the content's, then its stored parts'."""

FUSION_QUERIES = ["Rahmenvertrag", "Webentwicklung or Hosting", "Angebot -Rahmenvertrag", "Prüfung Website"]


@pytest.mark.parametrize("text", FUSION_QUERIES)
@pytest.mark.parametrize("options", [{}, {"limit": 4, "rrf_k": 1.0, "text_weight": 2.0}, {"vector_weight": 0.0}])
async def test_fusion_over_the_split_text_equals_the_reference(
    dhv_pool: dv.Pool, text: str, options: dict[str, Any]
) -> None:
    await write_issue_documents(dhv_pool, library=True)
    reference = {"document": SPLIT_DOCUMENT, "alternative": decompound_query(text)}
    got = await dv.hybrid_search_deal_embeddings(dhv_pool, text, QUERY, qualification_id="q-issue", **options)
    want = await expected_hybrid(
        dhv_pool, "deal_embeddings", "qualification_id", "q-issue", text, QUERY, **options, **reference
    )
    assert_same(observed(got), want)
    raw = await dv.hybrid_search_raw_chunks(dhv_pool, text, QUERY, pre_qualification_id="pq-issue", **options)
    want = await expected_hybrid(
        dhv_pool, "raw_chunks", "pre_qualification_id", "pq-issue", text, QUERY, **options, **reference
    )
    assert_same(observed(raw), want)
    assert any(h.text_rank is not None for h in got)


async def test_a_negated_compound_excludes_rows_with_or_without_parts(dhv_pool: dv.Pool) -> None:
    # the query and its decompounded alternative are ORed: both must exclude the same rows, also a
    # row whose parts are not indexed yet ('-"rahmen vertrag"' alone would let it through)
    await seed_owners(dhv_pool, qualification_ids=["q-neg"])
    text = "Angebot zum Rahmenvertrag"
    await dhv_pool.execute(
        "INSERT INTO deal_embeddings (id, qualification_id, agent_name, chunk_type, content)"
        " VALUES ('plain', 'q-neg', 'a', 't', $1)",
        text,
    )
    await dv.insert_deal_chunks(
        dhv_pool, [dv.DealChunk(id="library", qualification_id="q-neg", agent_name="a", chunk_type="t", content=text)]
    )
    for query, want in [("Angebot -Rahmenvertrag", set()), ("Angebot -Webentwicklung", {"plain", "library"})]:
        hits = await dv.hybrid_search_deal_embeddings(dhv_pool, query, None, qualification_id="q-neg")
        assert {h.chunk_id for h in hits} == want, query


TSV_COLUMN = (
    "SELECT c.relname, pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d"
    " JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum"
    " JOIN pg_class c ON c.oid = d.adrelid WHERE a.attname = 'content_tsv' ORDER BY 1"
)


async def test_migration_011_keeps_the_configuration_and_builds_what_set_text_search_config_builds(
    dhv_server_url: str,
) -> None:
    name = f"dhv_compounds_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(dhv_server_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        async with dv.open_pool(with_database(dhv_server_url, name), min_size=1, max_size=2) as pool:
            await dv.apply_schema(pool, target=10)
            assert await set_text_search_config(pool, "simple")
            assert await dv.apply_schema(pool, target=11) == [11]
            migrated = await pool.fetch(TSV_COLUMN)
            assert all("'simple'::regconfig" in r[1] and "content_parts" in r[1] for r in migrated)
            assert await set_text_search_config(pool, "german") and await set_text_search_config(pool, "simple")
            assert await pool.fetch(TSV_COLUMN) == migrated  # the same expression, built by the library
            await write_issue_documents(pool, library=True)
            assert await matches(pool, "Rahmenvertrag") == ({"i1"}, {"i1"})
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
