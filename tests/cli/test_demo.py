"""The demo end to end (small size): its printed results are the library's results."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import dealhunter_vectors as dv
from dealhunter_vectors.cli import main
from dealhunter_vectors.legacy import algorithms as legacy
from dealhunter_vectors.testing import with_database


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory, dhv_server_url: str) -> dict[str, Any]:
    data_dir = tmp_path_factory.mktemp("demo")
    return {"data_dir": data_dir, "server": dhv_server_url}


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any], str]:
    code = main(["demo", "--size", "small", "--json", "--repeat", "1", *args])
    out = capsys.readouterr()
    return code, json.loads(out.out), out.err


async def test_demo_prints_the_library_results(demo_run: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    code, result, printed = await asyncio.to_thread(
        _run, capsys, "--fresh", "--data-dir", str(demo_run["data_dir"]), "--database-url", demo_run["server"]
    )
    assert code == 0
    assert result["verified"] is True
    assert result["rows_migrated"] > 0 and result["rows_already_present"] == 0
    names = [c["name"] for c in result["call_sites"]]
    assert names == ["lead", "agent", "raw", "deep-scan", "search", "duplicates"]
    assert all(c["agree"] for c in result["call_sites"])
    assert all(c["ours"] for c in result["call_sites"]), "every call site should find something"

    url = with_database(demo_run["server"], result["database"])
    sqlite_path = Path(result["sqlite_path"])
    async with dv.open_pool(url, min_size=1, max_size=4) as pool:
        for cs in result["call_sites"]:
            q = np.asarray(cs["query_embedding"], dtype=np.float32)
            args = cs["arguments"]
            if cs["name"] in ("lead", "agent", "deep-scan"):
                hits = await dv.search_deal_embeddings(pool, q, **args)
                got = [(h.chunk_id, h.similarity) for h in hits]
            elif cs["name"] == "raw":
                got = [(h.chunk_id, h.similarity) for h in await dv.search_raw_chunks(pool, q, **args)]
            elif cs["name"] == "search":
                got = [(h.id, h.similarity) for h in await dv.search_similar(pool, q, **args)]
            else:
                matches = await dv.find_similar_pre_qualifications(pool, q, **args)
                got = [(m.pre_qualification_id, m.similarity) for m in matches]
            printed_hits = [(h["id"], h["similarity"]) for h in cs["ours"]]
            assert [i for i, _ in got] == [i for i, _ in printed_hits], cs["name"]
            assert np.allclose([s for _, s in got], [s for _, s in printed_hits], atol=1e-9), cs["name"]
            # every id the demo printed is in the human-readable tables too (first 8 characters)
            for hit_id, _ in printed_hits:
                assert hit_id[:8] in printed, (cs["name"], hit_id)

    # independent check of one call site against the old algorithm on the SQLite file
    lead = result["call_sites"][0]
    rows = legacy.load_legacy_rows(
        sqlite_path, "deal_embeddings", "qualification_id", lead["arguments"]["qualification_id"]
    )
    old = legacy.query_rag_for_lead(rows, lead["query_embedding"], agent_name_filter=lead["arguments"]["agent_names"])
    assert [r["chunkId"] for r in old] == [h["id"] for h in lead["ours"]]
    assert "timings (median)" in printed and "all call sites agree" in printed


async def test_demo_rerun_reuses_data(demo_run: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    code, result, printed = await asyncio.to_thread(
        _run, capsys, "--data-dir", str(demo_run["data_dir"]), "--database-url", demo_run["server"]
    )
    assert code == 0
    assert "reusing" in printed
    assert result["rows_migrated"] == 0 and result["rows_already_present"] > 0
    assert result["verified"] is True


def test_demo_help_explains_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["demo", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--size", "--data-dir", "--fresh", "--seed", "--repeat", "--json", "--quiet", "--database-url"):
        assert option in text
