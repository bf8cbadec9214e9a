"""Fixtures of the write-path tests: a fresh database with owners, and embeddings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import dealhunter_vectors as dv
from dealhunter_vectors.testing import seed_owners

DIMS = 3072
Vec = Callable[[int], np.ndarray[Any, Any]]


@pytest.fixture
def vec() -> Vec:
    """``vec(seed)``: a reproducible float32 embedding."""

    def make(seed: int) -> np.ndarray[Any, Any]:
        return np.random.default_rng(seed).standard_normal(DIMS).astype(np.float32)

    return make


@pytest.fixture
async def pool(dhv_pool: dv.Pool) -> dv.Pool:
    """A fresh database with pre-qualifications pq1, pq2 (and pq-base) and qualifications q1, q2
    (both owned by pq-base)."""
    await seed_owners(dhv_pool, pre_qualification_ids=("pq1", "pq2"), qualification_ids=("q1", "q2"))
    return dhv_pool
