"""``dealhunter-vectors recall-check``: the report on stdout, exit 0 at or above --min-recall, 1 below."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import pytest

import dealhunter_vectors as dv
from dealhunter_vectors.cli import main
from dealhunter_vectors.db.schema import drop_vector_indexes

DIMS = 3072
WEAK_INDEX = (  # the library's index expression with a graph too sparse to find every row
    'CREATE INDEX "weak_hnsw" ON "pre_qualifications" USING hnsw ((("description_embedding")::halfvec(3072))'
    " halfvec_cosine_ops) WITH (m = 4, ef_construction = 8)"
)


async def _load(pool: dv.Pool, n: int) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(7)
    centres = rng.standard_normal((8, DIMS))
    vectors = (0.6 * centres[rng.integers(0, 8, n)] + rng.standard_normal((n, DIMS))).astype(np.float32)
    await pool.execute("INSERT INTO users (id, email, password, name) VALUES ('u', 'u@e.com', 'x', 'U')")
    async with pool.acquire() as conn:
        await drop_vector_indexes(conn)
    await pool.copy_records_to_table(
        "pre_qualifications",
        columns=["id", "user_id", "source", "stage", "input_type", "raw_input", "extracted_requirements",
                 "description_embedding"],
        records=[(f"pq{i:04d}", "u", "reactive", "rfp", "freetext", "t", "{}", v) for i, v in enumerate(vectors)],
    )  # fmt: skip
    async with pool.acquire() as conn:
        await conn.execute(WEAK_INDEX)
        await conn.execute("ANALYZE pre_qualifications")
    return vectors


async def test_recall_check_reports_and_exits_by_the_threshold(
    dhv_pool: dv.Pool, dhv_database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await _load(dhv_pool, 1200)
    args = ["recall-check", "--database-url", dhv_database_url, "--samples", "12", "--seed", "3", "--json"]
    code = await _run([*args, "--min-recall", "0"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["samples"] == 12 and report["eligible_rows"] == 1200
    recalls = [q["recall"] for q in report["queries"]]
    assert report["recall_mean"] == pytest.approx(sum(recalls) / len(recalls))
    assert report["recall_min"] == min(recalls)
    assert report["recall_mean"] < 1.0  # the weak graph misses rows: a measurement, not a constant
    code = await _run([*args, "--min-recall", "1"])
    assert code == 1
    assert json.loads(capsys.readouterr().out)["recall_mean"] == report["recall_mean"]  # deterministic sample


async def test_recall_check_rejects_bad_arguments_and_an_empty_table(
    dhv_database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await _run(["recall-check", "--database-url", dhv_database_url, "--min-recall", "1.5"]) == 2
    assert await _run(["recall-check", "--database-url", dhv_database_url, "--samples", "0"]) == 2
    assert await _run(["recall-check", "--database-url", dhv_database_url]) == 1  # nothing to sample
    err = capsys.readouterr().err
    assert "no pre_qualifications row" in err and "Traceback" not in err


async def _run(argv: list[str]) -> int:
    """main() in a worker thread: it runs its own event loop (asyncio.run)."""
    try:
        return await asyncio.to_thread(main, argv)
    except SystemExit as exc:  # argparse usage errors
        return int(exc.code or 0)
