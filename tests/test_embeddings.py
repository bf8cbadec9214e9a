"""The embedding rules shared by queries, writes and the loader."""

from __future__ import annotations

import concurrent.futures
import json
import struct

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dealhunter_vectors import (
    InvalidEmbeddingError,
    as_embedding,
    embeddings,
    parse_blob_embedding,
    parse_json_embedding,
)
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


# --------------------------------------------------------------------------- the simdjson fast path


def _checked_path(text: bytes | str, dimensions: int) -> object:
    """parse_json_embedding's result (array or (rule, message)) with the simdjson fast path off."""
    original = embeddings._parse_number_array
    embeddings._parse_number_array = lambda _text: None  # type: ignore[assignment]
    try:
        return _outcome(text, dimensions)
    finally:
        embeddings._parse_number_array = original  # type: ignore[assignment]


def _outcome(text: bytes | str, dimensions: int) -> object:
    try:
        return parse_json_embedding(text, dimensions=dimensions).tolist()
    except InvalidEmbeddingError as exc:
        return (exc.rule, str(exc))


_ELEMENT = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.floats(min_value=-2.0, max_value=2.0),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from(["1e400", "-1e400", "1e-400", "-0.0", "-0", "0.0", "1E+2", "65504", "65505", "1.5e-45"]),
    st.sampled_from(['"1.0"', "null", "true", "[]", "[1.0]", "{}", '{"a": 1.0}']),
)


@settings(max_examples=400, deadline=None)
@given(
    elements=st.lists(_ELEMENT, min_size=0, max_size=10),
    separator=st.sampled_from([",", ", ", " ,\n"]),
    dimensions=st.sampled_from([4, 8]),
    as_text=st.booleans(),
)
def test_json_fast_path_agrees_with_the_checked_path(
    elements: list[object], separator: str, dimensions: int, as_text: bool
) -> None:
    """Values bit for bit, rejections with the same rule and message, whatever the text holds."""
    text = "[" + separator.join(e if isinstance(e, str) else repr(e) for e in elements) + "]"
    data: bytes | str = text if as_text else text.encode()
    assert _outcome(data, dimensions) == _checked_path(data, dimensions)


def test_json_fast_path_values_equal_the_standard_library_parse() -> None:
    rng = np.random.default_rng(3)
    for scale in (1e-9, 1e-6, 0.05, 1.0, 1e3):
        values = rng.standard_normal(3072) * scale
        text = json.dumps(values.tolist())
        expected = np.array(json.loads(text), dtype=np.float64).astype(np.float32)
        np.testing.assert_array_equal(parse_json_embedding(text), expected)


@pytest.mark.parametrize(
    "text",
    [
        "[[1,2,3,4,5,6,7,8]]",
        "[[1,2,3,4],[5,6,7,8]]",
        "[[1,2,3,4,5,6,7,8],[]]",
        "[1,2,3,4,5,6,[7],8]",
    ],
)
def test_a_nested_array_is_rejected_not_flattened(text: str) -> None:
    """simdjson's buffer export flattens nested arrays: such a text must still be a type error."""
    with pytest.raises(InvalidEmbeddingError) as info:
        parse_json_embedding(text, dimensions=8)
    assert info.value.rule == "type"


def test_json_parse_in_threads_and_after_rejections() -> None:
    """One parser per thread; a rejected text leaves the thread's parser usable."""
    rng = np.random.default_rng(4)
    texts = [json.dumps((rng.standard_normal(64) + 0.1).tolist()) for _ in range(40)]
    expected = [np.array(json.loads(t), dtype=np.float64).astype(np.float32) for t in texts]

    def work(offset: int) -> bool:
        for k in range(200):
            i = (k + offset) % len(texts)
            with pytest.raises(InvalidEmbeddingError):
                parse_json_embedding(texts[i][:-1], dimensions=64)  # cut: invalid JSON
            if not np.array_equal(parse_json_embedding(texts[i], dimensions=64), expected[i]):
                return False
        return True

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        assert all(pool.map(work, range(4)))


def test_a_lone_surrogate_is_a_json_error_not_a_unicode_crash() -> None:
    with pytest.raises(InvalidEmbeddingError) as info:
        parse_json_embedding("[1.0,\ud800]", dimensions=2)
    assert info.value.rule == "json"
