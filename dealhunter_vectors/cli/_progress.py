"""Progress display for long server-side steps: index builds, from ``pg_stat_progress_create_index``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from ..db.pool import Pool
from ..db.schema import IndexBuildProgress, index_build_progress

__all__ = ["watch_index_builds"]

POLL_SECONDS = 0.5


async def _poll(pool: Pool, progress: Progress, stop: asyncio.Event, seen: list[IndexBuildProgress]) -> None:
    tasks: dict[int, TaskID] = {}
    while not stop.is_set():
        try:
            builds = await index_build_progress(pool)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            return  # progress is a nicety: never fail the command over it
        for b in builds:
            seen.append(b)
            label = f"{b.index or b.table}: {b.phase}"
            if b.pid not in tasks:
                tasks[b.pid] = progress.add_task(label, total=b.total or None)
            progress.update(tasks[b.pid], description=label, completed=b.done, total=b.total or None)
        for pid, task in tasks.items():
            if all(b.pid != pid for b in builds):
                progress.update(task, description=progress.tasks[task].description.split(":")[0] + ": done")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), POLL_SECONDS)


@contextlib.asynccontextmanager
async def watch_index_builds(pool: Pool, console: Console) -> AsyncIterator[list[IndexBuildProgress]]:
    """While the block runs, show a rich bar per index build in *pool*'s database.

    Only on a terminal (pipes and logs get nothing); polls ``pg_stat_progress_create_index``
    over one pooled connection every half second. Yields the list of observations.
    """
    seen: list[IndexBuildProgress] = []
    if not console.is_terminal:
        yield seen
        return
    stop = asyncio.Event()
    progress = Progress(
        TextColumn("{task.description:<48}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    )
    with progress:
        poller = asyncio.create_task(_poll(pool, progress, stop, seen))
        try:
            yield seen
        finally:
            stop.set()
            await poller
