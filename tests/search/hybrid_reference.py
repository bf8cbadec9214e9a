"""Independent reference computations for the hybrid and MMR tests (no library search code).

* the tie data: small-integer vectors (pgvector's float32 sums are exact, so its cosines equal
  numpy's float64 ones bit for bit) and repeated texts, so cosines, ``ts_rank_cd`` values and
  fused scores tie;
* :func:`expected_hybrid`: both legs and reciprocal rank fusion written out in Python over
  numpy cosines and the ``ts_rank_cd`` values PostgreSQL gives for
  ``to_tsvector('german', content)`` (fetched in a separate, plain query);
* :func:`naive_mmr`: greedy maximal marginal relevance as nested Python loops.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
import numpy as np
import pytest

DIMS = 3072
Q_TIES = "q-ties"
PQ_TIES = "pq-ties"

# Texts repeat (equal ts_rank_cd -> ties by id); vectors repeat (equal cosines -> ties by id).
TEXTS = [
    "Angebot für den Relaunch mit TYPO3.",
    "TYPO3 TYPO3 Angebot: Relaunch der Webseite mit TYPO3 und Drupal.",
    "Relaunch der Webseite, Barrierefreiheit und Navigation.",
    "Angebote für Wartung und Betrieb im Rechenzentrum.",
    "Wir bieten Drupal und TYPO3 an; das Angebot gilt bis Ende Mai.",
    "Schulung der Redakteure in TYPO3.",
    "Straßenbau ist nicht unser Thema.",
    "Sonstiges ohne Suchbegriffe.",
]
PATTERNS = [
    [3, 1, 0, 0, 2, 0],
    [3, 1, 0, 0, 2, 0],  # duplicate pattern
    [1, 2, 3, 0, 0, 1],
    [0, 0, 1, 3, 1, 0],
    [2, 2, 2, 2, 2, 2],
    [-1, 3, 0, 1, 0, 0],
    [1, 0, 0, 0, 0, 0],
    [0, 1, 1, 1, 0, 3],
]
AGENTS = ["tech", "legal", "commercial"]
CATEGORIES = ["elaboration", "fact", "recommendation"]


def int_vector(pattern: Sequence[int]) -> np.ndarray[Any, Any]:
    v = np.zeros(DIMS, dtype=np.float32)
    v[: len(pattern)] = pattern
    v[100 + len(pattern)] = 1  # never a zero vector
    return v


QUERY = int_vector([2, 1, 1, 0, 1, 0])


def tie_rows() -> list[dict[str, Any]]:
    rows = []
    for i in range(48):
        rows.append(
            {
                "id": f"t{(i * 7) % 48:03d}",  # insertion order differs from id order
                "content": TEXTS[i % len(TEXTS)],
                "embedding": None if i % 11 == 10 else int_vector(PATTERNS[(i // 2) % len(PATTERNS)]),
                "agent_name": AGENTS[i % 3],
                "chunk_category": CATEGORIES[(i // 3) % 3],
                "confidence": 10 * (i % 10),
            }
        )
    return rows


# --------------------------------------------------------------------------- the independent computation


async def insert_tie_data(db: asyncpg.Pool) -> None:
    """The tie rows as deal chunks of ``Q_TIES`` and raw chunks of ``PQ_TIES`` (owners must exist)."""
    await db.executemany(
        "INSERT INTO deal_embeddings (id, qualification_id, agent_name, chunk_type, content, embedding,"
        " chunk_category, confidence) VALUES ($1, $2, $3, 'text', $4, $5, $6, $7)",
        [
            (r["id"], Q_TIES, r["agent_name"], r["content"], r["embedding"], r["chunk_category"], r["confidence"])
            for r in tie_rows()
        ],
    )
    await db.executemany(
        "INSERT INTO raw_chunks (id, pre_qualification_id, chunk_index, content, token_count, embedding)"
        " VALUES ($1, $2, $3, $4, 10, $5)",
        [
            (
                r["id"].replace("t", "r"),
                PQ_TIES,
                i,
                r["content"],
                r["embedding"] if r["embedding"] is not None else int_vector([0, 0, 0, 0, 0, 1]),
            )
            for i, r in enumerate(tie_rows())
        ],
    )


async def expected_hybrid(
    db: asyncpg.Pool,
    table: str,
    owner_column: str,
    owner: str,
    text: str | None,
    query: np.ndarray[Any, Any] | None,
    *,
    limit: int = 5,
    threshold: float | None = None,
    rrf_k: float = 60,
    text_weight: float = 1.0,
    vector_weight: float = 1.0,
    candidates: int = 50,
    keep: Callable[[dict[str, Any]], bool] = lambda row: True,
    document: str = "to_tsvector('german', content)",
    alternative: str | None = None,
) -> list[dict[str, Any]]:
    """*document*: the SQL of a row's tsvector; *alternative*: a second query text ORed with *text*."""
    extra = ", agent_name, chunk_category, confidence" if table == "deal_embeddings" else ""
    tsquery = "websearch_to_tsquery('german', $2)"
    if alternative is not None:
        tsquery = f"({tsquery} || websearch_to_tsquery('german', $3))"
    records = await db.fetch(
        f"SELECT id, embedding, {document} @@ {tsquery} AS match,"
        f" ts_rank_cd({document}, {tsquery}) AS score{extra}"
        f" FROM {table} WHERE {owner_column} = $1",
        owner,
        text or "",
        *([] if alternative is None else [alternative]),
    )
    rows = [dict(r) for r in records if keep(dict(r))]
    q64 = None if query is None else np.asarray(query, np.float64)
    cosine: dict[str, float] = {}
    for r in rows:
        if q64 is not None and r["embedding"] is not None:
            e = np.asarray(r["embedding"], np.float64)
            cosine[r["id"]] = float(e @ q64 / math.sqrt(float(e @ e) * float(q64 @ q64)))
    vector_leg: list[str] = []
    if q64 is not None and vector_weight > 0:
        ranked = [r["id"] for r in rows if r["id"] in cosine]
        if threshold is not None:
            ranked = [i for i in ranked if 1 - cosine[i] < 1 - threshold]
        vector_leg = sorted(ranked, key=lambda i: (1 - cosine[i], i))[:candidates]
    text_leg: list[str] = []
    if text and text.strip() and text_weight > 0:
        text_leg = [r["id"] for r in sorted((r for r in rows if r["match"]), key=lambda r: (-r["score"], r["id"]))]
        text_leg = text_leg[:candidates]
    vrank = {i: k + 1 for k, i in enumerate(vector_leg)}
    trank = {i: k + 1 for k, i in enumerate(text_leg)}
    fused = {}
    for i in set(vrank) | set(trank):
        terms = []
        if i in vrank:
            terms.append(vector_weight / (rrf_k + vrank[i]))
        if i in trank:
            terms.append(text_weight / (rrf_k + trank[i]))
        fused[i] = sum(terms)
    by_id = {r["id"]: r for r in rows}
    out = []
    for i in sorted(fused, key=lambda i: (-fused[i], i))[:limit]:
        out.append(
            {
                "id": i,
                "vector_rank": vrank.get(i),
                "text_rank": trank.get(i),
                "fused_score": fused[i],
                "similarity": cosine.get(i),
                "text_score": by_id[i]["score"] if by_id[i]["match"] and text_weight > 0 and text else None,
            }
        )
    return out


def observed(hits: Sequence[Any]) -> list[dict[str, Any]]:
    return [
        {
            "id": h.chunk_id,
            "vector_rank": h.vector_rank,
            "text_rank": h.text_rank,
            "fused_score": h.fused_score,
            "similarity": h.similarity,
            "text_score": h.text_score,
        }
        for h in hits
    ]


def assert_same(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    assert [g["id"] for g in got] == [w["id"] for w in want]
    for g, w in zip(got, want, strict=True):
        assert (g["vector_rank"], g["text_rank"]) == (w["vector_rank"], w["text_rank"]), g["id"]
        assert g["fused_score"] == w["fused_score"], g["id"]  # same float8 arithmetic: bit-equal
        assert g["text_score"] == w["text_score"], g["id"]
        if w["similarity"] is None:
            assert g["similarity"] is None
        else:
            assert g["similarity"] == pytest.approx(w["similarity"], abs=1e-12)


def naive_mmr(relevance: Sequence[float], similarity: Any, mmr_lambda: float, k: int) -> list[int]:
    """Greedy MMR, nested loops: ``argmax lambda * rel - (1 - lambda) * max sim to chosen`` (first wins ties)."""
    chosen: list[int] = []
    remaining = list(range(len(relevance)))
    while remaining and len(chosen) < k:
        best, best_score = -1, -math.inf
        for i in remaining:
            penalty = max(float(similarity[i][j]) for j in chosen) if chosen else 0.0
            score = mmr_lambda * relevance[i] - (1.0 - mmr_lambda) * penalty
            if score > best_score:
                best, best_score = i, score
        chosen.append(best)
        remaining.remove(best)
    return chosen


def pg_cosine(a: Any, b: Any) -> float:
    """The cosine as the search reports it, ``1 - (1 - cos)``, with cos in float64 (exact for small integers)."""
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    cos = float(a64 @ b64 / math.sqrt(float(a64 @ a64) * float(b64 @ b64)))
    return 1.0 - (1.0 - cos)
