"""Issue 22: which results of the global index search miss rows, and what tells them apart.

For every query of each data set (``benchmarks/global_sets.py``) and each candidate count, the
candidates of one HNSW walk (``hnsw.ef_search`` = the count, iterative scan, as the library's
function runs it) re-ranked exactly; per result (its first 10 rows): whether it misses one of
the exact top 10, and the widening rule's statistic, the rows' mean pairwise cosine distance
divided by their mean distance to the query (numpy on the stored vectors). Prints, per set and
per number of rows used, the statistic's range for the results that miss rows and for those
that do not::

    nice -n 5 python -m benchmarks.global_rule_analysis --sets hard=10000,loose=10000,real=10000

Uses the ``dhv_rule_*`` databases of ``bench_global_rule`` (built when missing).
"""

from __future__ import annotations

import argparse
import asyncio
import os

import asyncpg
import numpy as np

from benchmarks import datasets as ds
from benchmarks import global_sets
from benchmarks.bench_global_rule import parse_sets
from benchmarks.perf_side_by_side import build_global, ensure_database
from dealhunter_vectors.db.embedded import start_embedded
from dealhunter_vectors.db.pool import register_vector_codecs

COUNTS = (40, 64, 100, 256)
CANDIDATES_SQL = """
SELECT c.id, c.description_embedding <=> $1::vector AS distance
FROM (SELECT p.id, p.description_embedding FROM "pre_qualifications" p
      WHERE p.description_embedding IS NOT NULL AND p.extracted_requirements IS NOT NULL
      ORDER BY (p.description_embedding)::halfvec(3072) <=> ($1::vector)::halfvec(3072) LIMIT $2) c
ORDER BY distance, c.id
"""


async def analyse(url: str, admin: asyncpg.Connection, data: global_sets.GlobalSet, rows_used: list[int]) -> None:
    db_url, _ = await ensure_database(admin, url, f"dhv_rule_{data.key}", build_global(data.vectors))
    unit = data.vectors.astype(np.float64)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    truth = ds.exact_top_k(data.vectors, data.queries, 10)
    settings = {"jit": "off", "enable_seqscan": "off", "hnsw.iterative_scan": "relaxed_order"}
    conn = await asyncpg.connect(db_url, server_settings=settings)
    await register_vector_codecs(conn)
    stats: dict[int, tuple[list[float], list[float]]] = {n: ([], []) for n in rows_used}
    try:
        for count in COUNTS:
            await conn.execute(f"SET hnsw.ef_search = {count}")
            for qi, q in enumerate(data.queries):
                found = await conn.fetch(CANDIDATES_SQL, q, count)
                ids = np.array([int(r["id"][2:]) for r in found])  # ids are ds.pre_qualification_id(row)
                dist = np.array([r["distance"] for r in found])
                missed = len(set(ids[:10]) & set(truth[qi])) < 10
                for n in rows_used:
                    centre = unit[ids[:n]].mean(axis=0)
                    ratio = n / (n - 1) * (1 - centre @ centre) / dist[:n].mean()
                    stats[n][0 if missed else 1].append(float(ratio))
    finally:
        await conn.close()
    for n, (miss, ok) in stats.items():
        ok_a = np.array(ok)
        miss_txt = f"{min(miss):.2f}-{max(miss):.2f} ({len(miss)})" if miss else "none"
        print(
            f"| {data.name} | {data.rows:,} | {n} | {miss_txt} | {ok_a.min():.2f}-{ok_a.max():.2f} ({len(ok)})"
            f" | {np.mean(ok_a < 0.5):.3f} |"
        )


async def main(args: argparse.Namespace) -> None:
    url = os.environ.get("PERF_DATABASE_URL") or start_embedded().url
    admin = await asyncpg.connect(url)
    print("| set | rows | result rows used | ratio, results missing rows (n) | ratio, complete results (n)"
          " | complete results below 0.5 |\n|---|---:|---:|---|---|---:|")  # fmt: skip
    try:
        for name, rows in parse_sets(args.sets):
            try:
                data = global_sets.SETS[name](rows)
            except global_sets.MissingDependencyError as exc:
                print(f"| {name} | {rows:,} | skipped: {exc} |")
                continue
            await analyse(url, admin, data, [int(x) for x in args.rows_used.split(",")])
    finally:
        await admin.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--sets", default="hard=10000,loose=10000,real=10000")
    ap.add_argument("--rows-used", default="5,10")
    asyncio.run(main(ap.parse_args()))
