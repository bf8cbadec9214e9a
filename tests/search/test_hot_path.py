"""The search hot path's shortcuts give the same answers as the general code."""

from __future__ import annotations

import numpy as np
import pytest

from dealhunter_vectors.config import get_settings
from dealhunter_vectors.embeddings import HALF_MAX, as_embedding
from dealhunter_vectors.errors import InvalidEmbeddingError
from dealhunter_vectors.search.owner import query_half


def test_settings_are_cached_until_the_environment_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    first = get_settings()
    assert get_settings() is first
    monkeypatch.setenv("DEALHUNTER_EMBEDDING_DIMENSIONS", "8")
    assert get_settings().embedding_dimensions == 8
    monkeypatch.setenv("DEALHUNTER_EMBEDDING_DIMENSIONS", "9")
    assert get_settings().embedding_dimensions == 9
    monkeypatch.delenv("DEALHUNTER_EMBEDDING_DIMENSIONS")
    assert get_settings().embedding_dimensions == first.embedding_dimensions
    monkeypatch.setenv("dealhunter_pool_max_size", "7")  # another spelling: pydantic-settings ignores case
    assert get_settings().pool_max_size == 7


@pytest.mark.parametrize(
    ("bad", "rule"),
    [(np.nan, "finite"), (np.inf, "finite"), (-np.inf, "finite"), (HALF_MAX * 1.01, "half_precision_range")],
)
def test_float32_fast_path_refuses_like_the_general_path(bad: float, rule: str) -> None:
    v = np.ones(16, dtype=np.float32)
    v[5] = bad
    for value in (v, v.astype(np.float64)):  # float32: fast path; float64: general path
        with pytest.raises(InvalidEmbeddingError) as err:
            as_embedding(value, dimensions=16)
        assert err.value.rule == rule and "index 5" in str(err.value)


def test_float32_fast_path_zero_and_edges() -> None:
    with pytest.raises(InvalidEmbeddingError) as err:
        as_embedding(np.zeros(16, dtype=np.float32), dimensions=16)
    assert err.value.rule == "zero_norm"
    edge = np.full(16, -HALF_MAX, dtype=np.float32)
    assert as_embedding(edge, dimensions=16) is not None
    tiny = np.full(16, np.float32(1e-45), dtype=np.float32)  # subnormal, non-zero: norm below 1e-12
    for value in (tiny, tiny.astype(np.float64)):
        with pytest.raises(InvalidEmbeddingError) as err:
            as_embedding(value, dimensions=16)
        assert err.value.rule == "norm_range"
    strided = np.ones(32, dtype=np.float32)[::2]
    out = as_embedding(strided, dimensions=16)
    assert out.flags.c_contiguous


def test_query_half_is_the_servers_half_copy_rule() -> None:
    rng = np.random.default_rng(3)
    q = rng.standard_normal(3072).astype(np.float32) * 1e-6
    half = query_half(q)
    assert half is not None
    q64 = q.astype(np.float64)
    expected = (q64 / np.linalg.norm(q64)).astype(np.float32).astype(np.float16)
    np.testing.assert_array_equal(half.to_numpy(), expected)
    assert query_half(np.full(3072, 1e-20, dtype=np.float32)) is None  # norm below 1e-12: exact re-rank only
