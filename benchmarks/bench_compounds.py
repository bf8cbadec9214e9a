"""Compound-aware text leg (issue 23): recall@10 with and without decompounding, and what it costs.

    .venv/bin/python -m benchmarks.bench_compounds [--out results.json] [--repeats 20]

Plain SQL over temporary tables (not the library's search functions): the chunks of
``benchmarks/data/german_tenders.json`` indexed four ways, per text search configuration
(``german`` and ``simple``), ranked by ``ts_rank_cd`` descending, then id:

* ``plain``: ``to_tsvector(cfg, content)`` searched with ``websearch_to_tsquery(cfg, query)`` (today);
* ``split``: ``to_tsvector(cfg, decompound_text(content))``, the same query;
* ``split+alt``: the same index, the query ORed with ``websearch_to_tsquery(cfg, decompound_query(query))``;
* ``split+alt, parts C``: the text at weight D and the parts at weight C, ranked with the weights
  ``{0.1, 0.01, 0.4, 1.0}`` (a part counts a tenth of a word of the text; texts without compounds
  score as before);
* ``inline+alt``: the rejected layout, each compound's parts right after it in the text.

Query groups: the corpus's three, and ``phrase``: quoted three-word phrases of the chunks that
start with a compound (relevant: the chunks holding the phrase verbatim).

Costs, side by side in one run (preliminary on a shared machine): ``decompound_text`` per chunk
(every cache cleared before each chunk; streamed, caches cleared once; warm; the cold and
streamed figures are the fastest of five passes), ``to_tsvector`` of the decompounded text vs the
text, ``decompound_query`` per query, and the search statement of each variant.

Uses ``DATABASE_URL`` when it names a server, else the embedded PostgreSQL
(``DEALHUNTER_EMBEDDED_DATA_DIR``). Creates only temporary tables.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg

from dealhunter_vectors import compounds
from dealhunter_vectors.compounds import compound_parts_text, decompound_query, decompound_text

DATA = Path(__file__).resolve().parent / "data" / "german_tenders.json"
CONFIGS = ("german", "simple")
K = 10

# Index columns and their rank expressions, fixed here (no identifier comes from input).
VARIANTS: dict[str, tuple[str, str, bool]] = {
    # name: (index table, rank expression, uses the alternative query)
    "plain": ("tsv_plain", "ts_rank_cd(c.tsv, query.q)", False),
    "split": ("tsv_split", "ts_rank_cd(c.tsv, query.q)", False),
    "split+alt": ("tsv_split", "ts_rank_cd(c.tsv, query.q)", True),
    "split+alt, parts C": ("tsv_weighted", "ts_rank_cd('{0.1, 0.01, 0.4, 1.0}'::float4[], c.tsv, query.q)", True),
    "inline+alt": ("tsv_inline", "ts_rank_cd(c.tsv, query.q)", True),
}


TSQUERY = """CASE WHEN $2::text IS NULL THEN websearch_to_tsquery($3::regconfig, $1::text)
    ELSE websearch_to_tsquery($3::regconfig, $1::text) || websearch_to_tsquery($3::regconfig, $2::text) END"""
"""The text leg's query from parameters only: $1 the query, $2 decompound_query($1) or NULL, $3 the configuration."""
SPLIT_TEXT = "CASE WHEN parts = '' THEN content ELSE content || E'\\n' || parts END"
"""decompound_text(content) in SQL (the table keeps compound_parts_text(content) in parts)."""


def search_sql(variant: str) -> str:
    column, rank, _alt = VARIANTS[variant]
    return f"""
        WITH query AS (SELECT {TSQUERY} AS q)
        SELECT c.id FROM "{column}" c, query
        WHERE c.tsv @@ query.q
        ORDER BY {rank} DESC, c.id
        LIMIT {K}
    """


def match_sql(variant: str) -> str:
    """Whether chunk $4 matches the query (the issue's table: match, not rank)."""
    column = VARIANTS[variant][0]
    return f"""
        SELECT c.tsv @@ {TSQUERY} FROM "{column}" c WHERE c.id = $4::text
    """


INDEXES: dict[str, str] = {
    # table of (id, tsv) -> the tsvector expression over chunks.content / chunks.parts ($1: the configuration)
    "tsv_plain": "to_tsvector($1::regconfig, content)",
    "tsv_split": f"to_tsvector($1::regconfig, {SPLIT_TEXT})",
    "tsv_weighted": "to_tsvector($1::regconfig, content) || setweight(to_tsvector($1::regconfig, parts), 'C')",
    "tsv_inline": "to_tsvector($1::regconfig, inline)",
}
"""One table per index, so each row is as small as the library's (no TOAST compression of a wide row)."""


async def build_table(conn: asyncpg.Connection, chunks: list[dict[str, str]], cfg: str) -> None:
    for table in ("chunks", *INDEXES):
        await conn.execute(f'DROP TABLE IF EXISTS "{table}"')
    await conn.execute(
        "CREATE TEMP TABLE chunks (id text PRIMARY KEY, content text NOT NULL, parts text NOT NULL, inline text NOT NULL)"  # noqa: E501
    )
    await conn.executemany(
        "INSERT INTO chunks (id, content, parts, inline) VALUES ($1, $2, $3, $4)",
        [(c["id"], c["text"], compound_parts_text(c["text"]), inline_text(c["text"])) for c in chunks],
    )
    for table, expression in INDEXES.items():
        await conn.execute(f'CREATE TEMP TABLE "{table}" (id text PRIMARY KEY, tsv tsvector NOT NULL)')
        await conn.execute(f'INSERT INTO "{table}" (id, tsv) SELECT id, {expression} FROM chunks', cfg)
        await conn.execute(f'ANALYZE "{table}"')
    # tsv_split is to_tsvector(cfg, decompound_text(content)): checked, not assumed.
    same = await conn.fetchval(
        "SELECT count(*) FROM tsv_split c JOIN unnest($1::text[], $2::text[]) AS d(id, text) USING (id) "
        "WHERE c.tsv = to_tsvector($3::regconfig, d.text)",
        [c["id"] for c in chunks],
        [decompound_text(c["text"]) for c in chunks],
        cfg,
    )
    assert same == len(chunks), f"tsv_split differs from to_tsvector(decompound_text) on {len(chunks) - same} rows"


def inline_text(text: str) -> str:
    """The rejected layout: each compound's expansion right after the compound (shifts later positions)."""
    out, done = [], 0
    for match in compounds._TOKEN.finditer(text):
        expansion = compounds._expansion(match.group().lower())
        if expansion:
            out += [text[done : match.end()], " ", " ".join(expansion)]
            done = match.end()
    return "".join(out) + text[done:]


def phrase_queries(chunks: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Quoted three-word phrases that start with a compound (every 8th chunk's first one).

    Relevant: the chunks whose text holds the phrase verbatim (case-insensitive), judged by text.
    """
    out = []
    for chunk in chunks[::8]:
        words = re.findall(r"[\w-]+|[^\w\s]", chunk["text"])
        for i in range(len(words) - 2):
            window = words[i : i + 3]
            if all(re.fullmatch(r"[\w-]+", w) for w in window) and compound_parts_text(window[0]):
                phrase = " ".join(window)
                relevant = [c["id"] for c in chunks if phrase.lower() in c["text"].lower()]
                out.append({"id": f"p-{chunk['id']}", "group": "phrase", "query": f'"{phrase}"', "relevant": relevant})
                break
    return out


def recall(top: list[str], relevant: list[str]) -> float:
    return len(set(top[:K]) & set(relevant)) / min(K, len(relevant))


async def evaluate(conn: asyncpg.Connection, data: dict[str, Any], cfg: str) -> dict[str, Any]:
    queries = data["queries"] + phrase_queries(data["chunks"])
    alts = {q["id"]: decompound_query(q["query"]) for q in queries}
    out: dict[str, Any] = {}
    for variant, (_col, _rank, use_alt) in VARIANTS.items():
        stmt = await conn.prepare(search_sql(variant))
        groups: dict[str, list[float]] = {}
        false_matches: dict[str, list[int]] = {}
        misses: list[str] = []
        for q in queries:
            rows = await stmt.fetch(q["query"], alts[q["id"]] if use_alt else None, cfg)
            ids = [r["id"] for r in rows]
            r = recall(ids, q["relevant"])
            groups.setdefault(q["group"], []).append(r)
            false_matches.setdefault(q["group"], []).append(len(set(ids) - set(q["relevant"])))
            if r < 1:
                misses.append(f"{q['query']} ({r:.2f})")
        table = []
        for row in data["issue_table"]:
            alt = decompound_query(row["query"]) if use_alt else None
            table.append(await conn.fetchval(match_sql(variant), row["query"], alt, cfg, row["chunk_id"]))
        out[variant] = {
            "recall_at_10": {g: statistics.fmean(v) for g, v in groups.items()},
            "false_matches_per_query": {g: statistics.fmean(v) for g, v in false_matches.items()},
            "queries": {g: len(v) for g, v in groups.items()},
            "issue_table_match": table,
            "misses": misses,
        }
    return out


def per_kb(seconds: float, nbytes: int) -> float:
    return seconds * 1000 / (nbytes / 1024)


def clear_caches() -> None:
    compounds._split_lower.cache_clear()
    compounds._expansion.cache_clear()


COLD_PASSES = 5


def python_costs(data: dict[str, Any], repeats: int) -> dict[str, float]:
    texts = [c["text"] for c in data["chunks"]]
    nbytes = sum(len(t.encode()) for t in texts)
    decompound_text("Vorladen der Wortliste")  # the word list loads once per process (timed separately)
    colds, streams = [], []
    for _ in range(COLD_PASSES):  # the fastest pass: the machine's noise only ever adds time
        cold = 0.0
        for text in texts:
            clear_caches()
            t0 = time.perf_counter()
            decompound_text(text)
            cold += time.perf_counter() - t0
        colds.append(cold)
        clear_caches()
        t0 = time.perf_counter()
        for text in texts:  # a writer's stream: caches cleared once, each chunk once
            decompound_text(text)
        streams.append(time.perf_counter() - t0)
    cold, stream = min(colds), min(streams)
    warm = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for text in texts:
            decompound_text(text)
        warm.append(time.perf_counter() - t0)
    queries = [q["query"] for q in data["queries"]]
    qcold = 0.0
    for query in queries:
        clear_caches()
        t0 = time.perf_counter()
        decompound_query(query)
        qcold += time.perf_counter() - t0
    qwarm = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for query in queries:
            decompound_query(query)
        qwarm.append(time.perf_counter() - t0)
    split_bytes = sum(len(decompound_text(t).encode()) for t in texts)
    return {
        "chunks": len(texts),
        "mean_chunk_bytes": nbytes / len(texts),
        "decompound_text_ms_per_kb_cold": per_kb(cold, nbytes),
        "decompound_text_ms_per_kb_stream": per_kb(stream, nbytes),
        "decompound_text_ms_per_kb_warm": per_kb(statistics.median(warm), nbytes),
        "decompound_text_ms_per_chunk_cold": cold * 1000 / len(texts),
        "decompounded_bytes_ratio": split_bytes / nbytes,
        "decompound_query_ms_cold": qcold * 1000 / len(queries),
        "decompound_query_ms_warm": statistics.median(qwarm) * 1000 / len(queries),
    }


async def timed_alternating(cases: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Median seconds per case; the cases take turns, so the machine's noise hits all."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for fn in cases.values():
        await fn()
    for _ in range(repeats):
        for name, fn in cases.items():
            t0 = time.perf_counter()
            await fn()
            samples[name].append(time.perf_counter() - t0)
    return {name: statistics.median(v) for name, v in samples.items()}


async def sql_costs(conn: asyncpg.Connection, data: dict[str, Any], cfg: str, repeats: int) -> dict[str, float]:
    nbytes = sum(len(c["text"].encode()) for c in data["chunks"])
    n = len(data["chunks"])
    plain = await conn.prepare("SELECT sum(length(to_tsvector($1::regconfig, content))) FROM chunks")
    split = await conn.prepare(f"SELECT sum(length(to_tsvector($1::regconfig, {SPLIT_TEXT}))) FROM chunks")
    times = await timed_alternating(
        {"plain": lambda: plain.fetchval(cfg), "split": lambda: split.fetchval(cfg)}, repeats
    )
    sizes = await conn.fetchrow(
        "SELECT avg(pg_column_size(p.tsv)) AS plain, avg(pg_column_size(s.tsv)) AS split, "
        "avg(length(p.tsv)) AS lex_plain, avg(length(s.tsv)) AS lex_split FROM tsv_plain p JOIN tsv_split s USING (id)"
    )
    queries = data["queries"]
    alts = [decompound_query(q["query"]) for q in queries]
    stmts = {v: await conn.prepare(search_sql(v)) for v in ("plain", "split", "split+alt")}

    async def run_all(variant: str, use_alt: bool) -> None:
        for q, alt in zip(queries, alts, strict=True):
            await stmts[variant].fetch(q["query"], alt if use_alt else None, cfg)

    qtimes = await timed_alternating(
        {
            "plain": lambda: run_all("plain", False),
            "split": lambda: run_all("split", False),
            "split+alt": lambda: run_all("split+alt", True),
        },
        max(3, repeats // 4),
    )
    return {
        "to_tsvector_ms_per_kb_plain": per_kb(times["plain"], nbytes),
        "to_tsvector_ms_per_kb_split": per_kb(times["split"], nbytes),
        "to_tsvector_ms_per_chunk_plain": times["plain"] * 1000 / n,
        "to_tsvector_ms_per_chunk_split": times["split"] * 1000 / n,
        "tsvector_bytes_plain": float(sizes["plain"]),
        "tsvector_bytes_split": float(sizes["split"]),
        "lexemes_plain": float(sizes["lex_plain"]),
        "lexemes_split": float(sizes["lex_split"]),
        "search_ms_per_query_plain": qtimes["plain"] * 1000 / len(queries),
        "search_ms_per_query_split": qtimes["split"] * 1000 / len(queries),
        "search_ms_per_query_split_alt": qtimes["split+alt"] * 1000 / len(queries),
    }


def report(results: dict[str, Any]) -> None:
    groups = ("compound_part", "whole_compound", "whole_word", "phrase")
    for cfg in CONFIGS:
        res = results["configs"][cfg]
        counts = res["recall"]["plain"]["queries"]
        print(f"\n## text leg, configuration {cfg!r} ({', '.join(f'{g} {counts[g]}' for g in groups)} queries)\n")
        print(
            "| variant | "
            + " | ".join(f"recall@10 {g}" for g in groups)
            + " | false matches/query (part) | issue table |"
        )
        print("|---|" + "---:|" * len(groups) + "---:|---|")
        for variant, r in res["recall"].items():
            cells = " | ".join(f"{r['recall_at_10'][g]:.3f}" for g in groups)
            table = "".join("y" if m else "n" for m in r["issue_table_match"])
            print(f"| {variant} | {cells} | {r['false_matches_per_query']['compound_part']:.2f} | {table} |")
        s = res["sql"]
        print(
            f"\nto_tsvector per chunk: {s['to_tsvector_ms_per_chunk_plain']:.3f} ms plain, "
            f"{s['to_tsvector_ms_per_chunk_split']:.3f} ms decompounded "
            f"({s['to_tsvector_ms_per_kb_plain']:.3f} vs {s['to_tsvector_ms_per_kb_split']:.3f} ms/KB); "
            f"tsvector {s['tsvector_bytes_plain']:.0f} vs {s['tsvector_bytes_split']:.0f} bytes, "
            f"{s['lexemes_plain']:.1f} vs {s['lexemes_split']:.1f} lexemes; "
            f"search (seq scan, {len(res['recall'])} variants' table) {s['search_ms_per_query_plain']:.3f} plain, "
            f"{s['search_ms_per_query_split']:.3f} split, {s['search_ms_per_query_split_alt']:.3f} split+alt ms/query"
        )
    p = results["python"]
    print(
        f"\ndecompound_text: {p['decompound_text_ms_per_kb_cold']:.3f} ms/KB cold (caches cleared before each chunk), "
        f"{p['decompound_text_ms_per_kb_stream']:.3f} ms/KB streamed (caches cleared once, each chunk once), "
        f"{p['decompound_text_ms_per_kb_warm']:.4f} ms/KB warm (all cached); "
        f"{p['decompound_text_ms_per_chunk_cold']:.3f} ms per {p['mean_chunk_bytes']:.0f}-byte chunk cold; "
        f"text grows x{p['decompounded_bytes_ratio']:.2f}\n"
        f"decompound_query: {p['decompound_query_ms_cold']:.4f} ms cold, {p['decompound_query_ms_warm']:.4f} ms warm; "
        f"word list load {p['load_s']:.2f} s once per process"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    data = json.loads(DATA.read_text(encoding="utf-8"))
    t0 = time.perf_counter()
    compounds.split_compound("Wortliste")
    load_s = time.perf_counter() - t0
    url = os.environ.get("DATABASE_URL")
    if not url or url.startswith("embedded"):
        from dealhunter_vectors.db.embedded import start_embedded

        url = start_embedded().url
    conn = await asyncpg.connect(url)
    results: dict[str, Any] = {"configs": {}}
    try:
        for cfg in CONFIGS:
            await build_table(conn, data["chunks"], cfg)
            results["configs"][cfg] = {
                "recall": await evaluate(conn, data, cfg),
                "sql": await sql_costs(conn, data, cfg, args.repeats),
            }
    finally:
        await conn.close()
    results["python"] = python_costs(data, args.repeats) | {"load_s": load_s}
    report(results)
    if args.out:
        args.out.write_text(json.dumps(results, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    asyncio.run(main())
