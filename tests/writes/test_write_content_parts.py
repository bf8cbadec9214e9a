"""The split text (migration 011): every write path fills content_parts, the backfill fills the rows
other writers stored, doctor counts the rows that lack it, and all of it works without the extra.

Expected values come from hashlib (the content's sha256) and the splitter itself
(``compound_parts_text``, tested on its own in tests/test_compounds.py); what these tests check is
that every path stores them, that stale parts are never indexed, and the backfill's bookkeeping.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

import dealhunter_vectors as dv
from dealhunter_vectors import compounds
from dealhunter_vectors.compounds import MAX_PARTS_CHARS, compound_parts_text
from dealhunter_vectors.db.doctor import run_doctor
from dealhunter_vectors.writes import content_parts as backfill_module

Vec = Callable[[int], Any]
"""The ``vec`` fixture of tests/writes/conftest.py: ``vec(seed)``, a reproducible embedding."""

pytestmark = pytest.mark.skipif(not compounds.compounds_available(), reason="needs the [compounds] extra (wordfreq)")

GERMAN = [
    "Rahmenvertragsangebot für Webentwicklung",
    "Barrierefreiheitsprüfung der Website",
    "Angebote für Hosting",
    "Relaunch des TYPO3-Portals",
    "Das Leistungsverzeichnis nennt die Schnittstellen und den Hosting-Betrieb.",
]


def sha(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


async def stored_parts(pool: dv.Pool, table: str) -> dict[str, tuple[str, str | None, bytes | None]]:
    rows = await pool.fetch(f'SELECT id, content, content_parts, content_parts_hash FROM "{table}"')
    return {r["id"]: (r["content"], r["content_parts"], r["content_parts_hash"]) for r in rows}


def assert_split(rows: dict[str, tuple[str, str | None, bytes | None]]) -> None:
    assert rows
    for row_id, (content, parts, digest) in rows.items():
        assert parts == compound_parts_text(content), row_id
        assert digest is not None and bytes(digest) == sha(content), row_id


async def test_every_write_path_fills_the_split_text(pool: dv.Pool, vec: Vec) -> None:
    deal = [
        dv.DealChunk(id=f"d{i}", qualification_id="q1", agent_name="a", chunk_type="t", content=text)
        for i, text in enumerate(GERMAN)
    ]
    await dv.insert_deal_chunks(pool, deal[:2])
    section = [
        c.model_copy(update={"id": f"s{i}", "qualification_id": "q2", "embedding": vec(i)}) for i, c in enumerate(deal)
    ]
    await dv.replace_deal_chunks(pool, section, qualification_id="q2", agent_name="a")
    await dv.upsert_deal_chunks(pool, deal[2:])  # inserts
    await dv.upsert_deal_chunks(pool, [deal[0].model_copy(update={"content": "Neue Schnittstellenbeschreibung"})])
    raw = [
        dv.RawChunk(id=f"r{i}", chunk_index=i, content=t, token_count=3, embedding=vec(i)) for i, t in enumerate(GERMAN)
    ]
    await dv.replace_raw_chunks(pool, "pq1", raw[:3])
    await dv.upsert_raw_chunks(pool, "pq1", [raw[1].model_copy(update={"content": "Wartungsvertrag"}), *raw[3:]])
    deal_rows, raw_rows = await stored_parts(pool, "deal_embeddings"), await stored_parts(pool, "raw_chunks")
    assert_split(deal_rows)
    assert_split(raw_rows)
    assert deal_rows["d0"][0] == "Neue Schnittstellenbeschreibung" and "schnittstelle" in (deal_rows["d0"][1] or "")
    assert raw_rows["r1"][1] == compound_parts_text("Wartungsvertrag") != ""
    assert deal_rows["d2"][1] == ""  # no compound: '' (computed), not NULL


# --------------------------------------------------------------------------- rows of other writers

PLAIN_INSERT = (
    "INSERT INTO deal_embeddings (id, qualification_id, agent_name, chunk_type, content)"
    " VALUES ($1, 'q1', 'a', 't', $2)"
)


async def plain_rows(pool: dv.Pool, vec: Vec, n: int = 7) -> dict[str, str]:
    """Deal and raw chunks inserted with plain SQL (no split text), as another writer does."""
    texts = {f"p{i}": f"{GERMAN[i % len(GERMAN)]} ({i})" for i in range(n)}
    await pool.executemany(PLAIN_INSERT, list(texts.items()))
    await pool.executemany(
        "INSERT INTO raw_chunks (id, pre_qualification_id, chunk_index, content, token_count, embedding)"
        " VALUES ($1, 'pq1', $2, $3, 1, $4)",
        [(f"raw-{k}", i, text, vec(i)) for i, (k, text) in enumerate(texts.items())],
    )
    return texts


async def found(pool: dv.Pool, query: str) -> set[str]:
    hits = await dv.hybrid_search_deal_embeddings(pool, query, None, qualification_id="q1", limit=50)
    return {h.chunk_id for h in hits}


async def test_backfill_fills_rows_inserted_with_plain_sql(pool: dv.Pool, vec: Vec) -> None:
    texts = await plain_rows(pool, vec)
    assert {r[1] for r in (await stored_parts(pool, "deal_embeddings")).values()} == {None}
    # meanwhile every row is found by its text, none by a part of a compound
    assert await found(pool, "Hosting") == {k for k, t in texts.items() if "Hosting" in t}
    assert await found(pool, "Rahmenvertrag") == set()
    seen: list[dv.BackfillProgress] = []
    results = await dv.backfill_content_parts(pool, batch_size=3, on_progress=seen.append)
    assert [(r.table, r.lacking, r.filled, r.changed) for r in results] == [
        ("deal_embeddings", 7, 7, 0),
        ("raw_chunks", 7, 7, 0),
    ]
    assert [(p.table, p.done) for p in seen] == [
        ("deal_embeddings", 0), ("deal_embeddings", 3), ("deal_embeddings", 6), ("deal_embeddings", 7),
        ("raw_chunks", 0), ("raw_chunks", 3), ("raw_chunks", 6), ("raw_chunks", 7),
    ]  # fmt: skip
    assert_split(await stored_parts(pool, "deal_embeddings"))
    assert_split(await stored_parts(pool, "raw_chunks"))
    assert await found(pool, "Rahmenvertrag") == {k for k, t in texts.items() if "Rahmenvertrag" in t} != set()
    again = await dv.backfill_content_parts(pool)  # nothing left
    assert [(r.lacking, r.filled) for r in again] == [(0, 0), (0, 0)]


async def test_content_changed_by_another_writer_drops_its_parts_until_the_backfill(pool: dv.Pool) -> None:
    await dv.insert_deal_chunks(
        pool, [dv.DealChunk(id="x", qualification_id="q1", agent_name="a", chunk_type="t", content=GERMAN[0])]
    )
    assert await found(pool, "Rahmenvertrag") == {"x"}
    await pool.execute("UPDATE deal_embeddings SET content = 'Barrierefreiheitsprüfung' WHERE id = 'x'")
    # the stored parts are the old content's: not indexed (never a stale match), the new text is
    assert await found(pool, "Rahmenvertrag") == set()
    assert await found(pool, "Barrierefreiheitsprüfung") == {"x"}
    assert await found(pool, "Barrierefreiheit") == set()
    [deal, _raw] = await dv.backfill_content_parts(pool)
    assert (deal.lacking, deal.filled) == (1, 1)
    assert await found(pool, "Barrierefreiheit") == {"x"}
    assert await found(pool, "Rahmenvertrag") == set()


async def test_backfill_is_resumable_and_leaves_rows_changed_meanwhile(
    pool: dv.Pool, vec: Vec, monkeypatch: pytest.MonkeyPatch
) -> None:
    await plain_rows(pool, vec)

    def stop(progress: dv.BackfillProgress) -> None:
        if progress.done >= 2:
            raise KeyboardInterrupt  # interrupted after the first batch (Ctrl-C)

    with pytest.raises(KeyboardInterrupt):
        await dv.backfill_content_parts(pool, tables="deal_embeddings", batch_size=2, on_progress=stop)
    rows = await stored_parts(pool, "deal_embeddings")
    assert sorted(k for k, r in rows.items() if r[1] is not None) == ["p0", "p1"]  # the committed batch stays
    # a row whose content changes between the read and the write is left to the next run
    real_hash = backfill_module.content_hash
    monkeypatch.setattr(backfill_module, "content_hash", lambda text: b"\0" * 32 if "(4)" in text else real_hash(text))
    [result] = await dv.backfill_content_parts(pool, tables=["deal_embeddings"], batch_size=2)
    assert (result.lacking, result.filled, result.changed) == (5, 4, 1)
    assert (await stored_parts(pool, "deal_embeddings"))["p4"][1] is None
    monkeypatch.undo()
    [result] = await dv.backfill_content_parts(pool, tables=["deal_embeddings"])
    assert (result.lacking, result.filled, result.changed) == (1, 1, 0)
    assert_split(await stored_parts(pool, "deal_embeddings"))


async def test_backfill_arguments_are_checked(pool: dv.Pool) -> None:
    for kwargs, name in [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 10_001}, "batch_size"),
        ({"batch_size": True}, "batch_size"),
        ({"tables": ["users"]}, "tables"),
        ({"tables": []}, "tables"),
    ]:
        with pytest.raises(dv.InvalidArgumentError) as info:
            await dv.backfill_content_parts(pool, **kwargs)
        assert info.value.argument == name


async def test_doctor_counts_rows_lacking_their_split_text(pool: dv.Pool, vec: Vec) -> None:
    await dv.insert_deal_chunks(
        pool, [dv.DealChunk(id="mine", qualification_id="q1", agent_name="a", chunk_type="t", content=GERMAN[0])]
    )

    async def row() -> Any:
        async with pool.acquire() as conn:
            report = await run_doctor(conn)
        [check] = [c for c in report.checks if c.name == "compound parts"]
        return check

    assert (await row()).status == "ok"
    await plain_rows(pool, vec, n=3)
    await pool.execute("UPDATE deal_embeddings SET content = 'geändert' WHERE id = 'mine'")  # stale now
    check = await row()
    assert check.status == "warn"
    assert "deal_embeddings: 4 of 4 rows" in check.detail and "raw_chunks: 3 of 3 rows" in check.detail
    assert check.fix == "run `dealhunter-vectors text backfill`"
    await dv.backfill_content_parts(pool)
    assert (await row()).status == "ok"


def run_python(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run_python("-m", "dealhunter_vectors", *args)


async def test_cli_backfill(pool: dv.Pool, vec: Vec, dhv_database_url: str) -> None:
    await plain_rows(pool, vec, n=5)
    proc = await asyncio.to_thread(
        run_cli, "text", "backfill", "--batch-size", "2", "--json", "--database-url", dhv_database_url
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {
        "complete": True,
        "tables": [
            {"table": "deal_embeddings", "lacking": 5, "filled": 5, "changed": 0},
            {"table": "raw_chunks", "lacking": 5, "filled": 5, "changed": 0},
        ],
    }
    proc = await asyncio.to_thread(
        run_cli, "text", "backfill", "--table", "raw_chunks", "--database-url", dhv_database_url
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "text backfill: raw_chunks: filled 0 of 0 rows lacking their split text"
    for bad in (["--batch-size", "0"], ["--batch-size", "x"], ["--table", "users"]):
        proc = await asyncio.to_thread(run_cli, "text", "backfill", *bad, "--database-url", dhv_database_url)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, bad


# --------------------------------------------------------------------------- without the extra

WITHOUT_EXTRA = """
import asyncio, json, logging, sys
sys.modules["wordfreq"] = None  # as on a machine without the [compounds] extra
logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
import dealhunter_vectors as dv
from dealhunter_vectors.errors import ConfigurationError

async def main():
    out = {}
    async with dv.open_pool(sys.argv[1], min_size=1, max_size=2) as pool:
        await dv.insert_deal_chunks(pool, [dv.DealChunk(id="n1", qualification_id="q1", agent_name="a",
            chunk_type="t", content="Rahmenvertragsangebot für Webentwicklung")])
        out["parts"] = list(await pool.fetchrow("SELECT content_parts, content_parts_hash FROM deal_embeddings"))
        out["whole"] = [h.chunk_id for h in await dv.hybrid_search_deal_embeddings(
            pool, "Rahmenvertragsangebot", None, qualification_id="q1")]
        out["part"] = [h.chunk_id for h in await dv.hybrid_search_deal_embeddings(
            pool, "Rahmenvertrag", None, qualification_id="q1")]
        try:
            await dv.backfill_content_parts(pool)
        except ConfigurationError as exc:
            out["backfill"] = str(exc)
    print(json.dumps(out))

asyncio.run(main())
"""


async def test_without_the_extra_writes_store_null_and_searches_use_the_text(
    pool: dv.Pool, dhv_database_url: str
) -> None:
    proc = await asyncio.to_thread(run_python, "-c", WITHOUT_EXTRA, dhv_database_url)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert out["parts"] == [None, None]
    assert out["whole"] == ["n1"] and out["part"] == []  # found by its text, not by a part
    assert "pip install 'dealhunter-vectors[compounds]'" in out["backfill"]
    assert proc.stderr.count("German compound splitting is off") == 1  # said once per process
    # the CLI: a usage error naming the extra, no traceback
    code = "import sys, runpy; sys.modules['wordfreq'] = None; sys.argv = ['dealhunter-vectors', *sys.argv[1:]];"
    code += " runpy.run_module('dealhunter_vectors', run_name='__main__')"
    proc = await asyncio.to_thread(run_python, "-c", code, "text", "backfill", "--database-url", dhv_database_url)
    assert proc.returncode == 2, proc.stderr
    assert "dealhunter-vectors[compounds]" in proc.stderr and "Traceback" not in proc.stderr
    # with the extra, the row's parts are filled later
    [deal, _raw] = await dv.backfill_content_parts(pool)
    assert (deal.lacking, deal.filled) == (1, 1)
    assert await found(pool, "Rahmenvertrag") == {"n1"}


async def test_a_huge_chunk_of_compounds_is_written(pool: dv.Pool) -> None:
    # 250,000 characters of distinct four-part compounds split into ~1.08 M characters of parts,
    # whose tsvector with the text's is 1.19 MB: over PostgreSQL's 1 MB limit, the write would
    # fail. The parts are bounded (whole groups), so it is written and indexed.
    import random

    import wordfreq

    words = [w for w in wordfreq.top_n_list("de", 20_000) if w.isalpha() and len(w) >= 5][:5000]
    rng = random.Random(1)
    tokens: list[str] = []
    while sum(len(t) + 1 for t in tokens) < compounds.MAX_TEXT_CHARS:
        tokens.append("".join(rng.choice(words) for _ in range(4)).capitalize())
    text = " ".join(tokens)[: compounds.MAX_TEXT_CHARS]
    await dv.insert_deal_chunks(
        pool, [dv.DealChunk(id="huge", qualification_id="q1", agent_name="a", chunk_type="t", content=text)]
    )
    parts, size = await pool.fetchrow(
        "SELECT content_parts, pg_column_size(content_tsv) FROM deal_embeddings WHERE id = 'huge'"
    )
    assert MAX_PARTS_CHARS - 1000 < len(parts) <= MAX_PARTS_CHARS and size < 1_048_576
    first = tokens[0]
    assert await found(pool, compounds.split_compound(first)[-1]) == {"huge"}
