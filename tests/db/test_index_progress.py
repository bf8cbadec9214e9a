"""Progress displays: index builds from pg_stat_progress_create_index (the CLI's bars for index builds).

Deterministic: a CREATE INDEX CONCURRENTLY waits for a transaction that holds a writer's
lock on the table, so the build sits in its "waiting for writers" phase until we commit.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import asyncpg
from rich.console import Console

import dealhunter_vectors as dv
from dealhunter_vectors.cli._progress import watch_index_builds
from dealhunter_vectors.db.schema import index_build_progress
from dealhunter_vectors.legacy.database import BUILD_STEPS, LegacyDatasetSpec, build_legacy_database


async def test_no_builds_no_progress(dhv_pool: dv.Pool) -> None:
    assert await index_build_progress(dhv_pool) == []


async def test_a_running_build_is_reported_and_shown(dhv_database_url: str) -> None:
    writer = await asyncpg.connect(dhv_database_url)
    builder = await asyncpg.connect(dhv_database_url)
    pool = await dv.create_pool(dhv_database_url, min_size=1, max_size=2)
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    try:
        tx = writer.transaction()
        await tx.start()
        await writer.execute("LOCK TABLE deal_embeddings IN ROW EXCLUSIVE MODE")
        build = asyncio.create_task(
            builder.execute("CREATE INDEX CONCURRENTLY dhv_progress_probe ON deal_embeddings (chunk_index)")
        )
        async with watch_index_builds(pool, console) as seen:
            # the watcher polls on its own: wait until it has seen the blocked phase
            while not any(b.phase.startswith("waiting for writers") for b in seen) and not build.done():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            running = await index_build_progress(pool)
            await tx.commit()
            await build
        assert running, "the blocked build must be visible"
        [b] = running
        assert b.table == "deal_embeddings" and b.command == "CREATE INDEX CONCURRENTLY"
        assert b.phase.startswith("waiting for writers")
        assert seen and all(b.table == "deal_embeddings" for b in seen)
        assert "waiting for writers" in out.getvalue()
        assert await index_build_progress(pool) == []
    finally:
        await dv.close_pool(pool)
        await writer.close()
        await builder.close()


def test_progress_is_silent_on_a_pipe() -> None:
    async def run() -> list[object]:
        console = Console(file=io.StringIO(), force_terminal=False)
        async with watch_index_builds(None, console) as seen:  # type: ignore[arg-type]
            return list(seen)

    assert asyncio.run(run()) == []


def test_legacy_build_reports_every_step(tmp_path: Path) -> None:
    """The demo's data-generation bar: each build step, in order, then done == total."""
    calls: list[tuple[str, int, int]] = []
    build_legacy_database(tmp_path / "x.db", LegacyDatasetSpec.tiny(), progress=lambda *a: calls.append(a))
    assert [c[0] for c in calls] == [*BUILD_STEPS, "done"]
    assert [c[1] for c in calls] == list(range(len(BUILD_STEPS) + 1))
    assert all(c[2] == len(BUILD_STEPS) for c in calls)
