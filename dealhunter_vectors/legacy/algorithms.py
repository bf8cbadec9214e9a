"""A literal Python port of the old app's in-process vector search: the **reference**, not a fast path.

The old dealhunter app (SQLite era) loaded every candidate row of a pre-qualification or
qualification, ``JSON.parse``-d each 3072-d embedding and scored it with a JavaScript
``cosineSimilarity()`` loop, then filtered, sorted and sliced
(``shared/reference/legacy-behaviour.md``). This module does the same, on purpose slowly:
``json.loads`` of the stored text and a plain Python loop over float64 (JavaScript
numbers are IEEE doubles, and the loop accumulates in the same order, so the scores are
the ones the old app computed). It is used

* by the tests, as the independent reference the SQL searches are compared with;
* by the demo and the benchmarks, to run the literal old path on rows read from a legacy
  SQLite file with :func:`load_legacy_rows` (``SELECT *`` of the owner, as Drizzle did).

Rows are dicts as read from the legacy SQLite database: ``embedding`` and ``metadata`` are
JSON text (or None), timestamps are Unix seconds (``validated_at`` int or None), booleans
0/1. Every call site takes ``swallow_errors`` (default True, the old behaviour): the old
code wrapped each search in ``try/catch`` and returned ``[]`` on any exception, so one
malformed row hid every good one. That is a defect the library does **not** copy; pass
``swallow_errors=False`` to see the exception instead.

Semantics reproduced on purpose (they differ from the library only where noted):

* JavaScript ``JSON.parse``: ``NaN``/``Infinity`` literals are invalid JSON.
* SQLite ``LIKE '%x%'`` (deep-scan agent filter): case-insensitive for ASCII letters only,
  and ``%`` / ``_`` in ``x`` are wildcards (the library treats them literally).
* ``Array.prototype.sort`` is stable: ties keep the row order of the query.
* ``Math.round``: halves rounded up (:func:`js_round`).
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any, Final, TypeVar

__all__ = [
    "LEGACY_OWNER_COLUMNS",
    "LegacyError",
    "calculate_confidence_score",
    "cosine_similarity_lenient",
    "cosine_similarity_strict",
    "duplicate_semantic_matches",
    "js_json_parse",
    "js_round",
    "load_legacy_rows",
    "query_lead_rag",
    "query_rag",
    "query_rag_for_lead",
    "query_raw_chunks",
    "search_similar",
    "similarity_to_percentage",
    "sqlite_like",
]

Row = Mapping[str, Any]
T = TypeVar("T")

LEAD_THRESHOLD: Final = 0.3
AGENT_THRESHOLD: Final = 0.7
RAW_THRESHOLD: Final = 0.2
DEEP_SCAN_THRESHOLD: Final = 0.2
DUPLICATE_MIN_PERCENT: Final = 85
EMBEDDING_DIMENSIONS: Final = 3072

LEGACY_OWNER_COLUMNS: Final[Mapping[str, frozenset[str | None]]] = {
    "deal_embeddings": frozenset({"pre_qualification_id", "qualification_id"}),
    "raw_chunks": frozenset({"pre_qualification_id"}),
    "pre_qualifications": frozenset({None, "id"}),
}
"""Tables and owner columns :func:`load_legacy_rows` reads (None: every row)."""


class LegacyError(Exception):
    """What the old JavaScript would have thrown (a TypeError, an Error, a SyntaxError)."""


# --------------------------------------------------------------------------- JavaScript pieces


def cosine_similarity_strict(a: Sequence[float], b: Sequence[float]) -> float:
    """The strict JS ``cosineSimilarity``: lengths must match (else it throws); zero magnitude -> 0."""
    if len(a) != len(b):
        raise LegacyError("Vectors must have same length")
    return _cosine_loop(a, b)


def cosine_similarity_lenient(a: Sequence[float], b: Sequence[float]) -> float:
    """The lenient JS ``cosineSimilarity``: different lengths give 0; zero magnitude -> 0."""
    if len(a) != len(b):
        return 0.0
    return _cosine_loop(a, b)


def _cosine_loop(a: Sequence[float], b: Sequence[float]) -> float:
    dot = 0.0
    mag_a = 0.0
    mag_b = 0.0
    for i in range(len(a)):
        x = _js_num(a[i])
        y = _js_num(b[i])
        dot += x * y
        mag_a += x * x
        mag_b += y * y
    mag_a = math.sqrt(mag_a)
    mag_b = math.sqrt(mag_b)
    if mag_a == 0 or mag_b == 0:
        return 0.0
    return dot / (mag_a * mag_b)


def _js_num(value: Any) -> float:
    # JavaScript arithmetic on a JSON-parsed element: numbers are doubles; anything else
    # (null, strings, arrays) turns the score into NaN or garbage. Keep numbers exact.
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    return math.nan


def js_round(x: float) -> int:
    """JavaScript ``Math.round``: nearest integer, halves up (``js_round(-0.5) == 0``)."""
    floor = math.floor(x)
    return int(floor + 1 if x - floor >= 0.5 else floor)


def similarity_to_percentage(cosine: float) -> int:
    """The duplicate check's ``Math.round(((cos + 1) / 2) * 100)``."""
    return js_round(((cosine + 1) / 2) * 100)


def _reject_constant(name: str) -> Any:
    raise LegacyError(f"SyntaxError: Unexpected token {name[0]} in JSON")


def js_json_parse(text: str) -> Any:
    """``JSON.parse``: like ``json.loads`` but ``NaN``/``Infinity`` are syntax errors."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise LegacyError(f"SyntaxError: {exc}") from None


def _safe_parse(text: str | None, fallback: T) -> Any:
    """The search action's ``safeParseJSON``: falsy text or a parse error give the fallback."""
    if not text:
        return fallback
    try:
        return js_json_parse(text)
    except LegacyError:
        return fallback


def _metadata_or_empty(text: str | None) -> Any:
    """``chunk.metadata ? JSON.parse(chunk.metadata) : {}`` (throws on invalid JSON)."""
    return js_json_parse(text) if text else {}


def _stable_sort_desc(items: list[dict[str, Any]]) -> None:
    items.sort(key=lambda r: -r["similarity"])  # list.sort is stable, like Array.prototype.sort


def _guard(swallow_errors: bool, run: Callable[[], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    if not swallow_errors:
        return run()
    try:
        return run()
    except Exception:  # the old try { ... } catch { return [] }
        return []


def _as_floats(query_embedding: Sequence[float] | Any) -> list[float]:
    return [float(x) for x in query_embedding]


def sqlite_like(value: str, pattern: str) -> bool:
    """SQLite's default ``value LIKE pattern``: ``%`` any run, ``_`` one character, ASCII case folding."""
    regex = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(_ascii_lower(ch)) for ch in pattern)
    return re.fullmatch(regex, _ascii_lower(value), flags=re.DOTALL) is not None


def _ascii_lower(text: str) -> str:
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in text)


def _is_validated(row: Row) -> bool:
    return row.get("validated_at") is not None


# --------------------------------------------------------------------------- call sites


def query_rag_for_lead(
    rows: Iterable[Row],
    query_embedding: Sequence[float] | None,
    *,
    agent_name_filter: str | Sequence[str] | None = None,
    max_results: int = 5,
    chunk_categories: Sequence[str] | None = None,
    min_confidence: int | None = None,
    only_validated: bool = False,
    swallow_errors: bool = True,
) -> list[dict[str, Any]]:
    """Lead retrieval ``queryRagForLead`` over the rows of one qualification.

    The SQL conditions of the old query (category IN, confidence >= min when min > 0,
    validated_at IS NOT NULL) are applied to *rows* first; then strict cosine, ``> 0.3``,
    the agent filter **after** the threshold (falling back to the unfiltered thresholded
    results when it matches nothing), a stable sort, ``slice(0, maxResults || 5)``.
    ``query_embedding=None`` is the old fallback: every chunk (also without embedding),
    unranked, similarity 0.75.
    """

    def run() -> list[dict[str, Any]]:
        chunks = [r for r in rows if _lead_sql_filter(r, chunk_categories, min_confidence, only_validated)]
        if not chunks:
            return []
        results: list[dict[str, Any]] = []
        if query_embedding is not None:
            q = _as_floats(query_embedding)
            for chunk in chunks:
                if chunk.get("embedding") is None:
                    continue
                embedding = js_json_parse(chunk["embedding"])
                similarity = cosine_similarity_strict(q, embedding)
                metadata = _metadata_or_empty(chunk.get("metadata"))
                results.append(_lead_result(chunk, similarity, metadata))
            results = [r for r in results if r["similarity"] > LEAD_THRESHOLD]
        else:
            results = [_lead_result(chunk, 0.75, _metadata_or_empty(chunk.get("metadata"))) for chunk in chunks]
        filtered = results
        # JavaScript truthiness: a non-empty string or any array (even an empty one)
        if (isinstance(agent_name_filter, str) and agent_name_filter) or (
            agent_name_filter is not None and not isinstance(agent_name_filter, str)
        ):
            assert agent_name_filter is not None
            names = [agent_name_filter] if isinstance(agent_name_filter, str) else list(agent_name_filter)
            filtered = [r for r in results if r["agentName"] in names]
            if not filtered:
                filtered = results
        filtered = list(filtered)
        _stable_sort_desc(filtered)
        limited = filtered[: (max_results or 5)]
        for r in limited:
            r["sources"] = [
                {
                    "agentName": r["agentName"],
                    "chunkId": r["chunkId"],
                    "chunkType": r["chunkType"],
                    "relevance": r["similarity"],
                }
            ]
        return limited

    return _guard(swallow_errors, run)


def _lead_sql_filter(
    row: Row, categories: Sequence[str] | None, min_confidence: int | None, only_validated: bool
) -> bool:
    if categories and row.get("chunk_category") not in categories:
        return False
    if min_confidence is not None and min_confidence > 0:
        confidence = row.get("confidence")
        if confidence is None or confidence < min_confidence:
            return False
    return not (only_validated and not _is_validated(row))


def _lead_result(chunk: Row, similarity: float, metadata: Any) -> dict[str, Any]:
    return {
        "chunkId": chunk["id"],
        "agentName": chunk["agent_name"],
        "chunkType": chunk["chunk_type"],
        "content": chunk["content"],
        "similarity": similarity,
        "metadata": metadata,
        "chunkCategory": chunk.get("chunk_category"),
        "chunkConfidence": chunk.get("confidence"),
        "isValidated": _is_validated(chunk),
    }


def query_rag(
    rows: Iterable[Row],
    query_embedding: Sequence[float] | None,
    *,
    tech_stack_filter: str | None = None,
    max_results: int = 5,
    swallow_errors: bool = True,
) -> list[dict[str, Any]]:
    """Agent retrieval ``queryRAG`` over the rows of one pre-qualification.

    Strict cosine, ``> 0.7``; the tech-stack filter (case-insensitive substring of
    ``metadata.cms`` or ``metadata.framework``) after the threshold with fallback to the
    unfiltered results; stable sort; ``slice(0, maxResults || 5)``. No query embedding -> [].
    """

    def run() -> list[dict[str, Any]]:
        if query_embedding is None:
            return []
        chunks = list(rows)
        if not chunks:
            return []
        q = _as_floats(query_embedding)
        results = []
        for chunk in chunks:
            if chunk.get("embedding") is None:
                continue
            similarity = cosine_similarity_strict(q, js_json_parse(chunk["embedding"]))
            results.append(
                {
                    "chunkId": chunk["id"],
                    "agentName": chunk["agent_name"],
                    "chunkType": chunk["chunk_type"],
                    "content": chunk["content"],
                    "similarity": similarity,
                    "metadata": _metadata_or_empty(chunk.get("metadata")),
                }
            )
        results = [r for r in results if r["similarity"] > AGENT_THRESHOLD]
        filtered = results
        if tech_stack_filter:
            needle = tech_stack_filter.lower()
            filtered = [r for r in results if _tech_match(r["metadata"], needle)]
            if not filtered:
                filtered = results
        filtered = list(filtered)
        _stable_sort_desc(filtered)
        return filtered[: (max_results or 5)]

    return _guard(swallow_errors, run)


def _tech_match(metadata: Any, needle: str) -> bool:
    # result.metadata.cms -> TypeError when metadata is null; cms?.toLowerCase() -> TypeError
    # when cms is a number/object (not a string); undefined/null short-circuit to false.
    if metadata is None:
        raise LegacyError("TypeError: Cannot read properties of null (reading 'cms')")
    for key in ("cms", "framework"):
        value = metadata.get(key) if isinstance(metadata, dict) else None
        if value is None:
            continue
        if not isinstance(value, str):
            raise LegacyError(f"TypeError: {key}?.toLowerCase is not a function")
        if needle in value.lower():
            return True
    return False


def query_raw_chunks(
    rows: Iterable[Row],
    query_embedding: Sequence[float] | None,
    *,
    max_results: int = 5,
    swallow_errors: bool = True,
) -> list[dict[str, Any]]:
    """Raw retrieval ``queryRawChunks`` over the raw chunks of one pre-qualification.

    Strict cosine of every chunk, stable sort, ``> 0.2``, ``slice(0, maxResults || 5)``;
    NULL metadata -> ``{startPosition: 0, endPosition: 0, type: 'unknown'}``. No query
    embedding -> [].
    """

    def run() -> list[dict[str, Any]]:
        if query_embedding is None:
            return []
        chunks = list(rows)
        if not chunks:
            return []
        q = _as_floats(query_embedding)
        results = []
        for chunk in chunks:
            similarity = cosine_similarity_strict(q, js_json_parse(chunk["embedding"]))
            metadata = (
                js_json_parse(chunk["metadata"])
                if chunk.get("metadata")
                else {"startPosition": 0, "endPosition": 0, "type": "unknown"}
            )
            results.append(
                {
                    "chunkId": chunk["id"],
                    "chunkIndex": chunk["chunk_index"],
                    "content": chunk["content"],
                    "similarity": similarity,
                    "tokenCount": chunk["token_count"],
                    "metadata": metadata,
                }
            )
        _stable_sort_desc(results)
        above = [r for r in results if r["similarity"] > RAW_THRESHOLD]
        return above[: (max_results or 5)]

    return _guard(swallow_errors, run)


def query_lead_rag(
    rows: Iterable[Row],
    query_embedding: Sequence[float] | None,
    *,
    agent_filter: str | None = None,
    max_results: int = 10,
    swallow_errors: bool = True,
) -> list[dict[str, Any]]:
    """Deep-scan expert ``queryLeadRag`` over the rows of one qualification.

    ``agent_name LIKE '%filter%'`` (SQLite semantics, see :func:`sqlite_like`) and
    ``embedding IS NOT NULL``; lenient cosine; ``> 0.2``; stable sort; slice. Nothing above
    the threshold -> the best ``max_results`` with no threshold. No query embedding -> the
    first ``max_results`` rows (also without embedding), no similarity. Metadata is
    ``JSON.parse``-d or None.
    """

    def run() -> list[dict[str, Any]]:
        base = [r for r in rows if not agent_filter or sqlite_like(r["agent_name"], f"%{agent_filter}%")]
        if query_embedding is None:
            return [
                {"id": r["id"], "content": r["content"], "metadata": _parse_or_none(r.get("metadata"))}
                for r in base[:max_results]
            ]
        q = _as_floats(query_embedding)
        candidates = [r for r in base if r.get("embedding") is not None]

        def scored() -> list[dict[str, Any]]:
            out = []
            for r in candidates:
                similarity = cosine_similarity_lenient(q, js_json_parse(r["embedding"])) if r["embedding"] else 0.0
                out.append(
                    {
                        "id": r["id"],
                        "content": r["content"],
                        "metadata": _parse_or_none(r.get("metadata")),
                        "similarity": similarity,
                    }
                )
            return out

        above = [r for r in scored() if r["similarity"] > DEEP_SCAN_THRESHOLD]
        _stable_sort_desc(above)
        above = above[:max_results]
        if above:
            return above
        fallback = scored()
        _stable_sort_desc(fallback)
        return fallback[:max_results]

    return _guard(swallow_errors, run)


def _parse_or_none(text: str | None) -> Any:
    return js_json_parse(text) if text else None


def search_similar(
    query_embedding: Sequence[float] | None,
    *,
    lead_rows: Iterable[Row] | None = None,
    agent_rows: Iterable[Row] | None = None,
    raw_rows: Iterable[Row] | None = None,
    threshold: float = 0.5,
    max_results: int = 10,
    include_raw_chunks: bool = True,
    swallow_errors: bool = True,
) -> list[dict[str, Any]]:
    """The search action ``searchSimilar``.

    ``lead_rows``: deal_embeddings of the qualification (``leadId``), or None when no
    leadId was given; ``agent_rows``: deal_embeddings of the pre-qualification (``rfpId``),
    or None; ``raw_rows``: its raw_chunks, searched only with ``agent_rows`` and
    ``include_raw_chunks``. Embeddings via ``safeParseJSON(.., [])`` (empty -> skipped),
    lenient cosine, ``>= threshold``, metadata ``safeParseJSON(.., {})``; concatenated
    lead, agent, raw; stable sort; slice. No query embedding -> [].
    """
    if lead_rows is None and agent_rows is None:
        raise LegacyError("Either rfpId or leadId is required")

    def run() -> list[dict[str, Any]]:
        if query_embedding is None:
            return []
        q = _as_floats(query_embedding)
        results: list[dict[str, Any]] = []

        def scan(rows: Iterable[Row], source: str) -> None:
            for chunk in rows:
                embedding = _safe_parse(chunk.get("embedding"), [])
                if isinstance(embedding, (list, str)) and len(embedding) == 0:
                    continue
                # a parsed non-array has no .length: the lenient cosine returns 0
                similarity = cosine_similarity_lenient(q, embedding) if isinstance(embedding, list) else 0.0
                if similarity >= threshold:
                    hit: dict[str, Any] = {"id": chunk["id"], "source": source}
                    if source != "raw":
                        hit["agentName"] = chunk["agent_name"]
                        hit["chunkType"] = chunk["chunk_type"]
                    hit.update(
                        chunkIndex=chunk["chunk_index"],
                        content=chunk["content"],
                        similarity=similarity,
                        metadata=_safe_parse(chunk.get("metadata"), {}),
                    )
                    results.append(hit)

        if lead_rows is not None:
            scan(lead_rows, "lead")
        if agent_rows is not None:
            scan(agent_rows, "agent")
            if include_raw_chunks and raw_rows is not None:
                scan(raw_rows, "raw")
        _stable_sort_desc(results)
        return results[:max_results]

    return _guard(swallow_errors, run)


def duplicate_semantic_matches(
    rows: Iterable[Row],
    query_embedding: Sequence[float] | None,
    *,
    exclude_id: str | None = None,
    min_percent: int = DUPLICATE_MIN_PERCENT,
) -> list[dict[str, Any]]:
    """The semantic step of ``checkForDuplicates`` over pre_qualifications rows.

    Rows other than ``exclude_id`` with ``extracted_requirements`` (unparsable JSON ->
    skipped, the old ``continue``) and a description embedding that parses to an array of
    exactly 3072 numbers (anything else skipped); strict cosine; percent =
    ``Math.round((cos + 1) / 2 * 100)``; matches with percent >= 85, stable-sorted by
    percent. Each match: ``{"id", "cosine", "similarity"}`` (similarity = percent).
    (The earlier URL/account/name checks of the old function are not part of this step.)
    """
    if query_embedding is None:
        return []
    q = _as_floats(query_embedding)
    matches = []
    for row in rows:
        if exclude_id is not None and row["id"] == exclude_id:
            continue
        if not row.get("extracted_requirements"):
            continue
        try:
            js_json_parse(row["extracted_requirements"])
        except LegacyError:
            continue
        text = row.get("description_embedding")
        if not text:
            continue
        embedding = _safe_parse(text, None)
        if (
            not isinstance(embedding, list)
            or len(embedding) != EMBEDDING_DIMENSIONS
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in embedding)
        ):
            continue
        cosine = cosine_similarity_strict(q, embedding)
        percent = similarity_to_percentage(cosine)
        if percent >= min_percent:
            matches.append({"id": row["id"], "cosine": cosine, "similarity": percent})
    matches.sort(key=lambda m: -m["similarity"])
    return matches


def calculate_confidence_score(results: Sequence[Mapping[str, Any]]) -> int:
    """The lead service's ``calculateConfidenceScore`` over results with ``similarity`` and ``agentName``."""
    if not results:
        return 0
    count_score = min(40.0, (len(results) / 5) * 40)
    avg = 0.0
    for r in results:
        avg += r["similarity"]
    avg /= len(results)
    diversity = min(20.0, (len({r["agentName"] for r in results}) / 3) * 20)
    return js_round(min(100.0, count_score + avg * 40 + diversity))


# --------------------------------------------------------------------------- loading


def load_legacy_rows(
    sqlite_path: str | PathLike[str],
    table: str,
    owner_column: str | None,
    owner_id: str | None,
) -> list[dict[str, Any]]:
    """Read the rows the old app searched: ``SELECT * FROM table WHERE owner_column = ?``.

    Exactly the old query (Drizzle's ``db.select().from(table).where(eq(col, id))``):
    every column, every row of the owner, in SQLite's order; values as stored (JSON text,
    Unix seconds, 0/1). ``owner_column=None`` reads every row (the duplicate check).
    Only the tables and owner columns in :data:`LEGACY_OWNER_COLUMNS` are accepted; the
    file is opened read-only.
    """
    allowed = LEGACY_OWNER_COLUMNS.get(table)
    if allowed is None or owner_column not in allowed:
        raise ValueError(f"unsupported legacy table/owner column: {table!r}/{owner_column!r}")
    uri = Path(sqlite_path).resolve().as_uri() + "?mode=ro"  # as_uri percent-encodes '?', '#', '%'
    conn = sqlite3.connect(uri, uri=True)
    try:
        conn.row_factory = sqlite3.Row
        quoted_table = '"' + table.replace('"', '""') + '"'
        if owner_column is None:
            cursor = conn.execute(f"SELECT * FROM {quoted_table}")  # noqa: S608 - whitelisted name
        else:
            quoted_column = '"' + owner_column.replace('"', '""') + '"'
            cursor = conn.execute(
                f"SELECT * FROM {quoted_table} WHERE {quoted_column} = ?",  # noqa: S608 - whitelisted names
                (owner_id,),
            )
        return [dict(row) for row in cursor]
    finally:
        conn.close()
