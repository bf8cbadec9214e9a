"""The end-to-end demo: legacy SQLite -> PostgreSQL -> every old call site, old vs new.

1. Build a legacy dealhunter SQLite database the way the old app wrote it (Drizzle
   conventions, all 29 tables, clustered 3072-d embeddings, German/English chunk texts).
2. Migrate it with the bulk loader (progress bars), verify it row by row, build the
   halfvec HNSW indexes.
3. Run every retrieval call site of the old app through this library and through a
   faithful port of the old in-process path (``legacy.py``: load all rows of the owner
   from SQLite, ``JSON.parse`` every embedding, score in a loop) on the same data, and
   print the typed results, the timings and whether both agree.

Re-running reuses the data directory and database (the migration then reports every row
as already present); ``fresh=True`` recreates both.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import shlex
import shutil
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import asyncpg
import numpy as np
import platformdirs
from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from ..config import mask_url, with_database
from ..db.embedded import default_data_dir as default_embedded_data_dir
from ..db.embedded import embedded_url, is_embedded_url, parse_embedded_url, resolve_database_url
from ..db.pool import Pool, open_pool
from ..db.schema import apply_schema, quote_ident
from ..legacy import algorithms as legacy
from ..legacy.database import BUILD_STEPS, BuildProgress, LegacyDatasetSpec, build_legacy_database
from ..legacy.synthetic import query_with_cosine
from ..migrate.loader import MigrationProgress, migrate_sqlite
from ..migrate.reports import MigrationReport
from ..migrate.verify import verify_migration
from ..models import DealChunkHit, RawChunkHit
from ..search import (
    find_similar_pre_qualifications,
    search_deal_embeddings,
    search_raw_chunks,
    search_similar,
)
from .migrate import MigrationReporter
from .search import hits_table

__all__ = ["DEMO_SIZES", "CallSiteResult", "DemoResult", "demo_spec", "run_demo"]

DemoSize = Literal["small", "default"]
DEMO_SIZES: tuple[DemoSize, ...] = ("small", "default")
SIMILARITY_TOLERANCE = 1e-5


def demo_spec(size: DemoSize, seed: int = 0) -> LegacyDatasetSpec:
    """The data set of each demo size (``default``: ~2,400 deal chunks and 1,440 raw chunks)."""
    if size == "default":
        return LegacyDatasetSpec.demo(seed=seed)
    return dataclasses.replace(
        LegacyDatasetSpec.demo(seed=seed),
        business_units=2,
        users=4,
        accounts=3,
        pre_qualifications=6,
        qualifications=3,
        deal_embeddings_per_qualification=40,
        deal_embeddings_per_pre_qualification=12,
        raw_chunks_per_pre_qualification=15,
        catalogue_rows=3,
        near_duplicate_fraction=0.34,
        n_clusters=8,
    )


class Hit(BaseModel):
    """One result row as both paths report it: id and similarity (None when unranked)."""

    model_config = ConfigDict(frozen=True)

    id: str
    similarity: float | None


class CallSiteResult(BaseModel):
    """One old call site run both ways on the same data."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str
    arguments: dict[str, Any] = Field(description="the library call's keyword arguments (no embedding)")
    query_embedding: list[float]
    ours: list[Hit]
    legacy: list[Hit]
    agree: bool
    ours_ms: float = Field(description="median latency of the library call")
    legacy_ms: float = Field(description="median latency of the old path (load + JSON.parse + loop)")


class DemoResult(BaseModel):
    """Everything the demo did; ``dealhunter-vectors demo --json`` prints it."""

    model_config = ConfigDict(frozen=True)

    size: str
    sqlite_path: str
    database_url: str = Field(description="masked")
    database: str
    rows_migrated: int
    rows_already_present: int
    verified: bool
    call_sites: list[CallSiteResult]
    explore_url: str = Field(
        default="",
        description="the URL of the demo database for follow-up commands (explicit embedded form; password masked)",
    )
    follow_up: list[str] = Field(
        default_factory=list, description="commands that explore the demo data (printed at the end)"
    )

    @property
    def ok(self) -> bool:
        return self.verified and all(c.agree for c in self.call_sites)


def default_data_dir(size: DemoSize) -> Path:
    """``~/.local/share/dealhunter_vectors/demo-<size>`` (or the platform's equivalent)."""
    return Path(platformdirs.user_data_dir("dealhunter_vectors")) / f"demo-{size}"


def _hits_agree(ours: Sequence[Hit], old: Sequence[Hit]) -> bool:
    """Same ids in the same order, similarities within the tolerance.

    Two neighbours may swap places only when their similarities tie within the tolerance
    (float32 storage vs the old float64 JSON values may order exact ties differently).
    """
    if len(ours) != len(old) or {h.id for h in ours} != {h.id for h in old}:
        return False
    old_sim = {h.id: h.similarity for h in old}
    for a, b in zip(ours, old, strict=True):
        sa, sb = a.similarity, old_sim[a.id]
        if (sa is None) != (sb is None):
            return False
        if sa is not None and sb is not None and abs(sa - sb) > SIMILARITY_TOLERANCE:
            return False
        if a.id != b.id and (sa is None or b.similarity is None or abs(sa - b.similarity) > 2 * SIMILARITY_TOLERANCE):
            return False
    return True


async def _median_ms(fn: Callable[[], Awaitable[Any]], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = await fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), result


def _median_ms_sync(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), result


def _legacy_id(row: dict[str, Any]) -> str:
    value = row.get("chunkId", row.get("id"))
    return str(value)


async def _prepare_database(admin_url: str, name: str, *, fresh: bool) -> bool:
    """Create database *name* (dropped first when *fresh*); return whether it was created now."""
    admin = await asyncpg.connect(admin_url)
    try:
        if fresh:
            await admin.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await admin.execute(f"CREATE DATABASE {quote_ident(name)}")
        return not exists
    finally:
        await admin.close()


async def _drop_database(admin_url: str, name: str) -> None:
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")
    finally:
        await admin.close()


def _command_path(name: str) -> str:
    """How to call this environment's *name* script: ``.venv/bin/NAME`` when under the working
    directory, else its absolute path, else the bare name (found on PATH)."""
    candidate = Path(sys.executable).parent / name
    if not candidate.exists():
        return name
    try:
        return str(candidate.relative_to(Path.cwd()))
    except ValueError:
        return str(candidate)


def explore_url(database_url: str, database: str) -> str:
    """The URL of *database* on the server of *database_url*, as a user can paste it.

    The embedded server gets its explicit form (``embedded:///abs/dir?database=NAME``, which
    starts the server again if it was stopped); any other URL is masked.
    """
    if is_embedded_url(database_url):
        target = parse_embedded_url(database_url)
        return embedded_url(target.data_dir or default_embedded_data_dir(), database)
    return mask_url(with_database(database_url, database))


WEB_APP_MODULES: tuple[str, ...] = ("fastapi", "uvicorn")
"""What ``examples/fastapi_app.py`` needs beyond the library (the ``[examples]`` extra)."""


def web_app_installed() -> bool:
    """Whether this environment can run the example web app."""
    try:
        return all(importlib.util.find_spec(name) is not None for name in WEB_APP_MODULES)
    except (ImportError, ValueError):  # a module blocked or half-imported: not usable
        return False


def _python() -> str:
    """This environment's interpreter as a user can type it (``.venv/bin/python`` under the working directory)."""
    path = Path(sys.executable)
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def follow_up_commands(
    url: str, *, qualification_id: str, chunk_id: str | None, web_app: bool | None = None
) -> list[str]:
    """The commands that explore the demo data: doctor, a search by a stored chunk, the web app.

    The web app runs with this environment's interpreter (``python -m uvicorn``: the venv path,
    wherever pip puts scripts); when ``[examples]`` is not installed (*web_app* False; None: look),
    the line that installs it comes first.
    """
    dhv = _command_path("dealhunter-vectors")
    quoted = shlex.quote(url)
    commands = [f"{dhv} doctor --database-url {quoted}"]
    if chunk_id is not None:
        commands.append(
            f"{dhv} search lead --like-chunk {shlex.quote(chunk_id)} --qualification-id "
            f"{shlex.quote(qualification_id)} --database-url {quoted}"
        )
    python = shlex.quote(_python())
    if not (web_app_installed() if web_app is None else web_app):
        commands.append(f"{python} -m pip install -e '.[examples]'")
    commands.append(f"DATABASE_URL={quoted} {python} -m uvicorn examples.fastapi_app:app")
    commands.append(f"curl -s http://127.0.0.1:8000/qualifications/{qualification_id}/chunks?limit=3")
    return commands


async def _pick(pool: Pool, sql: str) -> str:
    value = await pool.fetchval(sql)
    if value is None:
        raise RuntimeError(f"the demo data set has no row for: {sql}")
    return str(value)


# The owners and anchors the call sites query: deterministic choices from the migrated data.
_BUSIEST_QUALIFICATION = (
    "SELECT qualification_id FROM deal_embeddings WHERE qualification_id IS NOT NULL AND embedding IS NOT NULL"
    " GROUP BY qualification_id ORDER BY count(*) DESC, qualification_id LIMIT 1"
)
_BUSIEST_PRE_QUALIFICATION = (
    "SELECT pre_qualification_id FROM raw_chunks GROUP BY pre_qualification_id"
    " ORDER BY count(*) DESC, pre_qualification_id LIMIT 1"
)
_ANCHOR_DEAL_CHUNK = (
    "SELECT embedding, agent_name FROM deal_embeddings WHERE {owner} = $1 AND embedding IS NOT NULL"
    " ORDER BY id OFFSET $2 LIMIT 1"
)
_ANCHOR_RAW_CHUNK = "SELECT embedding FROM raw_chunks WHERE pre_qualification_id = $1 ORDER BY id OFFSET $2 LIMIT 1"
_TECH_OF_PRE_QUALIFICATION = (
    "SELECT metadata::json->>'cms' FROM deal_embeddings WHERE pre_qualification_id = $1"
    " AND metadata IS NOT NULL AND metadata::json->>'cms' IS NOT NULL ORDER BY id LIMIT 1"
)
_DESCRIPTIONS = (
    "SELECT id, description_embedding FROM pre_qualifications"
    " WHERE description_embedding IS NOT NULL AND extracted_requirements IS NOT NULL ORDER BY id"
)


async def run_demo(
    console: Console,
    *,
    database_url: str | None = None,
    size: DemoSize = "default",
    data_dir: Path | None = None,
    fresh: bool = False,
    seed: int = 0,
    repeat: int = 5,
    quiet: bool = False,
) -> DemoResult:
    """Run the whole demo and print it to *console*; return what it found."""
    started = time.perf_counter()
    data_dir = data_dir or default_data_dir(size)
    sqlite_path = data_dir / "legacy.sqlite"
    if fresh and data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)

    def say(text: str) -> None:
        if not quiet:
            console.print(text, highlight=False, soft_wrap=True)  # paths and URLs never broken

    _ensure_legacy_file(console, say, sqlite_path, size=size, seed=seed, quiet=quiet)
    server_url = resolve_database_url(database_url or "embedded")
    db_name = f"dealhunter_demo_{size}"
    created = await _prepare_database(server_url, db_name, fresh=fresh)
    url = with_database(server_url, db_name)
    say(f"[bold]2. migrate[/] into {mask_url(url)}")
    steps = _DemoSteps(console, say, sqlite_path, quiet=quiet)
    try:
        async with open_pool(url, min_size=2, max_size=10) as pool:
            await steps.migrate_and_verify(pool)
            say("[bold]4. the old call sites[/], old in-process path vs PostgreSQL + pgvector")
            results, typed_hits = await _CallSites(pool, sqlite_path, seed=seed, repeat=repeat).run()
    except BaseException:
        if created and _loaded_nothing(steps.report):
            # a demo that failed before loading anything leaves no empty database behind
            with contextlib.suppress(Exception):
                await _drop_database(server_url, db_name)
        raise
    result = _result(steps, results, size=size, database_url=database_url, url=url, db_name=db_name)
    if not quiet:
        _print_results(console, result, typed_hits)
        console.print(
            f"demo finished in {time.perf_counter() - started:.1f} s: "
            + ("[green]all call sites agree with the old path[/]" if result.ok else "[red]DIFFERENCES[/]")
        )
        _print_follow_up(console, result, database_url=database_url or "embedded")
    return result


def _ensure_legacy_file(
    console: Console, say: Callable[[str], None], sqlite_path: Path, *, size: DemoSize, seed: int, quiet: bool
) -> None:
    """Step 1: the legacy SQLite database, reused when it exists."""
    if sqlite_path.exists():
        say(f"[bold]1. legacy SQLite[/]: reusing {sqlite_path} ({sqlite_path.stat().st_size / 2**20:.0f} MB)")
        return
    say(f"[bold]1. legacy SQLite[/]: writing {sqlite_path} the way the old app did (Drizzle) ...")
    with _build_progress(console, quiet=quiet) as on_step:
        summary = build_legacy_database(sqlite_path, demo_spec(size, seed), keep_embeddings=False, progress=on_step)
    total = sum(summary.row_counts.values())
    say(f"   {total:,} rows in 29 tables, {sqlite_path.stat().st_size / 2**20:.0f} MB, {summary.build_seconds:.1f} s")


class _DemoSteps:
    """Steps 2 and 3: migrate the legacy file, verify every row; what they found."""

    def __init__(self, console: Console, say: Callable[[str], None], sqlite_path: Path, *, quiet: bool) -> None:
        self.console, self.say, self.sqlite_path, self.quiet = console, say, sqlite_path, quiet
        self.report: MigrationReport | None = None
        self.verified = False

    async def migrate_and_verify(self, pool: Pool) -> None:
        await apply_schema(pool)
        with MigrationReporter(self.console, quiet=self.quiet) as reporter:

            def on_progress(ev: MigrationProgress) -> None:
                reporter(ev)

            self.report = report = await migrate_sqlite(self.sqlite_path, pool, progress=on_progress)
        self.say(
            f"   {self.inserted:,} rows inserted, {self.present:,} already present, "
            f"{sum(t.rejected for t in report.tables)} rejected, "
            f"{sum(t.conflicts for t in report.tables)} conflicts"
        )
        with _building_status(self.console, quiet=self.quiet, text="verifying every row (checksums on both sides) ..."):
            verification = await verify_migration(self.sqlite_path, pool)
        self.verified = verification.ok
        self.say(
            f"[bold]3. verify[/]: {'[green]every row matches[/]' if verification.ok else '[red]MISMATCH[/]'} "
            f"({sum(t.source_rows for t in verification.tables):,} rows, checksums on both sides)"
        )

    @property
    def inserted(self) -> int:
        return 0 if self.report is None else sum(t.inserted for t in self.report.tables)

    @property
    def present(self) -> int:
        return 0 if self.report is None else sum(t.already_present for t in self.report.tables)


def _result(
    steps: _DemoSteps,
    results: list[CallSiteResult],
    *,
    size: DemoSize,
    database_url: str | None,
    url: str,
    db_name: str,
) -> DemoResult:
    lead = next(c for c in results if c.name == "lead")
    shown = explore_url(database_url or "embedded", db_name)
    follow_up = follow_up_commands(
        shown,
        qualification_id=str(lead.arguments["qualification_id"]),
        chunk_id=lead.ours[0].id if lead.ours else None,
    )
    return DemoResult(
        size=size,
        sqlite_path=str(steps.sqlite_path),
        database_url=mask_url(url),
        database=db_name,
        rows_migrated=steps.inserted,
        rows_already_present=steps.present,
        verified=steps.verified,
        call_sites=results,
        explore_url=shown,
        follow_up=follow_up,
    )


def _loaded_nothing(report: MigrationReport | None) -> bool:
    """True when the migration did not run or loaded no row (nothing worth keeping)."""
    return report is None or sum(t.inserted + t.already_present for t in report.tables) == 0


@contextlib.contextmanager
def _build_progress(console: Console, *, quiet: bool) -> Iterator[BuildProgress | None]:
    """A rich bar over the legacy database's build steps (on a terminal only)."""
    if quiet or not console.is_terminal:
        yield None
        return
    columns = (TextColumn("   {task.description:<40}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("legacy SQLite", total=len(BUILD_STEPS))

        def on_step(step: str, done: int, total: int) -> None:
            bar.update(task, description=f"legacy SQLite: {step}", completed=done, total=total)

        yield on_step


@contextlib.contextmanager
def _building_status(
    console: Console, *, quiet: bool, text: str = "generating clustered 3072-d embeddings and 29 tables ..."
) -> Iterator[None]:
    """A rich spinner with the elapsed time on a terminal; nothing otherwise."""
    if quiet or not console.is_terminal:
        yield
        return
    with Progress(SpinnerColumn(), TextColumn(text), TimeElapsedColumn(), console=console, transient=True) as bar:
        bar.add_task(text, total=None)
        yield


def _print_follow_up(console: Console, result: DemoResult, *, database_url: str) -> None:
    """The exact commands that explore the demo's data (one per line, never wrapped)."""
    console.print()
    console.print(f"[bold]explore the demo data[/] (database {result.database}):", highlight=False)
    for command in result.follow_up:
        console.print(Text("  " + command), soft_wrap=True)
    notes = ["the web app runs from the checkout (examples/); Ctrl-C stops it"]
    if "***" in result.explore_url:
        notes.append("the password is masked: put yours in place of ***")
    if is_embedded_url(database_url):
        data_dir = parse_embedded_url(database_url).data_dir
        stop = f"{_command_path('dealhunter-vectors')} server stop"
        if data_dir is not None:
            stop += f" --data-dir {shlex.quote(str(data_dir))}"
        notes.append(f"the embedded PostgreSQL keeps running in the background; stop it with: {stop}")
    for note in notes:
        console.print(Text(f"  ({note})", style="dim"), soft_wrap=True)


@dataclasses.dataclass(frozen=True)
class _Site:
    """One old call site: ours and the old path, each with how its rows become comparable hits."""

    name: str
    description: str
    query: np.ndarray[Any, Any]
    arguments: dict[str, Any]
    ours: Callable[[], Awaitable[Sequence[Any]]]
    old: Callable[[], list[dict[str, Any]]]
    to_hit: Callable[[Any], Hit]
    old_to_hit: Callable[[dict[str, Any]], Hit] = lambda r: Hit(id=_legacy_id(r), similarity=r.get("similarity"))


def _chunk_hit(h: DealChunkHit | RawChunkHit) -> Hit:
    return Hit(id=h.chunk_id, similarity=h.similarity)


@dataclasses.dataclass(frozen=True)
class _Anchors:
    qualification: str
    pre_qualification: str
    lead_q: np.ndarray[Any, Any]
    lead_agent: str
    agent_q: np.ndarray[Any, Any]
    expert_q: np.ndarray[Any, Any]
    expert_agent: str
    raw_q: np.ndarray[Any, Any]
    tech: str | None


class _CallSites:
    """Step 4: every old call site, run both ways on the same queries."""

    def __init__(self, pool: Pool, sqlite_path: Path, *, seed: int, repeat: int) -> None:
        self.pool, self.sqlite_path, self.repeat = pool, sqlite_path, repeat
        self.rng = np.random.default_rng(seed + 1)

    def rows(self, table: str, owner_column: str | None, owner_id: str | None) -> list[dict[str, Any]]:
        # The literal old path: every call reads all rows of the owner from SQLite (timed).
        return legacy.load_legacy_rows(self.sqlite_path, table, owner_column, owner_id)

    async def anchor(self, owner: str, owner_id: str, offset: int, cosine: float) -> tuple[np.ndarray[Any, Any], str]:
        """A query at *cosine* to a stored chunk of the owner, and that chunk's agent."""
        row = await self.pool.fetchrow(_ANCHOR_DEAL_CHUNK.format(owner=owner), owner_id, offset)
        if row is None:
            raise RuntimeError(f"no embedded deal chunk for {owner}={owner_id}")
        return query_with_cosine(row["embedding"], cosine, self.rng).astype(np.float32), str(row["agent_name"])

    async def run(self) -> tuple[list[CallSiteResult], dict[str, list[Any]]]:
        """Run each call site both ways; return the results and our typed hits per call site."""
        sites = [*await self.owner_sites(), await self.duplicate_site()]
        out: list[CallSiteResult] = []
        typed: dict[str, list[Any]] = {}
        for site in sites:
            result, ours = await self.measure(site)
            out.append(result)
            typed[site.name] = ours
        return out, typed

    async def measure(self, site: _Site) -> tuple[CallSiteResult, list[Any]]:
        ours_ms, ours = await _median_ms(site.ours, self.repeat)
        old_ms, old = _median_ms_sync(site.old, max(1, min(self.repeat, 3)))
        ours_hits = [site.to_hit(h) for h in ours]
        old_hits = [site.old_to_hit(r) for r in old]
        result = CallSiteResult(
            name=site.name,
            description=site.description,
            arguments=site.arguments,
            query_embedding=[float(x) for x in site.query],
            ours=ours_hits,
            legacy=old_hits,
            agree=_hits_agree(ours_hits, old_hits),
            ours_ms=ours_ms,
            legacy_ms=old_ms,
        )
        return result, list(ours)

    async def anchors(self) -> _Anchors:
        """The busiest owners and queries at known cosines to their stored chunks."""
        pool = self.pool
        qual = await _pick(pool, _BUSIEST_QUALIFICATION)
        preq = await _pick(pool, _BUSIEST_PRE_QUALIFICATION)
        lead_q, lead_agent = await self.anchor("qualification_id", qual, 0, 0.8)
        agent_q, _ = await self.anchor("pre_qualification_id", preq, 0, 0.9)
        expert_q, expert_agent = await self.anchor("qualification_id", qual, 3, 0.6)
        raw_q = query_with_cosine(await pool.fetchval(_ANCHOR_RAW_CHUNK, preq, 0), 0.7, self.rng).astype(np.float32)
        tech = await pool.fetchval(_TECH_OF_PRE_QUALIFICATION, preq)
        return _Anchors(qual, preq, lead_q, lead_agent, agent_q, expert_q, expert_agent, raw_q, tech)

    async def owner_sites(self) -> list[_Site]:
        """lead, agent, raw, deep-scan and the search action, on the busiest owners."""
        a = await self.anchors()
        lead, agent, deep_scan = self.deal_sites(a)
        raw, search = self.raw_and_merged_sites(a)
        return [lead, agent, raw, deep_scan, search]

    def deal_sites(self, a: _Anchors) -> list[_Site]:
        """lead, agent and deep-scan: deal chunks of one owner."""
        pool, rows, qual, preq = self.pool, self.rows, a.qualification, a.pre_qualification
        lead_q, agent_q, expert_q, lead_agent, tech = a.lead_q, a.agent_q, a.expert_q, a.lead_agent, a.tech
        needle = a.expert_agent.split("-")[0]
        lead: dict[str, Any] = dict(
            qualification_id=qual, threshold=0.3, limit=5, agent_names=[lead_agent], filter_fallback=True
        )
        agent: dict[str, Any] = dict(
            pre_qualification_id=preq, threshold=0.7, limit=5, tech_stack=tech, filter_fallback=True
        )
        expert: dict[str, Any] = dict(
            qualification_id=qual, threshold=0.2, limit=10, agent_name_contains=needle, fallback_to_top_k=True
        )
        return [
            _Site(
                "lead",
                "queryRagForLead: qualification chunks, > 0.3, agent filter after the threshold (fallback)",
                lead_q,
                lead,
                lambda: search_deal_embeddings(pool, lead_q, **lead),
                lambda: legacy.query_rag_for_lead(
                    rows("deal_embeddings", "qualification_id", qual),
                    lead_q.tolist(),
                    agent_name_filter=[lead_agent],
                    max_results=5,
                ),
                _chunk_hit,
            ),
            _Site(
                "agent",
                "queryRAG: pre-qualification chunks, > 0.7, tech-stack filter (fallback)",
                agent_q,
                agent,
                lambda: search_deal_embeddings(pool, agent_q, **agent),
                lambda: legacy.query_rag(
                    rows("deal_embeddings", "pre_qualification_id", preq),
                    agent_q.tolist(),
                    tech_stack_filter=tech,
                    max_results=5,
                ),
                _chunk_hit,
            ),
            _Site(
                "deep-scan",
                f"queryLeadRag: > 0.2, agent name contains {needle!r}, best k when nothing passes",
                expert_q,
                expert,
                lambda: search_deal_embeddings(pool, expert_q, **expert),
                lambda: legacy.query_lead_rag(
                    rows("deal_embeddings", "qualification_id", qual),
                    expert_q.tolist(),
                    agent_filter=needle,
                    max_results=10,
                ),
                _chunk_hit,
            ),
        ]

    def raw_and_merged_sites(self, a: _Anchors) -> list[_Site]:
        """raw chunks of a pre-qualification, and the search action over all three sources."""
        pool, rows, qual, preq, lead_q, raw_q = (
            self.pool,
            self.rows,
            a.qualification,
            a.pre_qualification,
            a.lead_q,
            a.raw_q,
        )
        raw: dict[str, Any] = dict(pre_qualification_id=preq, threshold=0.2, limit=5)
        similar: dict[str, Any] = dict(qualification_id=qual, pre_qualification_id=preq, threshold=0.5, limit=10)
        return [
            _Site(
                "raw",
                "queryRawChunks: raw chunks of a pre-qualification, > 0.2",
                raw_q,
                raw,
                lambda: search_raw_chunks(pool, raw_q, **raw),
                lambda: legacy.query_raw_chunks(
                    rows("raw_chunks", "pre_qualification_id", preq), raw_q.tolist(), max_results=5
                ),
                _chunk_hit,
            ),
            _Site(
                "search",
                "searchSimilar: lead + agent + raw sources merged, >= 0.5",
                lead_q,
                similar,
                lambda: search_similar(pool, lead_q, **similar),
                lambda: legacy.search_similar(
                    lead_q.tolist(),
                    lead_rows=rows("deal_embeddings", "qualification_id", qual),
                    agent_rows=rows("deal_embeddings", "pre_qualification_id", preq),
                    raw_rows=rows("raw_chunks", "pre_qualification_id", preq),
                    threshold=0.5,
                    max_results=10,
                ),
                lambda h: Hit(id=h.id, similarity=h.similarity),
            ),
        ]

    async def duplicate_site(self) -> _Site:
        """The duplicate check: the first pre-qualification whose description has a near duplicate."""
        pool = self.pool
        descriptions = await pool.fetch(_DESCRIPTIONS)
        dup_id, dup_q = str(descriptions[0]["id"]), descriptions[0]["description_embedding"]
        for r in descriptions:
            if await find_similar_pre_qualifications(pool, r["description_embedding"], exclude_id=r["id"]):
                dup_id, dup_q = str(r["id"]), r["description_embedding"]
                break
        args: dict[str, Any] = dict(exclude_id=dup_id, min_similarity_percent=85)
        return _Site(
            "duplicates",
            "checkForDuplicates (semantic step): round((cos+1)/2*100) >= 85 over all pre-qualifications",
            np.asarray(dup_q, dtype=np.float32),
            args,
            lambda: find_similar_pre_qualifications(pool, dup_q, **args),
            lambda: legacy.duplicate_semantic_matches(
                self.rows("pre_qualifications", None, None), dup_q.tolist(), exclude_id=dup_id
            ),
            lambda m: Hit(id=m.pre_qualification_id, similarity=m.similarity),
            lambda r: Hit(id=str(r["id"]), similarity=r["cosine"]),
        )


def _snippet(text: str, width: int = 38) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _print_results(console: Console, result: DemoResult, typed: dict[str, list[Any]]) -> None:
    for cs in result.call_sites:
        hits = typed.get(cs.name, [])
        table = hits_table(f"{cs.name}: {cs.description}", hits, width=min(console.width, 120))
        if not cs.ours:
            table.add_row("", "(no hits)", "", "", "")
        console.print(table, highlight=False)
    timing = Table(title="timings (median): old in-process path vs this library", title_justify="left")
    timing.add_column("call site")
    timing.add_column("hits", justify="right")
    timing.add_column("old path ms", justify="right")
    timing.add_column("pgvector ms", justify="right")
    timing.add_column("speed-up", justify="right")
    timing.add_column("same hits")
    for cs in result.call_sites:
        timing.add_row(
            cs.name,
            str(len(cs.ours)),
            f"{cs.legacy_ms:.1f}",
            f"{cs.ours_ms:.2f}",
            f"{cs.legacy_ms / cs.ours_ms:.0f}x" if cs.ours_ms > 0 else "-",
            "[green]yes[/]" if cs.agree else "[red]NO[/]",
        )
    console.print(timing)
