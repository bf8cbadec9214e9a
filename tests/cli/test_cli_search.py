"""``dealhunter-vectors search``: query from a file or an existing row, filters, JSON and tables."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import dealhunter_vectors as dv
from dealhunter_vectors.cli import main
from dealhunter_vectors.legacy.synthetic import query_with_cosine
from dealhunter_vectors.models import DealChunk, RawChunk
from dealhunter_vectors.testing import seed_owners

rng = np.random.default_rng(5)


def unit() -> np.ndarray[Any, Any]:
    return query_with_cosine(rng.standard_normal(3072), 1.0, rng)


def near(v: np.ndarray[Any, Any], cos: float) -> np.ndarray[Any, Any]:
    return query_with_cosine(v, cos, rng)


def cos64(a: Any, b: Any) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


async def test_search_cli(
    dhv_pool: dv.Pool, dhv_database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    q = unit()
    await seed_owners(dhv_pool, pre_qualification_ids=["pq-1"], qualification_ids=["q-1"])
    stored = {f"c{i}": near(q, 0.9 - 0.17 * i) for i in range(5)}
    await dv.insert_deal_chunks(
        dhv_pool,
        [
            DealChunk(
                id=cid,
                qualification_id="q-1",
                agent_name="tech-agent" if i % 2 else "legal-agent",
                chunk_type="text",
                content=f"chunk {cid}",
                embedding=v,
            )
            for i, (cid, v) in enumerate(stored.items())
        ],
    )
    await dv.replace_raw_chunks(
        dhv_pool, "pq-1", [RawChunk(id="r0", chunk_index=0, content="raw", token_count=3, embedding=near(q, 0.5))]
    )
    query_file = tmp_path / "q.json"
    query_file.write_text(json.dumps({"embedding": q.tolist()}))

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["search", *args, "--database-url", dhv_database_url])
        out = capsys.readouterr()
        return code, out.out, out.err

    # lead: > 0.3 -> c0 (0.9), c1 (0.73), c2 (0.56), c3 (0.39); not c4 (0.22)
    code, out, _ = await asyncio.to_thread(
        run, "lead", "--query-file", str(query_file), "--qualification-id", "q-1", "--json"
    )
    assert code == 0
    hits = json.loads(out)
    assert [h["chunk_id"] for h in hits] == ["c0", "c1", "c2", "c3"]
    for h in hits:
        assert abs(h["similarity"] - cos64(stored[h["chunk_id"]], q)) < 1e-5
    # filters as options
    code, out, _ = await asyncio.to_thread(
        run,
        "lead",
        "--query-file",
        str(query_file),
        "--qualification-id",
        "q-1",
        "--agent-name",
        "tech-agent",
        "--json",
    )
    assert [h["chunk_id"] for h in json.loads(out)] == ["c1", "c3"]
    # --like-chunk: the stored embedding of c0 is the query; c0 itself is the best hit at ~1.0
    code, out, _ = await asyncio.to_thread(
        run, "deep-scan", "--like-chunk", "c0", "--qualification-id", "q-1", "--json"
    )
    hits = json.loads(out)
    assert code == 0 and hits[0]["chunk_id"] == "c0" and hits[0]["similarity"] == pytest.approx(1.0, abs=1e-6)
    code, out, _ = await asyncio.to_thread(run, "raw", "--like-chunk", "r0", "--pre-qualification-id", "pq-1", "--json")
    assert code == 0 and [h["chunk_id"] for h in json.loads(out)] == ["r0"]
    # a table for people
    code, out, _ = await asyncio.to_thread(run, "lead", "--query-file", str(query_file), "--qualification-id", "q-1")
    assert code == 0 and "lead: 4 hit(s)" in out and "c3" in out


async def test_search_cli_errors(
    dhv_pool: dv.Pool, dhv_database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def run(*args: str) -> tuple[int, str]:
        code = main(["search", *args, "--database-url", dhv_database_url])
        return code, capsys.readouterr().err

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([0.1] * 10))
    code, err = await asyncio.to_thread(run, "lead", "--query-file", str(bad), "--qualification-id", "q")
    assert code == 1 and "expected 3072 dimensions, got 10" in err
    bad.write_text("{not json")
    code, err = await asyncio.to_thread(run, "lead", "--query-file", str(bad), "--qualification-id", "q")
    assert code == 1 and "not valid JSON" in err
    code, err = await asyncio.to_thread(run, "lead", "--like-chunk", "missing", "--qualification-id", "q")
    assert code == 1 and "no deal chunk, raw chunk or pre-qualification with id missing" in err
    good = tmp_path / "good.json"
    good.write_text(json.dumps(unit().tolist()))
    code, err = await asyncio.to_thread(run, "lead", "--query-file", str(good))  # no owner
    assert code == 2 and "qualification" in err
    code, err = await asyncio.to_thread(run, "lead")  # neither --query-file nor --like-chunk
    assert code == 2 and "needs --query-file or --like-chunk" in err
