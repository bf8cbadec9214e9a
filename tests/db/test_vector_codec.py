"""The library's own binary codecs for ``vector`` / ``halfvec`` (no ``pgvector`` package needed).

Checked against the server: what it parses from our binary encoding equals what it parses
from the text form, and what we decode equals the server's text output.
"""

from __future__ import annotations

import numpy as np
import pytest

import dealhunter_vectors as dv
from dealhunter_vectors.db.codecs import (
    HalfVector,
    Vector,
    decode_halfvec,
    decode_vector,
    encode_halfvec,
    encode_vector,
)
from dealhunter_vectors.embeddings import to_pgvector_text


def test_wire_format_by_hand() -> None:
    v = np.array([1.0, -2.5, 0.0], dtype=np.float32)
    assert encode_vector(v) == b"\x00\x03\x00\x00" + v.astype(">f4").tobytes()
    assert encode_halfvec(v) == b"\x00\x03\x00\x00" + v.astype(">f2").tobytes()
    assert decode_vector(encode_vector(v)).tobytes() == v.tobytes()
    assert decode_halfvec(encode_halfvec(v)).dtype == np.float32
    # lists, tuples, float64 arrays and wrappers encode alike
    for value in ([1.0, -2.5, 0.0], (1.0, -2.5, 0.0), v.astype(np.float64), Vector(v)):
        assert encode_vector(value) == encode_vector(v)
    assert encode_halfvec(HalfVector(v)) == encode_halfvec(v)


@pytest.mark.parametrize("bad", [np.zeros((2, 3), dtype=np.float32), np.zeros(0, dtype=np.float32), 1.5])
def test_shape_errors_are_value_errors(bad: object) -> None:
    with pytest.raises(ValueError, match="vector"):
        encode_vector(bad)


def test_wrappers_are_not_iterable() -> None:
    # asyncpg iterates into any iterable element of an array parameter: a wrapper is one value
    w = Vector(np.ones(3, dtype=np.float32))
    with pytest.raises(TypeError):
        iter(w)  # type: ignore[call-overload]
    assert "dim=3" in repr(w) and "dim=3" in repr(HalfVector([1.0, 2.0, 3.0]))


async def test_server_agrees_with_our_encoding(dhv_pool: dv.Pool) -> None:
    rng = np.random.default_rng(11)
    v = rng.standard_normal(3072).astype(np.float32)
    v[:3] = [np.float32(1e-30), np.float32(-3.4e38), 0.0]
    text = to_pgvector_text(v)
    # our binary encoding and the text form parse to the same server value
    assert await dhv_pool.fetchval("SELECT $1::vector(3072) = $2::text::vector(3072)", v, text)
    # decoding the server's value gives the float32 bits back
    got = await dhv_pool.fetchval("SELECT $1::text::vector(3072)", text)
    assert got.dtype == np.float32 and got.tobytes() == v.tobytes()
    # halfvec: our round-to-nearest encoding equals the server's cast of the float32 value
    h = (v[3:] / np.linalg.norm(v[3:])).astype(np.float32)
    assert await dhv_pool.fetchval("SELECT $1::halfvec(3069) = ($2::vector(3069))::halfvec(3069)", HalfVector(h), h)
    back = await dhv_pool.fetchval("SELECT ($1::vector(3069))::halfvec(3069)", h)
    np.testing.assert_array_equal(back, h.astype(np.float16).astype(np.float32))


async def test_vector_arrays_take_wrapped_elements(dhv_pool: dv.Pool) -> None:
    a = np.arange(1, 4, dtype=np.float32)
    b = np.arange(4, 7, dtype=np.float32)
    rows = await dhv_pool.fetch(
        "SELECT v::text AS t FROM unnest($1::vector[]) WITH ORDINALITY AS u(v, o) ORDER BY o", [Vector(a), Vector(b)]
    )
    assert [r["t"] for r in rows] == ["[1,2,3]", "[4,5,6]"]
    halves = await dhv_pool.fetchval("SELECT array_length($1::halfvec[], 1)", [HalfVector(a), HalfVector(b)])
    assert halves == 2


def test_pgvector_package_objects_are_accepted_when_installed() -> None:
    pytest.importorskip("pgvector")
    try:  # pgvector >= 0.4
        from pgvector import HalfVector as PgHalfVector
        from pgvector import Vector as PgVector
    except ImportError:  # 0.3.x, which langchain-postgres pins (a namespace package: classes in pgvector.utils)
        from pgvector.utils import HalfVector as PgHalfVector  # type: ignore[no-redef]
        from pgvector.utils import Vector as PgVector  # type: ignore[no-redef]
    v = np.array([0.5, 1.5], dtype=np.float32)
    assert encode_vector(PgVector(v)) == encode_vector(v)
    assert encode_halfvec(PgHalfVector(v)) == encode_halfvec(v)


def test_library_does_not_need_the_pgvector_package() -> None:
    import ast
    from pathlib import Path

    root = Path(dv.__file__).parent
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and node.level == 0
                else []
            )
            assert not any(n == "pgvector" or n.startswith("pgvector.") for n in names), f"{path} imports pgvector"
