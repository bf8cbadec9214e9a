"""The FastAPI example: every endpoint against a real server, 422 for bad input."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import pytest_asyncio

import dealhunter_vectors as dv
from dealhunter_vectors.legacy.synthetic import query_with_cosine
from dealhunter_vectors.models import DealChunk, RawChunk
from dealhunter_vectors.testing import seed_owners

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "fastapi_app.py"
rng = np.random.default_rng(11)


def _load_example() -> Any:
    spec = importlib.util.spec_from_file_location("fastapi_app_example", EXAMPLE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def unit() -> np.ndarray[Any, Any]:
    return query_with_cosine(rng.standard_normal(3072), 1.0, rng)


def near(v: np.ndarray[Any, Any], cos: float) -> np.ndarray[Any, Any]:
    return query_with_cosine(v, cos, rng)


def cos64(a: Any, b: Any) -> float:
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(a64 @ b64 / (np.linalg.norm(a64) * np.linalg.norm(b64)))


@pytest_asyncio.fixture(scope="module")
async def client_and_data(dhv_database_factory: Any) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, Any]]]:
    url = await dhv_database_factory()
    q = unit()
    data: dict[str, Any] = {"q": q, "url": url}
    async with dv.open_pool(url, min_size=1, max_size=2) as pool:
        await seed_owners(pool, pre_qualification_ids=["pq-1", "pq-2"], qualification_ids=["q-1"])
        chunks = [
            DealChunk(
                id=f"lead-{i}",
                qualification_id="q-1",
                agent_name=f"agent-{i % 2}",
                chunk_type="text",
                content=f"lead chunk {i}",
                embedding=near(q, 0.9 - 0.1 * i),
                metadata={"cms": "Drupal"},
            )
            for i in range(6)
        ] + [
            DealChunk(
                id=f"agent-{i}",
                pre_qualification_id="pq-1",
                agent_name="tech-agent",
                chunk_type="text",
                content=f"agent chunk {i}",
                embedding=near(q, 0.95 - 0.05 * i),
                metadata={"cms": "TYPO3" if i else "Drupal 10"},
            )
            for i in range(4)
        ]
        await dv.insert_deal_chunks(pool, chunks)
        await dv.replace_raw_chunks(
            pool,
            "pq-1",
            [
                RawChunk(chunk_index=i, content=f"raw {i}", token_count=10, embedding=near(q, 0.6 - 0.15 * i))
                for i in range(5)
            ],
        )
        await dv.set_description_embedding(pool, "pq-1", q)
        await dv.set_description_embedding(pool, "pq-2", near(q, 0.8))
        data["stored"] = {c.id: c.embedding for c in chunks}
    module = _load_example()
    app = module.create_app(url, min_size=1, max_size=4)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://example") as client:
            yield client, data


async def test_lead_search(client_and_data: tuple[httpx.AsyncClient, dict[str, Any]]) -> None:
    client, data = client_and_data
    r = await client.post("/qualifications/q-1/lead-search", json={"embedding": data["q"].tolist()})
    assert r.status_code == 200, r.text
    body = r.json()
    hits = body["hits"]
    expected = sorted(
        (cid for cid in data["stored"] if cid.startswith("lead-") and cos64(data["stored"][cid], data["q"]) > 0.3),
        key=lambda cid: -cos64(data["stored"][cid], data["q"]),
    )[:5]
    assert [h["chunk_id"] for h in hits] == expected
    for h in hits:
        assert abs(h["similarity"] - cos64(data["stored"][h["chunk_id"]], data["q"])) < 1e-5
        assert h["sources"][0]["chunk_id"] == h["chunk_id"]
    assert 0 <= body["section_confidence"] <= 100
    # agent filter with the old fallback: a name that matches nothing -> the unfiltered results
    r2 = await client.post(
        "/qualifications/q-1/lead-search", json={"embedding": data["q"].tolist(), "agent_names": ["nobody"]}
    )
    assert [h["chunk_id"] for h in r2.json()["hits"]] == expected


async def test_every_other_endpoint(client_and_data: tuple[httpx.AsyncClient, dict[str, Any]]) -> None:
    client, data = client_and_data
    q = data["q"].tolist()
    r = await client.post("/pre-qualifications/pq-1/agent-search", json={"embedding": q, "tech_stack": "drupal"})
    assert r.status_code == 200 and [h["chunk_id"] for h in r.json()] == ["agent-0"]
    r = await client.post("/pre-qualifications/pq-1/raw-search", json={"embedding": q})
    assert r.status_code == 200
    raw = r.json()
    assert [h["chunk_index"] for h in raw] == [0, 1, 2]  # > 0.2 only: cosines 0.6, 0.45, 0.3 (not 0.15, 0)
    assert raw[0]["metadata"] == {"startPosition": 0, "endPosition": 0, "type": "unknown"}
    r = await client.post("/qualifications/q-1/expert-search", json={"embedding": q, "agent_name_contains": "AGENT-1"})
    assert r.status_code == 200 and {h["agent_name"] for h in r.json()} == {"agent-1"}
    r = await client.post(
        "/search", json={"embedding": q, "qualification_id": "q-1", "pre_qualification_id": "pq-1", "threshold": 0.5}
    )
    assert r.status_code == 200
    sims = [h["similarity"] for h in r.json()]
    assert sims == sorted(sims, reverse=True) and min(sims) >= 0.5
    assert {h["source"] for h in r.json()} == {"lead", "agent", "raw"}
    r = await client.post("/pre-qualifications/duplicates", json={"embedding": q, "exclude_id": "pq-1"})
    assert r.status_code == 200
    assert [(m["pre_qualification_id"], m["similarity_percent"]) for m in r.json()] == [("pq-2", 90)]
    r = await client.get("/qualifications/q-1/chunks")
    assert r.status_code == 200
    assert sorted(h["chunk_id"] for h in r.json()) == [f"lead-{i}" for i in range(6)]
    assert all(h["similarity"] is None for h in r.json())


async def test_replace_and_delete_a_section(client_and_data: tuple[httpx.AsyncClient, dict[str, Any]]) -> None:
    """The write endpoints, checked with plain SQL (pq-2 holds no chunk the searches above read)."""
    client, data = client_and_data
    path = "/pre-qualifications/pq-2/sections/budget/chunks"

    def body(n: int) -> dict[str, Any]:
        return {"chunks": [{"content": f"c{i}", "embedding": unit().tolist(), "metadata": {"n": i}} for i in range(n)]}

    async def stored(conn: Any) -> list[Any]:
        return [
            (r["id"], r["chunk_type"], json.loads(r["metadata"]))
            for r in await conn.fetch(
                "SELECT id, chunk_type, metadata FROM deal_embeddings WHERE pre_qualification_id = 'pq-2' ORDER BY id"
            )
        ]

    async with dv.open_pool(data["url"], min_size=1, max_size=1) as pool:
        await seed_owners(pool, qualification_ids=["q-del"])
        first = await client.put(path, json=body(3))
        assert first.status_code == 200, first.text
        other = await client.put("/pre-qualifications/pq-2/sections/risks/chunks", json=body(2))
        second = await client.put(path, json=body(2))
        assert second.json()["deleted_ids"] == sorted(first.json()["inserted_ids"])
        rows = await stored(pool)
        budget = sorted(i for i, t, m in rows if t == "visualization" and m.get("sectionId") == "budget")
        assert budget == sorted(second.json()["inserted_ids"]) and len(rows) == 4
        assert all(m["n"] in (0, 1, 2) for _, _, m in rows)
        r = await client.request("DELETE", path)
        assert r.status_code == 200 and r.json() == {"deleted": 2}
        assert sorted(i for i, _, _ in await stored(pool)) == sorted(other.json()["inserted_ids"])
        r = await client.request("DELETE", "/pre-qualifications/pq-2/sections/risks/chunks")
        assert r.json() == {"deleted": 2} and await stored(pool) == []
        await dv.insert_deal_chunks(
            pool, [dv.DealChunk(qualification_id="q-del", agent_name="a", chunk_type="t", content="x")]
        )
        r = await client.request("DELETE", "/qualifications/q-del/chunks")
        assert r.json() == {"deleted": 1}
    r = await client.put("/pre-qualifications/no-such-pq/sections/budget/chunks", json=body(1))
    assert r.status_code == 404 and r.json()["detail"][0]["type"] == "not_found"
    r = await client.put(path, json={"chunks": [{"content": "x", "embedding": [0.0] * 3072}]})
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "invalid_embedding.zero_norm"
    r = await client.request("DELETE", "/pre-qualifications/pq-2/sections/a%00b/chunks")
    assert r.status_code == 422 and "NUL" in r.json()["detail"][0]["msg"]


@pytest.mark.parametrize(
    ("embedding", "expected"),
    [
        ([0.1] * 10, "invalid_embedding.dimensions"),
        ([0.0] * 3072, "invalid_embedding.zero_norm"),
        ([1e-25] * 3072, "invalid_embedding.norm_range"),
        ([1e6] + [0.1] * 3071, "invalid_embedding.half_precision_range"),
        (["x"] * 3072, "float_parsing"),  # pydantic's own validation
        ("not a list", "list_type"),
    ],
)
async def test_bad_embeddings_are_422(
    client_and_data: tuple[httpx.AsyncClient, dict[str, Any]], embedding: Any, expected: str
) -> None:
    client, _ = client_and_data
    r = await client.post("/qualifications/q-1/lead-search", json={"embedding": embedding})
    assert r.status_code == 422
    assert expected in r.json()["detail"][0]["type"]


async def test_bad_arguments_are_422(client_and_data: tuple[httpx.AsyncClient, dict[str, Any]]) -> None:
    client, data = client_and_data
    r = await client.post("/search", json={"embedding": data["q"].tolist(), "threshold": 0.5})
    assert r.status_code == 422  # neither owner given: the library's ValueError
    r = await client.post("/search", json={"embedding": data["q"].tolist(), "qualification_id": "q-1", "limit": 51})
    assert r.status_code == 422


async def test_hybrid_search(client_and_data: tuple[httpx.AsyncClient, dict[str, Any]]) -> None:
    client, data = client_and_data
    q = data["q"].tolist()
    r = await client.post("/qualifications/q-1/hybrid-search", json={"text": "lead chunk", "embedding": q})
    assert r.status_code == 200, r.text
    hits = r.json()
    # every lead chunk matches the text equally (text ranks by id) and the cosines fall with i
    assert [h["chunk_id"] for h in hits] == [f"lead-{i}" for i in range(5)]
    assert [(h["vector_rank"], h["text_rank"]) for h in hits] == [(i, i) for i in range(1, 6)]
    assert all(h["fused_score"] == pytest.approx(2 / (60 + h["vector_rank"])) for h in hits)
    r = await client.post("/qualifications/q-1/hybrid-search", json={"text": "Chunks", "limit": 2})
    assert r.status_code == 200 and [h["similarity"] for h in r.json()] == [None, None]
    r = await client.post("/qualifications/q-1/hybrid-search", json={"embedding": q, "mmr_lambda": 0.5})
    assert r.status_code == 200 and r.json()[0]["chunk_id"] == "lead-0"
    for body in ({"limit": 3}, {"text": "x" * 5000}, {"text": "lead", "mmr_lambda": 2}):
        r = await client.post("/qualifications/q-1/hybrid-search", json=body)
        assert r.status_code == 422, body


async def test_a_statement_timeout_is_503_with_retry_after(dhv_database_factory: Any) -> None:
    """Issue 10: a retryable fault is a 503 the client can act on, not a 500 with a traceback."""
    import asyncpg

    url = await dhv_database_factory()
    async with dv.open_pool(url, min_size=1, max_size=1) as pool:
        await seed_owners(pool, qualification_ids=["q-t"])
    app = _load_example().create_app(url, min_size=1, max_size=2, command_timeout=0.5)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://example") as client:
            admin = await asyncpg.connect(url)
            try:
                async with admin.transaction():
                    await admin.execute('LOCK TABLE "deal_embeddings" IN ACCESS EXCLUSIVE MODE')
                    r = await client.post("/qualifications/q-t/lead-search", json={"embedding": unit().tolist()})
            finally:
                await admin.close()
            assert r.status_code == 503 and r.headers["retry-after"] == "1"
            assert r.json()["detail"][0]["type"] == "query_timeout" and "0.5 s" in r.json()["detail"][0]["msg"]
            r = await client.post("/qualifications/q-t/lead-search", json={"embedding": unit().tolist()})
            assert r.status_code == 200 and r.json()["hits"] == []


@pytest.mark.parametrize(
    ("field", "token", "expected_type", "expected_loc"),
    [
        ("embedding", "NaN", "invalid_embedding.finite", ["body", "embedding"]),
        ("embedding", "Infinity", "invalid_embedding.finite", ["body", "embedding"]),
        ("threshold", "NaN", "finite_number", ["body", "threshold"]),
        ("threshold", "-Infinity", "finite_number", ["body", "threshold"]),
    ],
)
async def test_non_finite_numbers_in_a_json_body_are_validation_errors(
    client_and_data: tuple[httpx.AsyncClient, dict[str, Any]],
    field: str,
    token: str,
    expected_type: str,
    expected_loc: list[str],
) -> None:
    """Python's JSON parser accepts NaN/Infinity; the answer is the 422 validation error that
    names the field, not "Out of range float values are not JSON compliant"."""
    client, data = client_and_data
    numbers = [repr(float(x)) for x in data["q"]]
    if field == "embedding":
        numbers[7] = token
        body = f'{{"embedding": [{", ".join(numbers)}], "qualification_id": "q-1", "threshold": 0.5}}'
    else:
        body = f'{{"embedding": [{", ".join(numbers)}], "qualification_id": "q-1", "threshold": {token}}}'
    r = await client.post("/search", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    detail = r.json()["detail"][0]
    assert "JSON compliant" not in detail["msg"] and "np." not in detail["msg"]
    assert detail["type"] == expected_type, detail
    assert detail["loc"] == expected_loc
