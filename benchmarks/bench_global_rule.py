"""Issue 22: the global search's widening rule against the raw statement, per data set, interleaved.

Run (data built once: vectors under ``.benchmarks/data/``, one ``dhv_rule_*`` database per set)::

    nice -n 5 python -m benchmarks.bench_global_rule --sets hard=10000,loose=10000,real=10000 \
        --rounds 40 --out .benchmarks/runs/global_rule.json

Data sets: ``benchmarks/global_sets.py`` (hard, loose clusters, real sentence embeddings; the
real set needs the benchmarks extra and is skipped without it). Per data set, in one loop that
runs every path once per round on the same query in a shuffled order (so a shared machine slows
every path alike and the ratios stay meaningful):

* ``raw_ef{N}``: the raw statement (HNSW candidates at ``hnsw.ef_search = N`` with the iterative
  scan, exact re-rank; ``perf_side_by_side.RAW_ANN_SQL``) on a held connection whose session
  has the settings: one round trip.
* ``ours``: ``find_similar_pre_qualifications(pool, q, min_similarity_percent=0, limit=10)``.
* ``ours_held``: the same call on a held connection (the library minus the pool).
* ``before``: the library's index search before issue 22 (migration 007's function, 100 candidates
  at 10,000 rows, widened 4x while the scan's frontier lies within 0.02 of the 18th distance),
  reproduced here with the library's own plan and result code, side by side.

Recall@10 of every path against numpy float64 exact over every query (before timing). The
summary names, per set, the cheapest raw statement with recall >= 0.99 and ``ours`` / it.
Server: ``PERF_DATABASE_URL`` or the embedded server (``DEALHUNTER_EMBEDDED_DATA_DIR``).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import asyncio
import functools
import json
import platform
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np

import dealhunter_vectors as dv
from benchmarks import datasets as ds
from benchmarks import global_sets
from benchmarks.perf_side_by_side import RAW_ANN_SQL, build_global, ensure_database, interleave
from dealhunter_vectors.db.embedded import start_embedded
from dealhunter_vectors.db.pool import operation, register_vector_codecs
from dealhunter_vectors.db.schema import apply_schema
from dealhunter_vectors.layout import layout_of
from dealhunter_vectors.models import PreQualificationSearch
from dealhunter_vectors.search import global_search as gs
from dealhunter_vectors.search._db import connection

REPO_ROOT = Path(__file__).resolve().parents[1]
OUT = REPO_ROOT / ".benchmarks" / "runs" / "global_rule.json"
GOAL_RECALL = 0.99

# The library's index search before issue 22 (migration 007's function, start 100, widen 4x while
# the frontier lies within 0.02 of the (limit + 8)-th distance), reproduced for a side-by-side run.
_OLD_CALL_SQL = (
    'SELECT * FROM "dealhunter_pre_qualification_ann"($1::vector, $2::text, $3::float8, $4::int4, $5::int4, '
    "$6::int4, $7::int4)"
)


def _old_crowded(rows: Sequence[Any], found: Sequence[Any], limit: int, candidates: int, max_distance: float) -> bool:
    if not rows or rows[0]["candidates"] < candidates or rows[0]["frontier"] is None:
        return False
    boundary = found[limit - 1]["distance"] if len(found) >= limit else max_distance
    return bool(rows[0]["frontier"] < boundary + 0.02)


@operation("find_similar_pre_qualifications_before_issue_22", read_only=True)
async def old_find_similar(db: Any, query: Any, *, limit: int, counts: dict[str, int]) -> list[str]:
    plan = gs._PreQualPlan(
        PreQualificationSearch.model_construct(
            query_embedding=query, exclude_id=None, min_similarity_percent=0, limit=limit, exact=None
        )
    )
    assert plan.limit is not None
    sql_limit = plan.limit + 8
    async with connection(db) as conn:
        await layout_of(conn)  # what the library does per search too
        base, cap = max(100, 4 * sql_limit), gs.ANN_MAX_EF_SEARCH
        while True:
            rows = await conn.fetch(
                _OLD_CALL_SQL, plan.vector, None, plan.max_distance, sql_limit, base, cap, gs.ANN_MAX_SCAN_TUPLES
            )
            found = [row for row in rows if row["id"] is not None]
            candidates = rows[0]["ef"] if rows else cap
            if candidates >= cap or not _old_crowded(rows, found, sql_limit, candidates, plan.max_distance):
                return [m.pre_qualification_id for m in plan.matches(found)]
            counts["widened"] += 1
            base = cap = min(gs.ANN_MAX_EF_SEARCH, 4 * candidates)


@contextmanager
def counting_rule(counts: dict[str, int]) -> Iterator[None]:
    """``gs._crowded`` wrapped to count the library's widenings."""
    original = gs._crowded

    def counted(*args: Any) -> bool:
        widen = original(*args)
        counts["widened"] += int(widen)
        return widen

    gs._crowded = counted  # type: ignore[assignment]
    try:
        yield
    finally:
        gs._crowded = original  # type: ignore[assignment]


async def measure_set(
    server_url: str, admin: asyncpg.Connection, data: global_sets.GlobalSet, efs: list[int], rounds: int
) -> dict[str, Any]:
    db_url, meta = await ensure_database(admin, server_url, f"dhv_rule_{data.key}", build_global(data.vectors))
    conn = await asyncpg.connect(db_url)
    try:
        await apply_schema(conn)  # a database built before a new migration gets it (008: a function)
    finally:
        await conn.close()
    ids = [ds.pre_qualification_id(i) for i in range(data.rows)]
    truth = [{ids[j] for j in row} for row in ds.exact_top_k(data.vectors, data.queries, 10)]
    pool = await dv.create_pool(db_url, min_size=1, max_size=2)
    held = await asyncpg.connect(db_url, server_settings={"jit": "off"})
    await register_vector_codecs(held)
    conns: dict[int, asyncpg.Connection] = {}
    for ef in efs:
        settings = {"jit": "off", "enable_seqscan": "off", "hnsw.iterative_scan": "relaxed_order"}
        conns[ef] = await asyncpg.connect(db_url, server_settings={**settings, "hnsw.ef_search": str(ef)})
        await register_vector_codecs(conns[ef])
    queries = data.queries

    async def ours(db: Any, i: int) -> list[str]:
        res = await dv.find_similar_pre_qualifications(db, queries[i], min_similarity_percent=0, limit=10)
        return [m.pre_qualification_id for m in res]

    before_counts = {"widened": 0}

    async def before(i: int) -> list[str]:
        return await old_find_similar(pool, queries[i], limit=10, counts=before_counts)

    async def raw(ef: int, i: int) -> list[str]:
        return [r["id"] for r in await conns[ef].fetch(RAW_ANN_SQL, queries[i], ef)]

    paths: dict[str, Callable[[int], Awaitable[list[str]]]] = {
        "ours": functools.partial(ours, pool),
        "ours_held": functools.partial(ours, held),
        "before": before,
        **{f"raw_ef{ef}": functools.partial(raw, ef) for ef in efs},
    }
    try:
        recall: dict[str, float] = {}
        widened: dict[str, dict[str, int]] = {}
        for name, fn in paths.items():
            counts = {"widened": 0}
            before_counts["widened"] = 0
            with counting_rule(counts):
                got = [await fn(i) for i in range(len(queries))]
            widened[name] = dict(before_counts) if name == "before" else counts
            recall[name] = float(np.mean([len(set(h) & t) / 10 for h, t in zip(got, truth, strict=True)]))
        res = await interleave(paths, rounds, 3, len(queries))
    finally:
        for conn in (held, *conns.values()):
            await conn.close()
        await dv.close_pool(pool)
    for name in res:
        res[name]["recall_at_10"] = recall[name]
    for name in ("ours", "before"):
        res[name]["widenings"] = widened[name]["widened"]
    raws = [(res[f"raw_ef{ef}"]["p50_ms"], ef) for ef in efs if recall[f"raw_ef{ef}"] >= GOAL_RECALL]
    cheapest = min(raws) if raws else None
    return {
        "rows": data.rows,
        "queries": len(queries),
        "note": data.note,
        "build": meta,
        "paths": res,
        "cheapest_raw_ef": None if cheapest is None else cheapest[1],
        "ratio": None if cheapest is None else res["ours"]["p50_ms"] / cheapest[0],
        "ratio_held": None if cheapest is None else res["ours_held"]["p50_ms"] / cheapest[0],
        "ratio_before": None if cheapest is None else res["before"]["p50_ms"] / cheapest[0],
    }


def table(report: dict[str, Any], efs: list[int]) -> str:
    head = ["set", "rows", *[f"raw ef {ef}" for ef in efs], "ours", "ours (held conn)", "before issue 22",
            "cheapest raw >= 0.99", "ours / it"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in report["sets"].items():
        if "skipped" in r:
            lines.append(f"| {name} | skipped: {r['skipped']} |")
            continue
        p = r["paths"]

        def cell(path: str, p: dict[str, Any] = p) -> str:
            return f"{p[path]['p50_ms']:.2f} ms / {p[path]['recall_at_10']:.3f}"

        cheapest = "none" if r["cheapest_raw_ef"] is None else f"ef {r['cheapest_raw_ef']}"
        ratio = "-" if r["ratio"] is None else f"**{r['ratio']:.2f}x** (held {r['ratio_held']:.2f}x)"
        lines.append(
            f"| {name} | {r['rows']:,} | " + " | ".join(cell(f"raw_ef{ef}") for ef in efs)
            + f" | {cell('ours')} ({p['ours']['widenings']} widened) | {cell('ours_held')}"
            + f" | {cell('before')} ({p['before']['widenings']} widened)"
            + f" | {cheapest} | {ratio} |"
        )  # fmt: skip
    return "\n".join(lines)


def parse_sets(spec: str) -> list[tuple[str, int]]:
    out = []
    for item in spec.split(","):
        name, _, rows = item.partition("=")
        if name not in global_sets.SETS:
            raise SystemExit(f"--sets: unknown set {name!r} (one of {', '.join(global_sets.SETS)})")
        out.append((name, int(rows or 10_000)))
    return out


async def main(args: argparse.Namespace) -> None:
    efs = [int(x) for x in args.efs.split(",")]
    url = os.environ.get("PERF_DATABASE_URL") or start_embedded().url
    admin = await asyncpg.connect(url)
    report: dict[str, Any] = {
        "run": datetime.now(UTC).isoformat(),
        "machine": f"{os.cpu_count()} CPUs {platform.machine()}, load avg {os.getloadavg()}",
        "postgres": await admin.fetchval("SHOW server_version"),
        "rounds": args.rounds,
        "constants": {k: getattr(gs, k) for k in dir(gs) if k.startswith("ANN_")},
        "sets": {},
    }
    try:
        for name, rows in parse_sets(args.sets):
            key = f"{name}_{rows}"
            try:
                data = global_sets.SETS[name](rows)
            except global_sets.MissingDependencyError as exc:
                print(f"{key}: skipped ({exc})", flush=True)
                report["sets"][key] = {"skipped": str(exc)}
                continue
            report["sets"][key] = await measure_set(url, admin, data, efs, args.rounds)
            print(table({"sets": {key: report["sets"][key]}}, efs).splitlines()[-1], flush=True)
            write(report, Path(args.out))
    finally:
        await admin.close()
    report["load_avg_end"] = os.getloadavg()
    write(report, Path(args.out))
    print(table(report, efs))


def write(report: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=float))


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--sets", default="hard=10000,loose=10000,real=10000", help="name=rows,... (hard, loose, real)")
    ap.add_argument("--efs", default="40,64,100,200,400")
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--out", default=str(OUT))
    return ap.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
