"""``dealhunter-vectors search``: ad-hoc queries from a terminal, any old call site's filters.

The query embedding comes from a JSON file (an array of numbers, or an object with an
``embedding`` array; ``-`` reads standard input) or from an existing row
(``--like-chunk ID`` looks in deal_embeddings, raw_chunks and pre-qualification
descriptions). Output: a rich table, or JSON with ``--json``.

``search hybrid "TEXT" [--like-chunk ID | --query-file FILE]`` runs the hybrid (German
full-text + vector) search over an owner's deal chunks (``--raw``: raw chunks); text only or
embedding only work too. ``--mmr-lambda`` diversifies lead, agent, raw, deep-scan and hybrid.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from ..db.pool import Pool, open_pool
from ..embeddings import as_embedding
from ..errors import InvalidEmbeddingError
from ..models import (
    DealChunkHit,
    HybridDealChunkHit,
    HybridRawChunkHit,
    PreQualificationMatch,
    RawChunkHit,
    SimilarityHit,
)
from ..search import (
    find_similar_pre_qualifications,
    search_deal_embeddings,
    search_raw_chunks,
    search_similar,
)
from ..search.hybrid import hybrid_search_deal_embeddings, hybrid_search_raw_chunks
from ._common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, default_database_url, flag_names, name_flags, print_error

# The old call sites and their thresholds / limits (legacy-behaviour.md).
SITES: dict[str, dict[str, Any]] = {
    "lead": {"threshold": 0.3, "limit": 5, "help": "lead retrieval: deal chunks of a qualification, > 0.3"},
    "agent": {"threshold": 0.7, "limit": 5, "help": "agent retrieval: deal chunks of a pre-qualification, > 0.7"},
    "raw": {"threshold": 0.2, "limit": 5, "help": "raw chunks of a pre-qualification, > 0.2"},
    "deep-scan": {"threshold": 0.2, "limit": 10, "help": "deep-scan expert: qualification chunks, > 0.2, top-k"},
    "similar": {"threshold": 0.5, "limit": 10, "help": "search action: lead + agent + raw merged, >= 0.5"},
    "duplicates": {"threshold": None, "limit": None, "help": "duplicate check: all pre-qualifications, >= 85 %"},
    "hybrid": {"threshold": None, "limit": 5, "help": 'German full-text "TEXT" + vector, fused (RRF); --raw: raw'},
}
HYBRID_SITE = "hybrid"

# Where --like-chunk looks for an existing embedding, in this order.
_LIKE_CHUNK_QUERIES = (
    ("deal_embeddings", "SELECT embedding FROM deal_embeddings WHERE id = $1"),
    ("raw_chunks", "SELECT embedding FROM raw_chunks WHERE id = $1"),
    ("pre_qualifications", "SELECT description_embedding FROM pre_qualifications WHERE id = $1"),
)


class QueryError(Exception):
    """The query embedding could not be obtained (message says why)."""


def read_query_file(path: str) -> Any:
    """Parse a JSON query file: an array of numbers or ``{"embedding": [...]}``."""
    try:
        raw = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise QueryError(f"cannot read query file {path}: {exc.strerror}") from None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise QueryError(f"query file {path} is not valid JSON: {exc}") from None
    if isinstance(value, dict):
        value = value.get("embedding")
    if not isinstance(value, list):
        raise QueryError(f"query file {path}: expected a JSON array of numbers or an object with 'embedding'")
    return value


async def embedding_like(pool: Pool, row_id: str) -> Any:
    """The stored embedding of an existing row (deal chunk, raw chunk or pre-qualification)."""
    for table, sql in _LIKE_CHUNK_QUERIES:
        value = await pool.fetchval(sql, row_id)
        if value is not None:
            return value
        if await pool.fetchval(f'SELECT 1 FROM "{table}" WHERE id = $1', row_id):  # noqa: S608 - constant
            raise QueryError(f"{table} row {row_id} has no embedding")
    raise QueryError(f"no deal chunk, raw chunk or pre-qualification with id {row_id}")


async def run_search(pool: Pool, site: str, query: Any, args: argparse.Namespace) -> Sequence[BaseModel]:
    """Run call site *site* with the CLI options; return the typed hits."""
    threshold = args.threshold if args.threshold is not None else SITES[site]["threshold"]
    limit = args.limit if args.limit is not None else SITES[site]["limit"]
    mmr = {"mmr_lambda": args.mmr_lambda, "mmr_candidates": args.mmr_candidates}
    if site == HYBRID_SITE:
        return await run_hybrid(pool, query, args, threshold=threshold, limit=limit)
    if site in ("lead", "agent", "deep-scan"):
        return await search_deal_embeddings(
            pool,
            query,
            qualification_id=args.qualification_id,
            pre_qualification_id=args.pre_qualification_id,
            threshold=threshold,
            limit=limit,
            agent_names=args.agent_name or None,
            agent_name_contains=args.agent_name_contains,
            chunk_categories=args.category or None,
            min_confidence=args.min_confidence,
            only_validated=args.only_validated,
            tech_stack=args.tech_stack,
            filter_fallback=args.filter_fallback,
            inclusive=args.inclusive,
            fallback_to_top_k=args.top_k_fallback or site == "deep-scan",
            **mmr,
        )
    if site == "raw":
        if not args.pre_qualification_id:
            raise ValueError("raw needs --pre-qualification-id")
        return await search_raw_chunks(
            pool, query, pre_qualification_id=args.pre_qualification_id, threshold=threshold, limit=limit, **mmr
        )
    if site == "similar":
        return await search_similar(
            pool,
            query,
            qualification_id=args.qualification_id,
            pre_qualification_id=args.pre_qualification_id,
            threshold=threshold,
            limit=limit,
            include_raw_chunks=not args.no_raw,
        )
    return await find_similar_pre_qualifications(
        pool,
        query,
        exclude_id=args.exclude_id,
        min_similarity_percent=args.min_percent,
        limit=args.limit,
        exact=args.exact,
    )


async def run_hybrid(
    pool: Pool, query: Any, args: argparse.Namespace, *, threshold: float | None, limit: int
) -> Sequence[BaseModel]:
    """``search hybrid "TEXT"``: deal chunks of the owner, or raw chunks with ``--raw``."""
    common: dict[str, Any] = {
        "limit": limit,
        "threshold": threshold,
        "rrf_k": args.rrf_k,
        "text_weight": args.text_weight,
        "vector_weight": args.vector_weight,
        "candidates": args.candidates,
        "mmr_lambda": args.mmr_lambda,
    }
    if args.raw:
        if not args.pre_qualification_id:
            raise ValueError("hybrid --raw needs --pre-qualification-id")
        return await hybrid_search_raw_chunks(
            pool, args.text, query, pre_qualification_id=args.pre_qualification_id, **common
        )
    return await hybrid_search_deal_embeddings(
        pool,
        args.text,
        query,
        qualification_id=args.qualification_id,
        pre_qualification_id=args.pre_qualification_id,
        agent_names=args.agent_name or None,
        agent_name_contains=args.agent_name_contains,
        chunk_categories=args.category or None,
        min_confidence=args.min_confidence,
        only_validated=args.only_validated,
        tech_stack=args.tech_stack,
        **common,
    )


def hit_cells(hit: BaseModel) -> tuple[str, str, str, str]:
    """How any search result is shown: id, similarity, agent or source, content (one line)."""
    if isinstance(hit, DealChunkHit):
        cells = (hit.chunk_id, hit.similarity, hit.agent_name, hit.content)
    elif isinstance(hit, (RawChunkHit, HybridRawChunkHit)):
        cells = (hit.chunk_id, hit.similarity, f"raw #{hit.chunk_index}", hit.content)
    elif isinstance(hit, SimilarityHit):
        label = f"{hit.source}:{hit.agent_name}" if hit.agent_name else hit.source
        cells = (hit.id, hit.similarity, label, hit.content)
    elif isinstance(hit, PreQualificationMatch):
        cells = (hit.pre_qualification_id, hit.similarity, f"{hit.similarity_percent} %", "")
    else:  # pragma: no cover - every search returns one of the above
        cells = ("?", None, "", "")
    sim = "-" if cells[1] is None else f"{cells[1]:.4f}"
    return str(cells[0]), sim, str(cells[2]), " ".join(str(cells[3]).split())


_TABLE_OVERHEAD = 5 * 2 + 6
"""Five columns: one space of padding each side, six vertical borders."""
SIMILARITY_WIDTH = len("similarity")


def hits_table(title: str, hits: Sequence[BaseModel], *, width: int = 80) -> Table:
    """A rich table of *hits* that fits *width* columns without losing what matters.

    Rank (``#``), similarity and agent/source always show; the similarity is never cut.
    Ids are never truncated (a long id folds onto a second line, so it can still be copied);
    the content gets what is left, on one line, cut with an ellipsis. ``--json`` is the
    machine format: it does not depend on the width.
    """
    rows = [(str(i), *hit_cells(h)) for i, h in enumerate(hits, 1)]
    rank_w = max([1, *(len(r[0]) for r in rows)])
    id_max = max([2, *(len(r[1]) for r in rows)])
    agent_max = max([5, *(len(r[3]) for r in rows)])
    room = max(width - _TABLE_OVERHEAD - rank_w - SIMILARITY_WIDTH, 24)
    agent_w = min(agent_max, max(8, room // 4))
    content_min = 10
    id_w = min(id_max, max(8, room - agent_w - content_min))
    content_w = max(room - agent_w - id_w, 4)
    table = Table(title=title, title_justify="left", expand=False)
    table.add_column("#", justify="right", width=rank_w, no_wrap=True)
    table.add_column("id", width=id_w, overflow="fold")
    table.add_column("similarity", justify="right", width=SIMILARITY_WIDTH, no_wrap=True)
    table.add_column("agent / source", width=agent_w, overflow="ellipsis", no_wrap=True)
    table.add_column("content", width=content_w, overflow="ellipsis", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    return table


def hybrid_table(hits: Sequence[BaseModel]) -> Table:
    """Hybrid hits: id, cosine, vector rank, text rank (- when a leg did not return it), fused score, content."""
    table = Table(title=f"{HYBRID_SITE}: {len(hits)} hit(s)", title_justify="left")
    table.add_column("#", justify="right", min_width=2)
    table.add_column("id", no_wrap=True, max_width=16)
    for name, width in (("sim", 6), ("v#", 2), ("t#", 2), ("fused", 6)):
        table.add_column(name, justify="right", no_wrap=True, min_width=width)
    table.add_column("content", overflow="ellipsis", no_wrap=True, max_width=22)
    for i, h in enumerate(hits, 1):
        chunk_id, sim, _, content = hit_cells(h)
        ranks: tuple[str, str, str] = ("", "", "")
        if isinstance(h, (HybridDealChunkHit, HybridRawChunkHit)):
            v, t = ("-" if r is None else str(r) for r in (h.vector_rank, h.text_rank))
            ranks = (v, t, f"{h.fused_score:.4f}")
        table.add_row(str(i), chunk_id, sim, *ranks, content)
    return table


async def cmd_search(args: argparse.Namespace, console: Console) -> int:
    hybrid = args.site == HYBRID_SITE
    if args.text is not None and not hybrid:
        print_error(f"a search text is for 'search hybrid', not {args.site!r}")
        return EXIT_USAGE
    if not (args.query_file or args.like_chunk) and not (hybrid and args.text is not None):
        need = "a search text, --query-file or --like-chunk" if hybrid else "--query-file or --like-chunk"
        print_error(f"{args.site} needs {need}")
        return EXIT_USAGE
    try:
        async with open_pool(args.database_url or default_database_url(), min_size=1, max_size=2) as pool:
            query = None
            if args.query_file or args.like_chunk:
                raw_query = (
                    read_query_file(args.query_file) if args.query_file else await embedding_like(pool, args.like_chunk)
                )
                query = as_embedding(raw_query, where="query embedding")
            hits = await run_search(pool, args.site, query, args)
    except (QueryError, InvalidEmbeddingError) as exc:
        print_error(name_flags(str(exc), args.flag_names))
        return EXIT_FAILED
    except ValueError as exc:  # the library's argument rules (owner, threshold, limit, query text): name the flags
        print_error(name_flags(str(exc), args.flag_names))
        return EXIT_USAGE
    if args.json:
        sys.stdout.write(orjson.dumps([h.model_dump(mode="json") for h in hits]).decode() + "\n")
    else:
        table = (
            hybrid_table(hits)
            if args.site == HYBRID_SITE
            else hits_table(f"{args.site}: {len(hits)} hit(s)", hits, width=console.width)
        )
        console.print(table, highlight=False)
    return EXIT_OK


def register(subparsers: Any, add_database_url: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add ``search`` to the CLI."""
    p = subparsers.add_parser(
        "search",
        help="ad-hoc search with any old call site's filters",
        description="Run one of the old call sites with its threshold and filters:\n"
        + "\n".join(f"  {name:<11} {site['help']}" for name, site in SITES.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("site", choices=list(SITES), help="which call site (sets the default threshold and limit)")
    p.add_argument("text", nargs="?", default=None, help='hybrid: the search words (exact terms, "phrases", or, -word)')
    add_database_url(p)
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--query-file", metavar="FILE", help="JSON array of numbers (or {'embedding': [...]}); - = stdin"
    )
    source.add_argument("--like-chunk", metavar="ID", help="use the stored embedding of this row as the query")
    p.add_argument("--qualification-id", help="owner: a qualification (lead, deep-scan, similar)")
    p.add_argument("--pre-qualification-id", help="owner: a pre-qualification (agent, raw, similar)")
    p.add_argument("--threshold", type=float, default=None, help="similarity threshold (default: the site's)")
    p.add_argument("--limit", type=int, default=None, help="maximum hits (default: the site's)")
    p.add_argument("--inclusive", action="store_true", help=">= threshold instead of >")
    p.add_argument("--agent-name", action="append", help="exact agent name (repeatable)")
    p.add_argument("--agent-name-contains", help="case-insensitive agent name substring")
    p.add_argument("--category", action="append", help="chunk category (repeatable)")
    p.add_argument("--min-confidence", type=int, default=None, help="minimum chunk confidence")
    p.add_argument("--only-validated", action="store_true", help="only validated chunks")
    p.add_argument("--tech-stack", help="substring of metadata.cms or metadata.framework")
    p.add_argument(
        "--filter-fallback",
        action="store_true",
        help="old behaviour: filters matching nothing -> unfiltered thresholded results",
    )
    p.add_argument("--top-k-fallback", action="store_true", help="nothing above threshold -> best k anyway")
    p.add_argument("--no-raw", action="store_true", help="similar: leave raw chunks out")
    p.add_argument("--exclude-id", help="duplicates: the pre-qualification being checked")
    p.add_argument("--min-percent", type=int, default=85, help="duplicates: minimum percentage (default 85)")
    p.add_argument("--exact", action="store_true", help="duplicates: exact scan instead of the HNSW index")
    p.add_argument(
        "--mmr-lambda",
        type=float,
        default=None,
        help="diversify by maximal marginal relevance (0..1; 1 = plain ranking): lead, agent, raw, deep-scan, hybrid",
    )
    p.add_argument("--mmr-candidates", type=int, default=None, help="MMR candidate pool (default max(20, 4 x limit))")
    p.add_argument("--raw", action="store_true", help="hybrid: raw chunks of --pre-qualification-id")
    p.add_argument("--rrf-k", type=float, default=60, help="hybrid: reciprocal rank fusion constant (default 60)")
    p.add_argument("--text-weight", type=float, default=1.0, help="hybrid: weight of the text leg (0 = off)")
    p.add_argument("--vector-weight", type=float, default=1.0, help="hybrid: weight of the vector leg (0 = off)")
    p.add_argument("--candidates", type=int, default=50, help="hybrid: rows each leg contributes (default 50)")
    p.add_argument("--json", action="store_true", help="print the hits as JSON")
    p.set_defaults(handler=cmd_search, flag_names=flag_names(p))
