"""OpenTelemetry (issue 21): spans and metrics of every call site, read back from the SDK's in-memory exporters.

Each call runs under a parent span of the test's own; the tests check the span tree (the
operation a child of the caller's span, migration steps children of their operation), the
database semantic conventions, and the retrieval attributes against independent
computations (plain SQL counts, the hits themselves). No attribute of any span or metric
point may hold a password, a vector or (unless asked for) the query text.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import numpy as np
import pytest
import pytest_asyncio

pytest.importorskip("opentelemetry.sdk", reason="the [otel] extra is not installed")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import dealhunter_vectors as dv
from dealhunter_vectors import observe, writes
from dealhunter_vectors.config import with_database
from dealhunter_vectors.db.migrations import migrations
from dealhunter_vectors.db.replicas import connect_replicated
from dealhunter_vectors.integrations import otel
from dealhunter_vectors.testing import seed_owners

SECRET = "s3cr3t-pw-do-not-leak"
QUAL = "q-otel"
PREQ = "pq-otel"
N_DEAL = 40
N_RAW = 25
DIM = 3072


class Telemetry:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.metrics = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.metrics])
        self.tracer = self.tracer_provider.get_tracer("test")

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.finished() if s.name == name]

    def points(self, metric: str) -> list[Any]:
        data = self.metrics.get_metrics_data()
        out: list[Any] = []
        for rm in data.resource_metrics if data else []:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name == metric:
                        out.extend(m.data.data_points)
        return out


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    t = Telemetry()
    otel.instrument(tracer_provider=t.tracer_provider, meter_provider=t.meter_provider)
    try:
        yield t
    finally:
        otel.uninstrument()
        assert not observe.SUBSCRIBERS


def _vectors(n: int, seed: int) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, DIM)).astype(np.float32)


DEAL_VECS = _vectors(N_DEAL, 1)
RAW_VECS = _vectors(N_RAW, 2)


@pytest_asyncio.fixture(scope="module")
async def db_url(dhv_database_factory: Any) -> str:
    url = await dhv_database_factory()
    assert url.startswith("postgresql://postgres:@"), url
    url = url.replace("postgresql://postgres:@", f"postgresql://postgres:{SECRET}@", 1)
    async with dv.open_pool(url, min_size=1, max_size=2) as pool:
        await seed_owners(pool, qualification_ids=[QUAL], pre_qualification_ids=[PREQ])
        await pool.execute("UPDATE pre_qualifications SET description_embedding = $1 WHERE id = $2", DEAL_VECS[0], PREQ)
        await dv.insert_deal_chunks(
            pool,
            [
                dv.DealChunk(
                    id=f"d{i:02d}",
                    qualification_id=QUAL,
                    agent_name="lead" if i % 2 else "agent",
                    chunk_type="text",
                    chunk_index=i,
                    content=f"Angebot Nummer {i}",
                    embedding=DEAL_VECS[i],
                )
                for i in range(N_DEAL)
            ],
        )
        await dv.replace_raw_chunks(
            pool,
            PREQ,
            [
                dv.RawChunk(id=f"r{i:02d}", chunk_index=i, content=f"roh {i}", token_count=3, embedding=RAW_VECS[i])
                for i in range(N_RAW)
            ],
        )
    return url


@pytest_asyncio.fixture
async def pool(db_url: str) -> AsyncIterator[dv.Pool]:
    async with dv.open_pool(db_url, min_size=1, max_size=2) as p:
        yield p


def _all_attribute_values(t: Telemetry) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for s in t.finished():
        out.append(("span.name", s.name))
        out.extend((s.attributes or {}).items())
        for e in s.events:
            out.extend((e.attributes or {}).items())
    data = t.metrics.get_metrics_data()
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                for p in m.data.data_points:
                    out.extend((p.attributes or {}).items())
    return out


def _assert_clean(t: Telemetry, *, forbidden_text: str | None = None) -> None:
    """No password, no vector, no query text in any span, event or metric attribute."""
    for key, value in _all_attribute_values(t):
        assert SECRET not in str(value), (key, value)
        assert "***" not in str(value), (key, value)  # not even a masked URL
        assert value != "postgres" or key == "db.system.name" or key == "db.namespace", (key, value)
        assert isinstance(value, (str, bool, int, float)), (key, value)  # never a sequence: no vector
        if forbidden_text is not None:
            assert forbidden_text not in str(value), (key, value)


def _owned_rows(table: str, column: str, owner: str) -> str:
    return f'SELECT count(*) FROM "{table}" WHERE "{column}" = $1 AND embedding IS NOT NULL'


async def test_search_span_is_a_child_of_the_callers_span_with_db_conventions(
    telemetry: Telemetry, pool: dv.Pool, db_url: str
) -> None:
    with telemetry.tracer.start_as_current_span("request") as parent:
        hits = await dv.search_deal_embeddings(pool, DEAL_VECS[3], qualification_id=QUAL, threshold=-1.0, limit=7)
    (span,) = telemetry.named("search_deal_embeddings")
    assert span.parent is not None and span.parent.span_id == parent.get_span_context().span_id
    assert span.context.trace_id == parent.get_span_context().trace_id
    assert span.kind is SpanKind.CLIENT
    attrs = dict(span.attributes or {})
    assert attrs["db.system.name"] == "postgresql"
    assert attrs["db.operation.name"] == "search_deal_embeddings"
    parts = urlsplit(db_url)
    expected_host = parts.hostname or parse_qs(parts.query)["host"][0]
    assert attrs["server.address"] == expected_host
    if parts.port or "port" in parse_qs(parts.query):
        assert attrs["server.port"] == (parts.port or int(parse_qs(parts.query)["port"][0]))
    assert attrs["db.namespace"] == parts.path.lstrip("/")
    assert attrs["dealhunter.limit"] == 7 and attrs["dealhunter.threshold"] == -1.0
    assert attrs["dealhunter.result_count"] == len(hits) == 7
    scored = await pool.fetchval(_owned_rows("deal_embeddings", "qualification_id", QUAL), QUAL)
    assert attrs["dealhunter.rows_scored"] == scored == N_DEAL
    assert len(hits) <= attrs["dealhunter.rows_reranked"] <= scored
    assert attrs["dealhunter.layout"] == "single node"
    assert "dealhunter.fallback" not in attrs and "dealhunter.retries" not in attrs
    _assert_clean(telemetry)


async def test_rows_reranked_is_the_exact_work(telemetry: Telemetry, pool: dv.Pool) -> None:
    """Every row can be in a top 40 of 40 rows: all re-ranked exactly; a top 1 above 0.5 prunes."""
    every = await dv.search_deal_embeddings(pool, DEAL_VECS[5], qualification_id=QUAL, threshold=-1.0, limit=N_DEAL)
    near = await dv.search_deal_embeddings(pool, DEAL_VECS[5], qualification_id=QUAL, threshold=0.5, limit=1)
    full, pruned = telemetry.named("search_deal_embeddings")
    assert len(every) == N_DEAL and full.attributes["dealhunter.rows_reranked"] == N_DEAL  # type: ignore[index]
    assert [h.chunk_id for h in near] == ["d05"]
    # random 3072-d vectors (cosine ~ 0 +- 0.02): no other row is within the bound of 0.5
    assert pruned.attributes["dealhunter.rows_reranked"] == 1  # type: ignore[index]


async def test_fallback_attribute_names_the_fallback_that_answered(telemetry: Telemetry, pool: dv.Pool) -> None:
    row = DEAL_VECS[8]  # the query is row d08 (agent "agent"): above 0.5 only d08 itself
    far = _vectors(1, 99)[0]  # nothing above 0.5
    plain = await dv.search_deal_embeddings(pool, row, qualification_id=QUAL, threshold=0.5, limit=3)
    by_filter = await dv.search_deal_embeddings(
        pool, row, qualification_id=QUAL, threshold=0.5, limit=3, agent_names=["nobody"], filter_fallback=True
    )
    by_top_k = await dv.search_deal_embeddings(
        pool, far, qualification_id=QUAL, threshold=0.5, limit=3, fallback_to_top_k=True
    )
    both = await dv.search_deal_embeddings(
        pool, far, qualification_id=QUAL, threshold=0.5, limit=3, agent_names=["nobody"],
        filter_fallback=True, fallback_to_top_k=True,
    )  # fmt: skip
    spans = telemetry.named("search_deal_embeddings")
    got = [dict(s.attributes or {}).get("dealhunter.fallback") for s in spans]
    assert got == [None, "filter", "top_k", "top_k+filter"]
    # independently: the hits themselves show which rule answered
    assert [h.chunk_id for h in plain] == ["d08"]
    assert [(h.chunk_id, h.agent_name) for h in by_filter] == [("d08", "agent")]  # not "nobody": the filter fell back
    sims = (DEAL_VECS @ far) / (np.linalg.norm(DEAL_VECS, axis=1) * np.linalg.norm(far))
    best3 = [f"d{i:02d}" for i in np.argsort(-sims)[:3]]
    assert [h.chunk_id for h in by_top_k] == best3 and all((h.similarity or 0) <= 0.5 for h in by_top_k)
    assert [h.chunk_id for h in both] == best3
    points = telemetry.points("dealhunter.search.fallbacks")
    assert sorted(p.attributes["dealhunter.fallback"] for p in points) == ["filter", "top_k", "top_k+filter"]


async def test_raw_search_global_search_and_search_many(telemetry: Telemetry, pool: dv.Pool) -> None:
    await dv.search_raw_chunks(pool, RAW_VECS[2], pre_qualification_id=PREQ, threshold=-1.0, limit=4)
    await dv.find_similar_pre_qualifications(pool, DEAL_VECS[0], limit=3, min_similarity_percent=0)
    await dv.find_similar_pre_qualifications(pool, DEAL_VECS[0], min_similarity_percent=0)
    await dv.search_many(
        pool,
        [
            dv.DealChunkSearch(query_embedding=DEAL_VECS[1], qualification_id=QUAL, threshold=-1.0, limit=2),
            dv.RawChunkSearch(query_embedding=RAW_VECS[1], pre_qualification_id=PREQ, threshold=-1.0, limit=2),
        ],
    )
    (raw,) = telemetry.named("search_raw_chunks")
    assert raw.attributes["dealhunter.rows_scored"] == N_RAW  # type: ignore[index]
    assert raw.attributes["dealhunter.result_count"] == 4  # type: ignore[index]
    ann, exact = telemetry.named("find_similar_pre_qualifications")
    total = await pool.fetchval(
        "SELECT count(*) FROM pre_qualifications WHERE description_embedding IS NOT NULL"
        " AND extracted_requirements IS NOT NULL"
    )
    assert ann.attributes["dealhunter.ann.candidates"] == total  # type: ignore[index] # the scan saw every row
    assert "dealhunter.exact_scan" not in (ann.attributes or {})
    assert exact.attributes["dealhunter.exact_scan"] is True  # type: ignore[index]
    (many,) = telemetry.named("search_many")
    # one deal and one raw search: the scored rows add up
    assert many.attributes["dealhunter.rows_scored"] == N_DEAL + N_RAW  # type: ignore[index]
    assert many.attributes["dealhunter.result_count"] == 2  # type: ignore[index]
    _assert_clean(telemetry)


async def test_query_text_only_when_the_caller_opts_in(pool: dv.Pool) -> None:
    text = "Angebot Nummer 12"
    for opt_in in (False, True):
        t = Telemetry()
        otel.instrument(tracer_provider=t.tracer_provider, meter_provider=t.meter_provider, record_query_text=opt_in)
        try:
            await dv.hybrid_search_deal_embeddings(pool, text, DEAL_VECS[12], qualification_id=QUAL, limit=3)
        finally:
            otel.uninstrument()
        (span,) = t.named("hybrid_search_deal_embeddings")
        assert span.attributes["dealhunter.limit"] == 3  # type: ignore[index]
        if opt_in:
            assert span.attributes["dealhunter.query_text"] == text  # type: ignore[index]
        else:
            _assert_clean(t, forbidden_text=text)


async def test_every_other_call_site_is_one_span_under_the_callers(telemetry: Telemetry, pool: dv.Pool) -> None:
    await seed_owners(pool, pre_qualification_ids=["pq-otel-2"])
    calls = {
        "search_similar": dv.search_similar(
            pool, DEAL_VECS[1], qualification_id=QUAL, pre_qualification_id=PREQ, threshold=-1.0
        ),
        "list_deal_chunks": dv.list_deal_chunks(pool, qualification_id=QUAL, limit=3),
        "hybrid_search_raw_chunks": dv.hybrid_search_raw_chunks(pool, "roh", RAW_VECS[1], pre_qualification_id=PREQ),
        "replace_raw_chunks": dv.replace_raw_chunks(
            pool, "pq-otel-2", [dv.RawChunk(chunk_index=0, content="x", token_count=1, embedding=RAW_VECS[3])]
        ),
        "set_description_embedding": dv.set_description_embedding(pool, "pq-otel-2", DEAL_VECS[2]),
        "schema_status": dv.schema_status(pool),
    }
    with telemetry.tracer.start_as_current_span("request") as parent:
        results = {name: await call for name, call in calls.items()}
    for name, result in results.items():
        (span,) = telemetry.named(name)
        assert span.parent is not None and span.parent.span_id == parent.get_span_context().span_id, name
        attrs = dict(span.attributes or {})
        assert attrs["db.operation.name"] == name and attrs["db.system.name"] == "postgresql", name
        assert "server.address" in attrs and "db.namespace" in attrs, name
        if isinstance(result, list):
            assert attrs["dealhunter.result_count"] == len(result), name
    similar = dict(telemetry.named("search_similar")[0].attributes or {})
    # lead + agent + raw sub-searches: the qualification's deal rows, the pre-qualification's (none), its raw rows
    assert similar["dealhunter.rows_scored"] == N_DEAL + 0 + N_RAW
    _assert_clean(telemetry)


def _public_operations(module: Any) -> set[str]:
    """The public coroutines of *module* wrapped by ``db.faults.operation`` (functools.wraps)."""
    return {n for n in module.__all__ if hasattr(getattr(module, n), "__wrapped__")}


async def test_every_write_and_read_back_is_one_span_under_the_callers(telemetry: Telemetry, pool: dv.Pool) -> None:
    """Every public function of ``dealhunter_vectors.writes`` (issue 20): one span named after it,
    a child of the caller's span, its result count what plain SQL or the result says; no
    content, vector or password in any attribute (``get_*`` return the vectors)."""
    q, pq = "q-otel-w", "pq-otel-w"
    await seed_owners(pool, qualification_ids=[q], pre_qualification_ids=[pq])

    def deal(i: int, **kw: Any) -> dv.DealChunk:
        return dv.DealChunk(
            id=f"w{i}", qualification_id=q, agent_name="w", chunk_type="t", content=f"inhalt {i}",
            metadata={"s": "a"}, embedding=DEAL_VECS[i], **kw,
        )  # fmt: skip

    def raw(i: int, text: str = "inhalt") -> dv.RawChunk:
        return dv.RawChunk(id=f"ra{i}", chunk_index=i, content=f"{text} {i}", token_count=2, embedding=RAW_VECS[i])

    async def owned(table: str, column: str, owner: str) -> int:
        return int(await pool.fetchval(f'SELECT count(*) FROM "{table}" WHERE "{column}" = $1', owner))

    expected: dict[str, int | None] = {}
    results: dict[str, Any] = {}
    with telemetry.tracer.start_as_current_span("request") as parent:
        results["insert_deal_chunks"] = await dv.insert_deal_chunks(pool, [deal(i) for i in range(3)])
        expected["insert_deal_chunks"] = await owned("deal_embeddings", "qualification_id", q)  # 3
        results["replace_deal_chunks"] = await dv.replace_deal_chunks(
            pool, [deal(3), deal(4)], qualification_id=q, metadata_match={"s": "a"}
        )
        expected["replace_deal_chunks"] = await owned("deal_embeddings", "qualification_id", q)  # the 2 inserted
        results["upsert_deal_chunks"] = await dv.upsert_deal_chunks(pool, [deal(4, confidence=9), deal(5)])
        expected["upsert_deal_chunks"] = 2  # both written: one updated, one inserted
        results["get_deal_chunks"] = await dv.get_deal_chunks(pool, ["w3", "w5", "missing"])
        expected["get_deal_chunks"] = 2
        results["page_deal_chunks"] = await dv.page_deal_chunks(pool, qualification_id=q, limit=2)
        expected["page_deal_chunks"] = 2
        results["stale_chunks"] = await dv.stale_chunks(pool, model="another-model", qualification_id=q, limit=10)
        expected["stale_chunks"] = await owned("deal_embeddings", "qualification_id", q)  # all: another model
        updates = [dv.EmbeddingUpdate(id=i, embedding=DEAL_VECS[7]) for i in ("w3", "missing")]
        results["update_embeddings"] = await dv.update_embeddings(pool, updates, model="another-model")
        expected["update_embeddings"] = int(
            await pool.fetchval('SELECT count(*) FROM "deal_embeddings" WHERE "embedding_model" = $1', "another-model")
        )
        results["delete_deal_chunks"] = await dv.delete_deal_chunks(pool, qualification_id=q, ids=["w3", "missing"])
        expected["delete_deal_chunks"] = 3 - await owned("deal_embeddings", "qualification_id", q)
        results["replace_raw_chunks"] = await dv.replace_raw_chunks(pool, pq, [raw(0), raw(1)])
        expected["replace_raw_chunks"] = await owned("raw_chunks", "pre_qualification_id", pq)
        results["upsert_raw_chunks"] = await dv.upsert_raw_chunks(pool, pq, [raw(1, "neu"), raw(2)])
        expected["upsert_raw_chunks"] = 2
        results["get_raw_chunks"] = await dv.get_raw_chunks(pool, ["ra0", "ra2", "missing"])
        expected["get_raw_chunks"] = 2
        results["page_raw_chunks"] = await dv.page_raw_chunks(pool, pq, limit=10)
        expected["page_raw_chunks"] = await owned("raw_chunks", "pre_qualification_id", pq)
        before = await owned("raw_chunks", "pre_qualification_id", pq)
        results["delete_raw_chunks"] = await dv.delete_raw_chunks(pool, pre_qualification_id=pq)
        expected["delete_raw_chunks"] = before - await owned("raw_chunks", "pre_qualification_id", pq)
        results["set_description_embedding"] = await dv.set_description_embedding(pool, pq, DEAL_VECS[9])
        expected["set_description_embedding"] = None
        await pool.execute(  # as another writer leaves a row: no split text
            'UPDATE "deal_embeddings" SET "content_parts" = NULL, "content_parts_hash" = NULL WHERE "id" = ANY($1)',
            ["w4", "w5"],
        )
        results["backfill_content_parts"] = await dv.backfill_content_parts(pool)
        expected["backfill_content_parts"] = 2 - int(
            await pool.fetchval(
                'SELECT count(*) FROM "deal_embeddings" WHERE "id" = ANY($1) AND "content_parts_hash" IS NULL',
                ["w4", "w5"],
            )
        )  # the rows it filled
        rows_left = await owned("deal_embeddings", "qualification_id", q)
        paged = [c.id async for c in dv.iter_deal_chunks(pool, qualification_id=q, page_size=1)]
    assert set(expected) == _public_operations(writes)  # a new public write needs a line here
    assert expected["replace_deal_chunks"] == 2 and expected["delete_deal_chunks"] == 1
    assert expected["update_embeddings"] == 1 and expected["delete_raw_chunks"] == 3
    for name, count in expected.items():
        spans = telemetry.named(name)
        assert len(spans) == (1 if name != "page_deal_chunks" else 1 + rows_left + 1), name
        span = spans[0]
        assert span.kind is SpanKind.CLIENT and span.status.status_code is not StatusCode.ERROR, name
        assert span.parent is not None and span.parent.span_id == parent.get_span_context().span_id, name
        attrs = dict(span.attributes or {})
        assert attrs["db.operation.name"] == name and attrs["db.system.name"] == "postgresql", name
        assert "server.address" in attrs and "db.namespace" in attrs, name
        assert attrs.get("dealhunter.result_count") == count, (name, attrs)
    # iter_deal_chunks: one page_deal_chunks span per page (page_size 1: one per row, then an empty one)
    assert len(paged) == rows_left == 2
    assert all(s.parent is not None and s.parent.span_id == parent.get_span_context().span_id
               for s in telemetry.named("page_deal_chunks"))  # fmt: skip
    assert telemetry.named("page_deal_chunks")[0].attributes["dealhunter.limit"] == 2  # type: ignore[index]
    assert telemetry.named("stale_chunks")[0].attributes["dealhunter.limit"] == 10  # type: ignore[index]
    assert results["get_deal_chunks"][0].embedding is not None  # the vectors were read, and not recorded:
    _assert_clean(telemetry, forbidden_text="inhalt")


async def test_writes_and_errors(telemetry: Telemetry, pool: dv.Pool) -> None:
    ids = await dv.insert_deal_chunks(
        pool,
        [
            dv.DealChunk(qualification_id=QUAL, agent_name="w", chunk_type="t", content="x", embedding=DEAL_VECS[k])
            for k in range(3)
        ],
    )
    with pytest.raises(dv.InvalidEmbeddingError):
        await dv.search_deal_embeddings(pool, DEAL_VECS[0][:6], qualification_id=QUAL)
    (write,) = telemetry.named("insert_deal_chunks")
    assert write.attributes["dealhunter.result_count"] == len(ids) == 3  # type: ignore[index]
    (failed,) = telemetry.named("search_deal_embeddings")
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes["error.type"] == "InvalidEmbeddingError"  # type: ignore[index]
    durations = telemetry.points("db.client.operation.duration")
    by_op = {(p.attributes["db.operation.name"], p.attributes.get("error.type")): p.count for p in durations}
    assert by_op[("insert_deal_chunks", None)] == 1
    assert by_op[("search_deal_embeddings", "InvalidEmbeddingError")] == 1
    await pool.execute("DELETE FROM deal_embeddings WHERE id = ANY($1::text[])", ids)
    _assert_clean(telemetry)


async def test_a_retry_after_a_lost_connection_is_counted(telemetry: Telemetry, db_url: str) -> None:
    async with dv.open_pool(db_url, min_size=1, max_size=3) as pool:
        admin = await asyncpg.connect(db_url)
        tx = admin.transaction()
        await tx.start()
        await admin.execute('LOCK TABLE "deal_embeddings" IN ACCESS EXCLUSIVE MODE')
        task = asyncio.create_task(dv.search_deal_embeddings(pool, DEAL_VECS[4], qualification_id=QUAL, limit=1))
        try:
            for _ in range(400):
                pid = await admin.fetchval(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = 'dealhunter_vectors'"
                    " AND wait_event_type = 'Lock' LIMIT 1"
                )
                if pid is not None:
                    break
                await asyncio.sleep(0.05)
            assert pid is not None
            await admin.execute("SELECT pg_terminate_backend($1)", pid)
            await asyncio.sleep(0.2)
        finally:
            await tx.rollback()
            await admin.close()
        hits = await task
    assert [h.chunk_id for h in hits] == ["d04"]
    (span,) = telemetry.named("search_deal_embeddings")
    assert span.attributes["dealhunter.retries"] == 1  # type: ignore[index]
    assert sum(p.value for p in telemetry.points("dealhunter.operation.retries")) == 1
    _assert_clean(telemetry)


async def test_pool_waits_are_measured(telemetry: Telemetry, db_url: str) -> None:
    async with dv.open_pool(db_url, min_size=1, max_size=1) as pool:
        async with pool.acquire():
            task = asyncio.create_task(dv.search_deal_embeddings(pool, DEAL_VECS[6], qualification_id=QUAL, limit=1))
            await asyncio.sleep(0.3)
        await task
    (span,) = telemetry.named("search_deal_embeddings")
    assert span.attributes["dealhunter.pool.waits"] == 1  # type: ignore[index]
    assert span.attributes["dealhunter.pool.wait_s"] >= 0.2  # type: ignore[index,operator]
    (point,) = telemetry.points("db.client.connection.wait_time")
    assert point.count >= 1 and point.sum >= 0.2


async def test_replica_routing_reports_served_by_and_skips(telemetry: Telemetry, db_url: str) -> None:
    # a replica that refuses connections (a closed port) is down: the read is served by the primary
    with socket_closed_port() as port:
        dead = f"postgresql://postgres:{SECRET}@127.0.0.1:{port}/x"
        pool = await connect_replicated(db_url, [dead], min_size=1, max_size=2, connect_timeout=1.0, command_timeout=30)
    try:
        hits = await dv.search_deal_embeddings(pool, DEAL_VECS[7], qualification_id=QUAL, limit=1)
    finally:
        await pool.close()
    assert [h.chunk_id for h in hits] == ["d07"]
    (span,) = telemetry.named("search_deal_embeddings")
    assert span.attributes["dealhunter.served_by"] == "primary"  # type: ignore[index]
    assert span.attributes["dealhunter.replica_skips"] == 1  # type: ignore[index]
    (point,) = telemetry.points("dealhunter.replica.skips")
    assert point.attributes["dealhunter.reason"] == "down" and point.value == 1
    _assert_clean(telemetry)


class socket_closed_port:
    """A local TCP port nothing listens on (bound then closed)."""

    def __enter__(self) -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        return None


async def test_migration_steps_are_children_of_their_operation(
    telemetry: Telemetry, dhv_server_url: str, tmp_path: Path
) -> None:
    admin = await asyncpg.connect(dhv_server_url)
    try:
        await admin.execute('DROP DATABASE IF EXISTS "dhv_otel_migrate" WITH (FORCE)')
        await admin.execute('CREATE DATABASE "dhv_otel_migrate"')
    finally:
        await admin.close()
    from dealhunter_vectors.legacy.database import LegacyDatasetSpec, build_legacy_database

    sqlite = tmp_path / "legacy.sqlite"
    build_legacy_database(sqlite, LegacyDatasetSpec.tiny(dims=DIM))
    url = with_database(dhv_server_url, "dhv_otel_migrate")
    async with dv.open_pool(url, min_size=1, max_size=2) as pool:
        report = await dv.migrate_sqlite(sqlite, pool, workers=0)
    (root,) = telemetry.named("migrate_sqlite")
    (schema,) = telemetry.named("apply_schema")
    assert schema.parent is not None and schema.parent.span_id == root.context.span_id
    applied = telemetry.named("apply_migration")
    assert sorted(s.attributes["dealhunter.migration"] for s in applied) == sorted(  # type: ignore[index]
        f"{m.version:03d}_{m.name}" for m in migrations()
    )
    assert all(s.parent is not None and s.parent.span_id == schema.context.span_id for s in applied)
    loads = telemetry.named("load_table")
    loaded_tables = {t.table for t in report.tables if t.source_rows > 0}
    assert {s.attributes["dealhunter.table"] for s in loads} >= loaded_tables  # type: ignore[index]
    assert all(s.parent is not None and s.parent.span_id == root.context.span_id for s in loads)
    assert all(s.kind is SpanKind.INTERNAL for s in (*applied, *loads))
    async with dv.open_pool(url, min_size=1, max_size=2) as pool:
        verification = await dv.verify_migration(sqlite, pool, workers=0)
    assert verification.ok
    (verify,) = telemetry.named("verify_migration")
    tables = telemetry.named("verify_table")
    assert {s.attributes["dealhunter.table"] for s in tables} == {t.table for t in verification.tables}  # type: ignore[index]
    assert all(s.parent is not None and s.parent.span_id == verify.context.span_id for s in tables)
    _assert_clean(telemetry)


def test_nothing_is_imported_or_observed_when_otel_is_not_installed(dhv_database_url: str) -> None:
    """A process where opentelemetry cannot be imported: searches run, nothing of it is loaded,
    the adapter names its extra, and DEALHUNTER_OTEL=1 fails with the same one-line advice."""
    code = f"""
import asyncio, os, sys
sys.modules["opentelemetry"] = None
import dealhunter_vectors as dv
from dealhunter_vectors import observe, writes
from dealhunter_vectors.errors import MissingExtraError, ConfigurationError
async def main():
    async with dv.open_pool({dhv_database_url!r}, min_size=1, max_size=1) as pool:
        await dv.search_deal_embeddings(pool, [1.0] * 3072, qualification_id="nobody")
    assert not observe.SUBSCRIBERS
    assert not [m for m in sys.modules if m.startswith("opentelemetry") and sys.modules[m] is not None]
    try:
        import dealhunter_vectors.integrations.otel
    except MissingExtraError as exc:
        assert exc.extra == "otel" and "dealhunter-vectors[otel]" in str(exc), exc
    else:
        raise AssertionError("imported without opentelemetry")
    os.environ["DEALHUNTER_OTEL"] = "1"
    try:
        await dv.create_pool({dhv_database_url!r})
    except MissingExtraError as exc:
        print("OK", exc)
asyncio.run(main())
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("OK") and "[otel]" in done.stdout


def test_dealhunter_otel_setting_instruments_at_pool_creation(dhv_database_url: str) -> None:
    code = f"""
import asyncio, os
os.environ["DEALHUNTER_OTEL"] = "1"
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
import dealhunter_vectors as dv
async def main():
    async with dv.open_pool({dhv_database_url!r}, min_size=1, max_size=1) as pool:
        await dv.search_deal_embeddings(pool, [1.0] * 3072, qualification_id="nobody")
    print(sorted(s.name for s in exporter.get_finished_spans()))
asyncio.run(main())
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "['search_deal_embeddings']"


async def test_recall_self_check_reports_its_result_as_span_attributes_and_gauges(
    telemetry: Telemetry, dhv_database_factory: Any
) -> None:
    # a weak index (m 4, ef_construction 8) over clustered rows, so recall is not trivially 1
    url = await dhv_database_factory()
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((4, DIM))
    vectors = (centres[rng.integers(0, 4, 400)] + 1.5 * rng.standard_normal((400, DIM))).astype(np.float32)
    async with dv.open_pool(url, min_size=1, max_size=2) as pool:
        await pool.execute('DROP INDEX IF EXISTS "pre_qualifications_description_embedding_hnsw_idx"')
        await pool.execute("INSERT INTO users (id, email, password, name) VALUES ('u', 'u@e.com', 'x', 'U')")
        await pool.copy_records_to_table(
            "pre_qualifications",
            columns=["id", "user_id", "source", "stage", "input_type", "raw_input", "extracted_requirements",
                     "description_embedding"],
            records=[(f"pq{i:03d}", "u", "reactive", "rfp", "freetext", "t", "{}", v) for i, v in enumerate(vectors)],
        )  # fmt: skip
        await pool.execute(
            'CREATE INDEX "weak_hnsw" ON "pre_qualifications" USING hnsw ((("description_embedding")::halfvec(3072))'
            " halfvec_cosine_ops) WITH (m = 4, ef_construction = 8)"
        )
        await pool.execute("ANALYZE pre_qualifications")
        report = await dv.recall_self_check(pool, samples=20, limit=10, seed=1)
    (span,) = telemetry.named("recall_self_check")
    attributes = span.attributes or {}
    assert attributes["dealhunter.recall_mean"] == report.recall_mean
    assert attributes["dealhunter.recall_min"] == report.recall_min
    assert attributes["dealhunter.samples"] == report.samples == 20
    assert not telemetry.named("find_similar_pre_qualifications")  # its 40 searches are inside its one span
    (recall,) = telemetry.points("dealhunter.search.recall")
    assert recall.value == report.recall_mean and dict(recall.attributes)["dealhunter.recall.k"] == 10
    durations = {dict(p.attributes)["dealhunter.search.kind"]: p.value for p in telemetry.points(
        "dealhunter.search.recall_check.duration")}  # fmt: skip
    assert durations == {"index": report.index_ms_median / 1e3, "exact": report.exact_ms_median / 1e3}
    _assert_clean(telemetry)
