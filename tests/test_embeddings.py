"""The embedding rules shared by queries, writes and the loader."""

from __future__ import annotations

import struct

import numpy as np
import orjson
import pytest

from dealhunter_vectors import InvalidEmbeddingError, as_embedding, parse_blob_embedding, parse_json_embedding
from dealhunter_vectors.embeddings import to_pgvector_text


def test_accepts_lists_tuples_and_any_float_dtype() -> None:
    base = np.linspace(-1, 1, 8)
    for value in (
        base.tolist(),
        tuple(base.tolist()),
        base.astype(np.float16),
        base.astype(np.float32),
        base,
        base.astype(np.longdouble),
        np.arange(1, 9),
    ):
        out = as_embedding(value, dimensions=8)
        assert out.dtype == np.float32 and out.shape == (8,) and out.flags.c_contiguous
        np.testing.assert_array_equal(out, np.asarray(value, dtype=np.float64).astype(np.float32))


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ([1.0] * 7, "dimensions"),
        ([1.0] * 9, "dimensions"),
        ([1.0] * 7 + [float("nan")], "finite"),
        ([1.0] * 7 + [float("inf")], "finite"),
        ([0.0] * 8, "zero_norm"),
        ([1e-46] * 8, "zero_norm"),  # float64 non-zero, underflows to float32 zero
        ([1.0] * 7 + [70000.0], "half_precision_range"),
        ([1.0] * 7 + [-65505.0], "half_precision_range"),
        ("[1,2,3]", "type"),
        (None, "type"),
        ([[1.0] * 8], "type"),
        (["a"] * 8, "type"),
        ([True] * 8, "type"),
    ],
)
def test_rejections_name_the_rule(value: object, rule: str) -> None:
    with pytest.raises(InvalidEmbeddingError) as info:
        as_embedding(value, dimensions=8, where="query")
    assert info.value.rule == rule
    assert str(info.value).startswith("query: ")
    assert isinstance(info.value, ValueError)


def test_half_precision_boundary_is_allowed() -> None:
    out = as_embedding([65504.0, -65504.0] + [1.0] * 6, dimensions=8)
    assert out[0] == 65504.0


def test_json_parse_is_bit_exact_float32_of_the_numbers() -> None:
    rng = np.random.default_rng(1)
    values = rng.standard_normal(3072) * 0.05
    text = orjson.dumps(values.tolist())
    out = parse_json_embedding(text)
    np.testing.assert_array_equal(out, values.astype(np.float32))


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        (b"[1,2,", "json"),
        (b'{"a":1}', "type"),
        (b"[1,2,3]", "dimensions"),
        (b'[1,2,3,4,5,6,7,"8"]', "type"),
        (b"[1,2,3,4,5,6,7,null]", "type"),
        (b"[1,2,3,4,5,6,7,true]", "type"),
        (b"[0,0,0,0,0,0,0,0]", "zero_norm"),
        (b"[1,1,1,1,1,1,1,1e300]", "half_precision_range"),
    ],
)
def test_json_rejections(text: bytes, rule: str) -> None:
    with pytest.raises(InvalidEmbeddingError) as info:
        parse_json_embedding(text, dimensions=8)
    assert info.value.rule == rule


def test_blob_form() -> None:
    values = [0.5, -1.25, 3.0, 0.0, 1.0, 2.0, 4.0, 8.0]
    blob = struct.pack("<8f", *values)
    np.testing.assert_array_equal(parse_blob_embedding(blob, dimensions=8), np.array(values, np.float32))
    with pytest.raises(InvalidEmbeddingError) as info:
        parse_blob_embedding(blob[:-1], dimensions=8)
    assert info.value.rule == "type"


def test_pgvector_text_round_trips_float32() -> None:
    v = np.random.default_rng(2).standard_normal(64).astype(np.float32)
    text = to_pgvector_text(v)
    back = np.array(orjson.loads(text), dtype=np.float64).astype(np.float32)
    np.testing.assert_array_equal(back, v)
