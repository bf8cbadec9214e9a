"""``dealhunter-vectors search hybrid "TEXT"``: results equal the library's; usage errors exit 2."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import pytest

import dealhunter_vectors as dv
from dealhunter_vectors.cli import main
from dealhunter_vectors.models import DealChunk, RawChunk
from dealhunter_vectors.testing import seed_owners

TEXTS = [
    "Relaunch der Webseite mit TYPO3",
    "Angebot für den Betrieb im Rechenzentrum",
    "Migration von Drupal nach TYPO3, Angebote bis Mai",
    "Straßenbau und Verkehr",
    "Schulung der Redakteure",
]


def vec(i: int) -> np.ndarray[Any, Any]:
    v = np.zeros(3072, dtype=np.float32)
    v[:5] = [5 - i, i, 1, (i * 3) % 4, 2]
    return v


@pytest.fixture
async def data(dhv_pool: dv.Pool) -> dv.Pool:
    await seed_owners(dhv_pool, pre_qualification_ids=["pq-1"], qualification_ids=["q-1"])
    await dv.insert_deal_chunks(
        dhv_pool,
        [
            DealChunk(
                id=f"c{i}", qualification_id="q-1", agent_name="agent", chunk_type="text", content=t, embedding=vec(i)
            )
            for i, t in enumerate(TEXTS)
        ],
    )
    await dv.replace_raw_chunks(
        dhv_pool,
        "pq-1",
        [RawChunk(id=f"r{i}", chunk_index=i, content=t, token_count=5, embedding=vec(i)) for i, t in enumerate(TEXTS)],
    )
    return dhv_pool


async def run(url: str, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    def call() -> int:
        return main(["search", *args, "--database-url", url])

    code = await asyncio.to_thread(call)
    out = capsys.readouterr()
    return code, out.out, out.err


async def test_hybrid_cli_equals_the_library(
    data: dv.Pool, dhv_database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = await run(
        dhv_database_url, capsys, "hybrid", "TYPO3", "--like-chunk", "c1", "--qualification-id", "q-1", "--json"
    )
    assert code == 0, err
    want = await dv.hybrid_search_deal_embeddings(data, "TYPO3", vec(1), qualification_id="q-1")
    assert json.loads(out) == [h.model_dump(mode="json") for h in want]
    assert any(h["text_rank"] is not None for h in json.loads(out))

    code, out, _ = await run(dhv_database_url, capsys, "hybrid", "Angebote", "--qualification-id", "q-1", "--json")
    assert code == 0
    want = await dv.hybrid_search_deal_embeddings(data, "Angebote", None, qualification_id="q-1")
    assert [h["chunk_id"] for h in json.loads(out)] == [h.chunk_id for h in want]
    assert {h.chunk_id for h in want} == {"c1", "c2"}  # Angebote finds Angebot

    code, out, _ = await run(
        dhv_database_url, capsys, "hybrid", "Strassenbau", "--raw", "--pre-qualification-id", "pq-1", "--json"
    )
    assert code == 0 and [h["chunk_id"] for h in json.loads(out)] == ["r3"]

    code, out, _ = await run(
        dhv_database_url,
        capsys,
        "hybrid",
        "TYPO3",
        "--like-chunk",
        "c0",
        "--qualification-id",
        "q-1",
        "--limit",
        "3",
        "--mmr-lambda",
        "0.5",
        "--text-weight",
        "2",
    )
    assert code == 0
    assert "v#" in out and "t#" in out and "fused" in out and "hybrid: 3 hit(s)" in out


async def test_mmr_option_on_the_owner_scoped_sites(
    data: dv.Pool, dhv_database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = await run(
        dhv_database_url,
        capsys,
        "lead",
        "--like-chunk",
        "c0",
        "--qualification-id",
        "q-1",
        "--threshold",
        "0",
        "--mmr-lambda",
        "0.3",
        "--mmr-candidates",
        "5",
        "--json",
    )
    assert code == 0, err
    want = await dv.search_deal_embeddings(
        data, vec(0), qualification_id="q-1", threshold=0, mmr_lambda=0.3, mmr_candidates=5
    )
    assert [h["chunk_id"] for h in json.loads(out)] == [h.chunk_id for h in want]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("hybrid", "--qualification-id", "q-1"), "needs a search text"),
        (("lead", "TYPO3", "--like-chunk", "c0", "--qualification-id", "q-1"), "search hybrid"),
        (("lead", "--qualification-id", "q-1"), "needs --query-file or --like-chunk"),
        (("hybrid", "x" * 5000, "--qualification-id", "q-1"), "query_text"),
        (("hybrid", "TYPO3", "--raw"), "--pre-qualification-id"),
        (("hybrid", "TYPO3", "--qualification-id", "q-1", "--mmr-lambda", "2"), "--mmr-lambda"),  # the flag
        (("hybrid", "TYPO3", "--qualification-id", "q-1", "--text-weight", "0", "--vector-weight", "0"), "both 0"),
    ],
)
async def test_hybrid_usage_errors_exit_2(
    data: dv.Pool, dhv_database_url: str, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    code, _, err = await run(dhv_database_url, capsys, *args)
    assert code == 2
    assert message in err and "Traceback" not in err


async def test_schema_apply_text_search_config(
    dhv_pool: dv.Pool, dhv_database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    def call(*args: str) -> int:
        return main(["schema", "apply", *args, "--database-url", dhv_database_url])

    assert await asyncio.to_thread(call, "--text-search-config", "simple") == 0
    assert "text search configuration: simple" in capsys.readouterr().out
    assert await dv.text_search_config(dhv_pool) == "simple"
    assert await asyncio.to_thread(call) == 0  # kept
    assert "text search configuration: simple" in capsys.readouterr().out
    assert await asyncio.to_thread(call, "--text-search-config", "klingon") == 2  # a bad option value: usage
    err = capsys.readouterr().err
    assert "klingon" in err and "Traceback" not in err
