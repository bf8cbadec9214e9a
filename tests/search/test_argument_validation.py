"""Issue 10: every public argument is validated in Python (typed ValueError naming it).

Before: ``limit`` up to 2**29 reached the server as an invalid ``hnsw.max_scan_tuples``,
``min_confidence=2**31`` overflowed int32 in asyncpg, ``limit=True`` was taken as 1, NUL
characters in ids / agent names / tech stack / categories raised asyncpg's
``CharacterNotInRepertoireError``, a masked array was sent with its masked values.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pytest

import dealhunter_vectors as dv
from dealhunter_vectors.errors import InvalidArgumentError

DIMS = 3072
Q = np.random.default_rng(7).standard_normal(DIMS).astype(np.float32)


@pytest.fixture(scope="module")
def pool(dhv_module_pool: dv.Pool) -> dv.Pool:
    return dhv_module_pool


Call = Callable[[dv.Pool], Awaitable[Any]]

BAD_SEARCH_CALLS: list[tuple[str, str, Call]] = [
    ("limit", "2**29 limit", lambda p: dv.find_similar_pre_qualifications(p, Q, limit=2**29)),
    ("limit", "2**29 exact", lambda p: dv.find_similar_pre_qualifications(p, Q, limit=2**29, exact=True)),
    ("limit", "bool limit", lambda p: dv.search_deal_embeddings(p, Q, qualification_id="q", limit=True)),
    ("limit", "float limit", lambda p: dv.search_raw_chunks(p, Q, pre_qualification_id="p", limit=5.0)),
    ("limit", "2**31 limit", lambda p: dv.search_deal_embeddings(p, Q, qualification_id="q", limit=2**31)),
    ("limit", "listing 2**40", lambda p: dv.list_deal_chunks(p, qualification_id="q", limit=2**40)),
    ("min_confidence", "2**31", lambda p: dv.search_deal_embeddings(p, Q, qualification_id="q", min_confidence=2**31)),
    ("min_confidence", "bool", lambda p: dv.list_deal_chunks(p, qualification_id="q", min_confidence=True)),
    ("min_confidence", "-2**31-1", lambda p: dv.list_deal_chunks(p, qualification_id="q", min_confidence=-(2**31) - 1)),
    ("qualification_id", "NUL id", lambda p: dv.search_deal_embeddings(p, Q, qualification_id="q\x00")),
    ("pre_qualification_id", "NUL id", lambda p: dv.search_raw_chunks(p, Q, pre_qualification_id="p\x00")),
    ("exclude_id", "NUL id", lambda p: dv.find_similar_pre_qualifications(p, Q, exclude_id="x\x00")),
    ("pre_qualification_id", "surrogate", lambda p: dv.search_similar(p, Q, pre_qualification_id="\ud800")),
    (
        "agent_names[1]",
        "NUL agent",
        lambda p: dv.search_deal_embeddings(p, Q, qualification_id="q", agent_names=["a", "b\x00"]),
    ),
    ("agent_names[0]", "int agent", lambda p: dv.search_deal_embeddings(p, Q, qualification_id="q", agent_names=[3])),
    (
        "agent_names",
        "ndarray",
        lambda p: dv.search_deal_embeddings(p, Q, qualification_id="q", agent_names=np.array(["a"], dtype=object)),
    ),
    ("agent_name_contains", "NUL", lambda p: dv.list_deal_chunks(p, qualification_id="q", agent_name_contains="\x00")),
    ("tech_stack", "NUL tech", lambda p: dv.search_deal_embeddings(p, Q, qualification_id="q", tech_stack="dru\x00")),
    ("tech_stack", "list tech", lambda p: dv.search_deal_embeddings(p, Q, qualification_id="q", tech_stack=["x"])),
    (
        "chunk_categories[0]",
        "NUL category",
        lambda p: dv.search_deal_embeddings(p, Q, qualification_id="q", chunk_categories=["fact\x00"]),
    ),
    ("chunk_categories", "bytes", lambda p: dv.list_deal_chunks(p, qualification_id="q", chunk_categories=b"fact")),
    ("inclusive", "int flag", lambda p: dv.search_deal_embeddings(p, Q, qualification_id="q", inclusive=1)),
    ("only_validated", "str flag", lambda p: dv.list_deal_chunks(p, qualification_id="q", only_validated="yes")),
    (
        "include_raw_chunks",
        "None flag",
        lambda p: dv.search_similar(p, Q, pre_qualification_id="p", include_raw_chunks=None),
    ),
    ("exact", "int exact", lambda p: dv.find_similar_pre_qualifications(p, Q, limit=3, exact=1)),
    ("threshold", "bool", lambda p: dv.search_raw_chunks(p, Q, pre_qualification_id="p", threshold=True)),
    ("threshold", "nan", lambda p: dv.search_raw_chunks(p, Q, pre_qualification_id="p", threshold=float("nan"))),
    (
        "min_similarity_percent",
        "inf",
        lambda p: dv.find_similar_pre_qualifications(p, Q, min_similarity_percent=float("inf")),
    ),
    (
        "limit",
        "hybrid bool limit",
        lambda p: dv.hybrid_search_raw_chunks(p, "x", Q, pre_qualification_id="p", limit=True),
    ),
    (
        "candidates",
        "hybrid bool",
        lambda p: dv.hybrid_search_raw_chunks(p, "x", Q, pre_qualification_id="p", candidates=True),
    ),
    (
        "only_validated",
        "hybrid int flag",
        lambda p: dv.hybrid_search_deal_embeddings(p, "x", Q, qualification_id="q", only_validated=1),
    ),
    (
        "min_confidence",
        "hybrid 2**31",
        lambda p: dv.hybrid_search_deal_embeddings(p, "x", Q, qualification_id="q", min_confidence=2**31),
    ),
    (
        "qualification_id",
        "hybrid NUL id",
        lambda p: dv.hybrid_search_deal_embeddings(p, "x", Q, qualification_id="\x00"),
    ),
    ("mmr_lambda", "bool", lambda p: dv.search_raw_chunks(p, Q, pre_qualification_id="p", mmr_lambda=True)),
    ("rrf_k", "nan", lambda p: dv.hybrid_search_raw_chunks(p, "x", Q, pre_qualification_id="p", rrf_k=float("nan"))),
]


@pytest.mark.parametrize(
    ("argument", "label", "call"), BAD_SEARCH_CALLS, ids=[c[1] + "-" + c[0] for c in BAD_SEARCH_CALLS]
)
async def test_bad_search_arguments_are_typed_and_named(pool: dv.Pool, argument: str, label: str, call: Call) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        await call(pool)
    assert isinstance(info.value, ValueError) and isinstance(info.value, dv.DealhunterVectorsError)
    assert info.value.argument == argument, str(info.value)
    assert str(info.value).startswith(f"{argument}: ")


BAD_VECTORS: list[tuple[str, Any]] = [
    ("masked", np.ma.masked_array(Q, mask=[i == 5 for i in range(DIMS)])),
    ("object array", Q.astype(object)),
    ("strings in list", [*Q[:-1].tolist(), "0.5"]),
    ("complex", Q.astype(np.complex64)),
    ("2-d", Q.reshape(1, -1)),
]


@pytest.mark.parametrize(("label", "vector"), BAD_VECTORS, ids=[v[0] for v in BAD_VECTORS])
async def test_bad_query_vectors_are_typed(pool: dv.Pool, label: str, vector: Any) -> None:
    with pytest.raises(dv.InvalidEmbeddingError) as info:
        await dv.search_deal_embeddings(pool, vector, qualification_id="q")
    assert info.value.rule == "type" and str(info.value).startswith("query_embedding: ")


async def test_an_unmasked_masked_array_is_its_data(pool: dv.Pool) -> None:
    assert dv.as_embedding(np.ma.masked_array(Q), dimensions=DIMS).tolist() == Q.tolist()


async def test_large_valid_limits_still_work(pool: dv.Pool) -> None:
    # the largest accepted limit reaches the server without an invalid setting
    assert await dv.find_similar_pre_qualifications(pool, Q, limit=1_000_000) == []
    assert await dv.search_deal_embeddings(pool, Q, qualification_id="nobody", limit=1_000_000) == []


async def test_search_many_checks_request_models(pool: dv.Pool) -> None:
    with pytest.raises(InvalidArgumentError, match=r"^limit: "):
        await dv.search_many(pool, [dv.DealChunkSearch(query_embedding=Q, qualification_id="q", limit=0)])
    with pytest.raises(InvalidArgumentError, match=r"^agent_names\[0\]: "):
        await dv.search_many(pool, [dv.DealChunkSearch(query_embedding=Q, qualification_id="q", agent_names=["\x00"])])


def _chunk(**overrides: Any) -> dv.DealChunk:
    fields: dict[str, Any] = {
        "qualification_id": "q-none",
        "agent_name": "a",
        "chunk_type": "text",
        "content": "c",
        "embedding": Q,
    }
    return dv.DealChunk.model_construct(**{**fields, **overrides})


@pytest.mark.parametrize(
    ("overrides", "column"),
    [
        ({"id": "x\x00y"}, "column=id"),
        ({"agent_name": "a\x00"}, "column=agent_name"),
        ({"content": "nul \x00 here"}, "column=content"),
        ({"chunk_category": "\x00"}, "column=chunk_category"),
        ({"confidence": 2**31}, "column=confidence"),
        ({"confidence": True}, "column=confidence"),
        ({"chunk_index": -(2**31) - 1}, "column=chunk_index"),
        ({"requires_validation": 1}, "column=requires_validation"),
    ],
)
async def test_bad_write_values_are_typed_and_write_nothing(
    pool: dv.Pool, overrides: dict[str, Any], column: str
) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        await dv.insert_deal_chunks(pool, [_chunk(**overrides)])
    assert column in info.value.argument and info.value.argument.startswith("deal_embeddings")


async def test_write_targets_are_checked(pool: dv.Pool) -> None:
    with pytest.raises(InvalidArgumentError, match=r"^pre_qualification_id: "):
        await dv.set_description_embedding(pool, "p\x00", Q)
    with pytest.raises(InvalidArgumentError, match=r"^pre_qualification_id: "):
        await dv.replace_raw_chunks(pool, "p\x00", [])
    # an unknown owner is a NotFoundError, not asyncpg's ForeignKeyViolationError
    with pytest.raises(dv.NotFoundError, match="deal_embeddings"):
        await dv.insert_deal_chunks(pool, [_chunk(qualification_id=f"missing-{uuid.uuid4().hex}")])


def test_write_models_refuse_bool_as_int() -> None:
    base: dict[str, Any] = {"qualification_id": "q", "agent_name": "a", "chunk_type": "t", "content": "c"}
    for bad in ({"confidence": True}, {"chunk_index": False}, {"requires_validation": 1}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            dv.DealChunk(**base, **bad)
    with pytest.raises(ValueError, match="token_count"):
        dv.RawChunk(chunk_index=0, content="c", token_count=True, embedding=Q)
    assert dv.DealChunk(**base, confidence=np.int64(7)).confidence == 7  # numpy integers still convert


async def test_chunks_must_be_a_list(pool: dv.Pool) -> None:
    for bad in (None, "chunk", 3):
        with pytest.raises(InvalidArgumentError, match=r"^chunks: "):
            await dv.insert_deal_chunks(pool, bad)  # type: ignore[arg-type]
