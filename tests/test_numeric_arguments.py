"""Every public numeric parameter (issue 19, point 3): a typed error naming it, or a correct result.

Each parameter gets huge integers (``10**400``, where ``float()`` raises ``OverflowError``),
``Decimal``, ``Fraction``, numpy scalars of every kind, bools, inf/nan and -0.0. The outcome is
either an :class:`InvalidArgumentError` whose ``argument`` is the parameter, or the result of
the same call with the plain Python value (``int(v)`` / ``float(v)``); a value inside the
documented range must be accepted. The rules live in ``dealhunter_vectors/validation.py``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import dealhunter_vectors as dv
from dealhunter_vectors.legacy.database import LegacyDatasetSpec, build_legacy_database
from dealhunter_vectors.testing import seed_owners

DIMS = 3072
INT32 = (-(2**31), 2**31 - 1)
Q, PQ = "q-num", "pq-num"
RNG = np.random.default_rng(7)
QUERY = RNG.standard_normal(DIMS).astype(np.float32)

WEIRD: list[Any] = [
    10**400, -(10**400), 2**63, 2**31, Decimal("0.5"), Decimal("3"), Decimal("NaN"), Decimal("Infinity"),
    Fraction(1, 2), Fraction(3), Fraction(10**400, 3), np.float16(0.5), np.float32(0.25), np.float64(0.75),
    np.longdouble(0.5), np.longdouble("1e4000"), np.int8(3), np.uint8(4), np.int16(-2), np.uint32(5),
    np.int64(2**40), np.uint64(2**64 - 1), np.bool_(True), True, False, math.inf, -math.inf, math.nan, -0.0,
    0, 1, 3, 0.5, 7.0, "3", None,
]  # fmt: skip


@dataclass(frozen=True)
class Rule:
    kind: str  # "number" or "integer"
    low: float
    high: float
    weight: bool = False  # 0, or a number in [1e-6, 1e6]

    def canonical(self, value: Any) -> float | int | None:
        """The plain value a call with *value* must behave like; None: it must be refused."""
        if value is None or isinstance(value, (bool, np.bool_, str, Decimal)):
            return None
        if self.kind == "integer":
            if not isinstance(value, (int, np.integer)):
                return None
            number: float | int = int(value)
        else:
            if not isinstance(value, numbers.Real):
                return None
            try:
                with np.errstate(over="ignore"):
                    number = float(value)
            except OverflowError:
                return None
            if not math.isfinite(number):
                return None
        if not self.low <= number <= self.high:
            return None
        if self.weight and 0 < number < 1e-6:
            return None
        return number


NUMBER = Rule("number", -1.0, 1.0)
LIMIT = Rule("integer", 1, 1_000_000)


def _plain(result: Any) -> Any:
    """Comparable form of a result (lists of pydantic hits, a pool, ...)."""
    if isinstance(result, list):
        return [r.model_dump() if hasattr(r, "model_dump") else r for r in result]
    return result


Call = Callable[[Any], Awaitable[Any]]


def _calls(pool: dv.Pool) -> dict[tuple[str, str], tuple[Rule, Call]]:
    deal = dv.search_deal_embeddings
    hybrid = dv.hybrid_search_deal_embeddings
    return {
        ("search_deal_embeddings", "threshold"): (NUMBER, lambda v: deal(pool, QUERY, qualification_id=Q, threshold=v)),
        ("search_deal_embeddings", "limit"): (LIMIT, lambda v: deal(pool, QUERY, qualification_id=Q, limit=v)),
        ("search_deal_embeddings", "min_confidence"): (
            Rule("integer", *INT32),
            lambda v: deal(pool, QUERY, qualification_id=Q, threshold=-1.0, min_confidence=v),
        ),
        ("search_deal_embeddings", "mmr_lambda"): (
            Rule("number", 0.0, 1.0),
            lambda v: deal(pool, QUERY, qualification_id=Q, threshold=-1.0, limit=3, mmr_lambda=v),
        ),
        ("search_deal_embeddings", "mmr_candidates"): (
            Rule("integer", 3, 1000),
            lambda v: deal(pool, QUERY, qualification_id=Q, threshold=-1.0, limit=3, mmr_lambda=0.5, mmr_candidates=v),
        ),
        ("search_raw_chunks", "threshold"): (
            NUMBER,
            lambda v: dv.search_raw_chunks(pool, QUERY, pre_qualification_id=PQ, threshold=v),
        ),
        ("search_raw_chunks", "limit"): (
            LIMIT,
            lambda v: dv.search_raw_chunks(pool, QUERY, pre_qualification_id=PQ, threshold=-1.0, limit=v),
        ),
        ("search_similar", "threshold"): (
            NUMBER,
            lambda v: dv.search_similar(pool, QUERY, qualification_id=Q, threshold=v),
        ),
        ("search_similar", "limit"): (
            Rule("integer", 1, 50),
            lambda v: dv.search_similar(pool, QUERY, pre_qualification_id=PQ, threshold=-1.0, limit=v),
        ),
        ("list_deal_chunks", "limit"): (LIMIT, lambda v: dv.list_deal_chunks(pool, qualification_id=Q, limit=v)),
        ("list_deal_chunks", "min_confidence"): (
            Rule("integer", *INT32),
            lambda v: dv.list_deal_chunks(pool, qualification_id=Q, min_confidence=v),
        ),
        ("find_similar_pre_qualifications", "min_similarity_percent"): (
            Rule("number", 0.0, 100.0),
            lambda v: dv.find_similar_pre_qualifications(pool, QUERY, min_similarity_percent=v, limit=None),
        ),
        ("find_similar_pre_qualifications", "limit"): (
            LIMIT,
            lambda v: dv.find_similar_pre_qualifications(pool, QUERY, min_similarity_percent=0, limit=v),
        ),
        ("hybrid_search_deal_embeddings", "limit"): (
            Rule("integer", 1, 1000),  # at most candidates (1000 here)
            lambda v: hybrid(pool, "Angebot", QUERY, qualification_id=Q, limit=v, candidates=1000),
        ),
        ("hybrid_search_deal_embeddings", "threshold"): (
            NUMBER,
            lambda v: hybrid(pool, "Angebot", QUERY, qualification_id=Q, threshold=v),
        ),
        ("hybrid_search_deal_embeddings", "rrf_k"): (
            Rule("number", 0.0, 1e6),
            lambda v: hybrid(pool, "Angebot", QUERY, qualification_id=Q, rrf_k=v),
        ),
        ("hybrid_search_deal_embeddings", "text_weight"): (
            Rule("number", 0.0, 1e6, weight=True),
            lambda v: hybrid(pool, "Angebot", QUERY, qualification_id=Q, text_weight=v),
        ),
        ("hybrid_search_deal_embeddings", "vector_weight"): (
            Rule("number", 0.0, 1e6, weight=True),
            lambda v: hybrid(pool, "Angebot", QUERY, qualification_id=Q, vector_weight=v),
        ),
        ("hybrid_search_deal_embeddings", "candidates"): (
            Rule("integer", 5, 1000),
            lambda v: hybrid(pool, "Angebot", QUERY, qualification_id=Q, candidates=v),
        ),
        ("hybrid_search_deal_embeddings", "mmr_lambda"): (
            Rule("number", 0.0, 1.0),
            lambda v: hybrid(pool, "Angebot", QUERY, qualification_id=Q, mmr_lambda=v),
        ),
        ("hybrid_search_raw_chunks", "rrf_k"): (
            Rule("number", 0.0, 1e6),
            lambda v: dv.hybrid_search_raw_chunks(pool, "Rohtext", QUERY, pre_qualification_id=PQ, rrf_k=v),
        ),
    }


async def _check(rule: Rule, call: Call, name: str, value: Any) -> None:
    want = rule.canonical(value)
    try:
        got = _plain(await call(value))
    except dv.InvalidArgumentError as exc:
        # a limit beyond the hybrid search's candidates is refused as "candidates must be >= limit"
        assert exc.argument == name or (name, exc.argument) == ("limit", "candidates"), (name, value, exc)
        assert want is None, f"{name}={value!r} ({type(value).__name__}) lies in range but was refused: {exc}"
        return
    assert want is not None, f"{name}={value!r} ({type(value).__name__}) was accepted"
    assert got == _plain(await call(want)), (name, value)


@pytest.fixture(scope="module")
async def pool(dhv_module_pool: dv.Pool) -> dv.Pool:
    pool = dhv_module_pool
    await seed_owners(pool, pre_qualification_ids=[PQ, "pq-a", "pq-b"], qualification_ids=[Q])
    await dv.insert_deal_chunks(pool, [
        dv.DealChunk(qualification_id=Q, agent_name=f"agent-{i % 2}", chunk_type="text", chunk_index=i,
                     content=f"Angebot Nummer {i}", confidence=10 * i, embedding=RNG.standard_normal(DIMS))
        for i in range(8)
    ])  # fmt: skip
    await dv.replace_raw_chunks(pool, PQ, [
        dv.RawChunk(chunk_index=i, content=f"Rohtext {i}", token_count=2, embedding=RNG.standard_normal(DIMS))
        for i in range(5)
    ])  # fmt: skip
    for pq in ("pq-a", "pq-b", PQ):
        await dv.set_description_embedding(pool, pq, QUERY + RNG.standard_normal(DIMS).astype(np.float32))
    return pool


PARAMS = [
    ("search_deal_embeddings", "threshold"), ("search_deal_embeddings", "limit"),
    ("search_deal_embeddings", "min_confidence"), ("search_deal_embeddings", "mmr_lambda"),
    ("search_deal_embeddings", "mmr_candidates"), ("search_raw_chunks", "threshold"), ("search_raw_chunks", "limit"),
    ("search_similar", "threshold"), ("search_similar", "limit"), ("list_deal_chunks", "limit"),
    ("list_deal_chunks", "min_confidence"), ("find_similar_pre_qualifications", "min_similarity_percent"),
    ("find_similar_pre_qualifications", "limit"), ("hybrid_search_deal_embeddings", "limit"),
    ("hybrid_search_deal_embeddings", "threshold"), ("hybrid_search_deal_embeddings", "rrf_k"),
    ("hybrid_search_deal_embeddings", "text_weight"), ("hybrid_search_deal_embeddings", "vector_weight"),
    ("hybrid_search_deal_embeddings", "candidates"), ("hybrid_search_deal_embeddings", "mmr_lambda"),
    ("hybrid_search_raw_chunks", "rrf_k"),
]  # fmt: skip


@pytest.mark.parametrize(("function", "name"), PARAMS)
async def test_weird_values_of_every_search_parameter(pool: dv.Pool, function: str, name: str) -> None:
    rule, call = _calls(pool)[(function, name)]
    optional = name in ("min_confidence", "mmr_lambda", "mmr_candidates") or (function, name) in (
        ("find_similar_pre_qualifications", "limit"),
        ("list_deal_chunks", "limit"),
        ("hybrid_search_deal_embeddings", "threshold"),
    )
    for value in WEIRD:
        if value is None and optional:
            continue  # None is a meaningful value there (off / no limit)
        await _check(rule, call, name, value)


def _numpy_scalars() -> st.SearchStrategy[Any]:
    dtypes = [np.dtype(t) for t in ("f2", "f4", "f8", "g", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "?")]
    return st.sampled_from(dtypes).flatmap(lambda d: hnp.from_dtype(d).map(d.type))


VALUES = st.one_of(
    st.integers(min_value=-(10**400), max_value=10**400),
    st.integers(min_value=-3, max_value=1100),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1.5, max_value=101.0),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.fractions(),
    st.booleans(),
    _numpy_scalars(),
)


@settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(param=st.sampled_from(PARAMS), value=VALUES)
async def test_any_numeric_value_is_refused_by_name_or_answered_correctly(
    pool: dv.Pool, param: tuple[str, str], value: Any
) -> None:
    rule, call = _calls(pool)[param]
    await _check(rule, call, param[1], value)


# --------------------------------------------------------------------------- pool options, loader, dimensions


POOL_RULES = {
    "min_size": Rule("integer", 0, 10_000),
    "max_size": Rule("integer", 1, 10_000),
    "statement_cache_size": Rule("integer", 0, 1_000_000),
    "connect_timeout": Rule("number", 1e-300, 1e7),
    "acquire_timeout": Rule("number", 1e-300, 1e7),
    "command_timeout": Rule("number", 1e-300, 1e7),
    "max_inactive_connection_lifetime": Rule("number", 0.0, 1e7),
}


@pytest.mark.parametrize("name", sorted(POOL_RULES))
async def test_pool_options(dhv_database_url: str, name: str) -> None:
    rule = POOL_RULES[name]
    for value in WEIRD:
        if value is None:
            continue  # None: the settings' default, or no timeout
        want = rule.canonical(value)
        if name.endswith("timeout") and want is not None and want < 0.5:
            continue  # a valid but too short timeout only proves the timeout works
        try:
            pool = await dv.create_pool(dhv_database_url, **{name: value, "min_size": 1} if name != "min_size"
                                        else {name: value, "max_size": 4})  # fmt: skip
        except dv.InvalidArgumentError as exc:
            assert exc.argument == name and want is None, (name, value, exc)
            continue
        try:
            assert want is not None, f"{name}={value!r} ({type(value).__name__}) was accepted"
            assert await pool.fetchval("SELECT 1") == 1
        finally:
            await dv.close_pool(pool)


@pytest.fixture(scope="module")
def legacy_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    summary = build_legacy_database(tmp_path_factory.mktemp("numeric") / "local.db", LegacyDatasetSpec.tiny(dims=DIMS))
    return summary.path


LOADER_VALUES = [
    10**400,
    2**63,
    Decimal("2"),
    Fraction(2),
    np.float32(2),
    2.0,
    np.int8(2),
    np.uint64(2),
    True,
    -1,
    0,
    2,
]


@pytest.mark.parametrize("function", ["migrate_sqlite", "verify_migration"])
@pytest.mark.parametrize("name", ["batch_size", "workers"])
async def test_loader_sizes(dhv_database_url: str, legacy_file: Path, function: str, name: str) -> None:
    rule = Rule("integer", 1, 1_000_000) if name == "batch_size" else Rule("integer", 0, 256)
    run = getattr(dv, function)
    if function == "verify_migration":  # something to compare
        assert (await dv.migrate_sqlite(legacy_file, dhv_database_url, tables=["business_units"])).ok
    for value in LOADER_VALUES:
        want = rule.canonical(value)
        try:
            report = await run(legacy_file, dhv_database_url, tables=["business_units"], **{name: value})
        except dv.InvalidArgumentError as exc:
            assert exc.argument == name and want is None, (name, value, exc)
            continue
        assert want is not None, (name, value)
        assert report.ok


@pytest.mark.parametrize("parse", ["as_embedding", "parse_json_embedding", "parse_blob_embedding"])
def test_dimensions(parse: str) -> None:
    vector = RNG.standard_normal(8).astype(np.float32)
    argument = {"as_embedding": vector, "parse_json_embedding": "[" + ",".join(map(str, vector.tolist())) + "]",
                "parse_blob_embedding": vector.astype("<f4").tobytes()}[parse]  # fmt: skip
    rule = Rule("integer", 1, 16000)
    for value in [*WEIRD, 8, np.int16(8), np.uint64(8)]:
        want = rule.canonical(value)
        try:
            got = getattr(dv, parse)(argument, dimensions=value)
        except dv.InvalidArgumentError as exc:
            assert exc.argument == "dimensions" and want is None, (value, exc)
            continue
        except dv.InvalidEmbeddingError as exc:  # a valid count that is not the vector's
            assert want is not None and want != 8 and exc.rule == "dimensions", (value, exc)
            continue
        assert want == 8 and np.array_equal(got, vector), value
