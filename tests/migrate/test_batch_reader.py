"""The loader's batch reader closes cleanly whenever and however its consumer stops (issue 19, points 4 and 9).

A fault in the middle of a table used to leave the reader's async generator suspended; it
was finalised later, at ``asyncio.run()`` shutdown, after the run had shut down the thread
its cursor needs: "unhandled exception during asyncio.run() shutdown ... RuntimeError:
cannot schedule new futures after shutdown" on the CLI's stderr, or a hang when its
producer waited on a full queue.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import sqlite3
from pathlib import Path

import pytest

from dealhunter_vectors.migrate.source import BatchReader, ColumnPlan, TablePlan, open_source

PLAN = TablePlan(name="notes", columns=(ColumnPlan("id", "text", False), ColumnPlan("body", "text", True)))


@pytest.fixture
def source(tmp_path: Path) -> sqlite3.Connection:
    path = tmp_path / "notes.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (id TEXT PRIMARY KEY, body TEXT)")
    conn.executemany("INSERT INTO notes VALUES (?, ?)", [(f"n{i:03d}", f"body {i}") for i in range(100)])
    conn.commit()
    conn.close()
    opened = open_source(path)
    yield opened
    opened.close()


async def test_a_reader_abandoned_mid_table_closes_after_its_thread_is_gone(source: sqlite3.Connection) -> None:
    thread = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    reader = BatchReader(source, PLAN, batch_size=4, thread=thread, processes=None, workers=0)
    batches = reader.__aiter__()
    first = await anext(batches)
    assert first.ids == ["n000", "n001", "n002", "n003"]
    await asyncio.sleep(0.05)  # the producer fills the queue and waits on it
    thread.shutdown(wait=True)  # the run released its thread: the reader is closed afterwards
    await asyncio.wait_for(batches.aclose(), timeout=10)  # neither RuntimeError nor a hang


async def test_a_fault_in_the_consumer_closes_the_reader_at_once(source: sqlite3.Connection) -> None:
    thread = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    reader = BatchReader(source, PLAN, batch_size=4, thread=thread, processes=None, workers=0)
    seen = 0
    with pytest.raises(ConnectionResetError):
        async with contextlib.aclosing(reader.__aiter__()) as batches:
            async for _ in batches:
                seen += 1
                if seen == 3:
                    raise ConnectionResetError("the server went away")
    # closed inside the block: its producer task is gone and the thread is idle
    assert not [t for t in asyncio.all_tasks() if "produce" in repr(t.get_coro())]
    assert thread.submit(lambda: 7).result(timeout=10) == 7
    thread.shutdown(wait=True)
