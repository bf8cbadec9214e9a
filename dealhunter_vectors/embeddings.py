"""Embedding validation and conversion: one set of rules for queries, writes and the loader.

An embedding must have exactly the configured number of dimensions, finite values,
values that fit half precision (``|x| <= 65504``, so the ``halfvec`` index expression
never fails) and a Euclidean norm in ``[MIN_NORM, MAX_NORM]`` = ``[1e-12, 1e15]``.

Why a norm range (not just "non-zero"): pgvector computes ``<=>`` with float32
accumulators (``sum a_i*b_i``, ``sum a_i^2``, ``sum b_i^2``). For a vector whose components
are around 1e-21..1e-30 the float32 squares underflow, the float32 norm becomes 0 and
``dot / 0`` is infinite, so such a row scored 1.0 (or -1) against everything. Inside
``[1e-12, 1e15]`` every square sum stays far inside the float32 normal range (>= 1e-24,
<= 1e30, limits 1.2e-38 and 3.4e38), so the relative error of pgvector's cosine is the
ordinary float32 rounding (< 1e-6 at 3072 dimensions). It is the same range in which
migration 004 stores the half-precision copy, so an accepted row always has one.
The norm is computed in float64 on the float32 values that will be stored. Lists, tuples and numpy arrays of any
float (or integer) dtype are accepted; the result is a C-contiguous ``float32``
array, which pgvector's binary codec sends as is.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import orjson
import simdjson

from .errors import InvalidArgumentError, InvalidEmbeddingError

DEFAULT_DIMENSIONS: Final = 3072
HALF_MAX: Final = 65504.0
"""Largest finite IEEE half-precision value; pgvector's halfvec rejects larger magnitudes."""
MIN_NORM: Final = 1e-12
"""Smallest accepted Euclidean norm (below it pgvector's float32 sums lose the vector)."""
MAX_NORM: Final = 1e15
"""Largest accepted Euclidean norm (the upper end of migration 004's half-copy range)."""

Float32Array = npt.NDArray[np.float32]
_NUMBER_TYPES: Final = frozenset({int, float})


_KIND_NAMES = {
    "U": "text",
    "S": "bytes",
    "O": "mixed or non-numeric values",
    "b": "booleans",
    "c": "complex numbers",
    "M": "dates",
    "m": "durations",
    "V": "raw bytes",
}
"""How a rejected array's values are named in messages (never a numpy dtype code like ``<U1``)."""


MAX_DIMENSIONS: Final = 16000
"""pgvector's largest ``vector`` dimension count."""


def check_dimensions(value: Any) -> int:
    """The ``dimensions`` argument: an ``int`` (or numpy integer, not bool) in ``[1, MAX_DIMENSIONS]``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise InvalidArgumentError("dimensions", f"must be an integer, got {type(value).__name__}")
    if not 1 <= value <= MAX_DIMENSIONS:
        raise InvalidArgumentError("dimensions", f"must lie in [1, {MAX_DIMENSIONS}], got {int(value)}")
    return int(value)


def as_embedding(
    value: Any,
    *,
    dimensions: int = DEFAULT_DIMENSIONS,
    where: str | None = None,
) -> Float32Array:
    """Validate *value* and return it as a 1-d float32 array.

    Raises :class:`InvalidEmbeddingError` naming the rule that failed (and *where*,
    e.g. ``"deal_embeddings id=abc column=embedding"``).
    """
    if type(dimensions) is not int:  # the hot path passes the settings' int: one type check
        dimensions = check_dimensions(dimensions)
    elif not 1 <= dimensions <= MAX_DIMENSIONS:
        check_dimensions(dimensions)
    if isinstance(value, (str, bytes, bytearray, memoryview)) or value is None:
        raise InvalidEmbeddingError("type", f"expected a sequence of numbers, got {type(value).__name__}", where=where)
    if isinstance(value, np.ma.MaskedArray):
        if np.ma.is_masked(value):
            raise InvalidEmbeddingError("type", "a numpy masked array with masked values", where=where)
        value = np.ma.getdata(value)
    if isinstance(value, np.ndarray):
        arr = value
    else:
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError) as exc:
            raise InvalidEmbeddingError("type", f"not a sequence of numbers ({exc})", where=where) from None
    if arr.ndim != 1:
        raise InvalidEmbeddingError("type", f"expected a 1-d vector, got shape {arr.shape}", where=where)
    if arr.dtype.kind not in "fiu" or arr.dtype == np.bool_:
        raise InvalidEmbeddingError(
            "type", f"expected numbers, got {_KIND_NAMES.get(arr.dtype.kind, 'other values')}", where=where
        )
    if arr.shape[0] != dimensions:
        raise InvalidEmbeddingError("dimensions", f"expected {dimensions} dimensions, got {arr.shape[0]}", where=where)
    if arr.dtype == np.float32:
        # Fast path (every query of the search hot path): one pass for "finite and within
        # half range" (NaN fails the comparison), no float64 copy; anything else takes the
        # general path below for its precise error.
        top = float(np.abs(arr).max())
        if top <= HALF_MAX:
            out = np.ascontiguousarray(arr)
            if not top > 0.0:
                raise InvalidEmbeddingError(
                    "zero_norm", "the vector has zero norm; cosine similarity is undefined", where=where, norm=0.0
                )
            check_norm(out, where=where)
            return out
    wide = arr.astype(np.float64, copy=False)
    if not np.isfinite(wide).all():
        bad = int(np.flatnonzero(~np.isfinite(wide))[0])
        raise InvalidEmbeddingError(
            "finite", f"value at index {bad} is {float(wide[bad])!r} (NaN/Infinity not allowed)", where=where
        )
    if np.abs(wide).max(initial=0.0) > HALF_MAX:
        bad = int(np.flatnonzero(np.abs(wide) > HALF_MAX)[0])
        raise InvalidEmbeddingError(
            "half_precision_range",
            f"value at index {bad} is {float(wide[bad])!r}, beyond half precision (|x| <= {HALF_MAX:g})",
            where=where,
        )
    out = np.ascontiguousarray(arr, dtype=np.float32)
    # The norm is checked on the float32 values that will be stored: a float64 vector of
    # tiny values can underflow to all zeros in float32.
    if not np.any(out):
        raise InvalidEmbeddingError(
            "zero_norm", "the vector has zero norm; cosine similarity is undefined", where=where, norm=0.0
        )
    check_norm(out, where=where)
    return out


def embedding_norm(vec: Float32Array) -> float:
    """The Euclidean norm of *vec*, computed in float64 (no under- or overflow)."""
    wide = vec.astype(np.float64)
    return float(np.sqrt(np.dot(wide, wide)))


def check_norm(vec: Float32Array, *, where: str | None = None) -> float:
    """Raise ``InvalidEmbeddingError`` (rule ``"norm_range"``) unless the norm lies in the accepted range.

    Returns the norm. The message carries the norm (``%.3g``) and the range.
    """
    norm = embedding_norm(vec)
    if not (MIN_NORM <= norm <= MAX_NORM):
        raise InvalidEmbeddingError(
            "norm_range",
            f"the vector's norm {norm:.3g} lies outside [{MIN_NORM:g}, {MAX_NORM:g}]"
            " (pgvector's float32 arithmetic cannot score it exactly)",
            where=where,
            norm=norm,
        )
    return norm


_simdjson = threading.local()


def _parse_number_array(text: str | bytes) -> npt.NDArray[np.float64] | None:
    """The numbers of a flat JSON array of numbers, parsed by simdjson straight into float64
    (no Python float per element, ~2x faster than ``orjson.loads`` + ``np.array``); ``None``
    for anything else, which the checked path then parses and names.

    simdjson's ``as_buffer`` flattens nested arrays, so a text with a second ``[`` is left to
    the checked path; one parser per thread (a parser is not thread-safe).
    """
    try:
        data = text.encode() if isinstance(text, str) else text
    except UnicodeEncodeError:  # a lone surrogate: not JSON text
        return None
    first = data.find(b"[")
    if first < 0 or data.find(b"[", first + 1) >= 0:  # no array, or a nested one (memchr: ~1 us)
        return None
    parser = getattr(_simdjson, "parser", None)
    if parser is None:
        parser = _simdjson.parser = simdjson.Parser()
    try:
        doc = parser.parse(data)
        try:
            if not isinstance(doc, simdjson.Array):
                return None
            buffer = doc.as_buffer(of_type="d")
        finally:
            del doc
    except (ValueError, TypeError, RuntimeError):  # invalid JSON, a number beyond 64 bits, a non-number
        return None
    return np.frombuffer(buffer, dtype=np.float64)


def parse_json_embedding(
    text: str | bytes,
    *,
    dimensions: int = DEFAULT_DIMENSIONS,
    where: str | None = None,
) -> Float32Array:
    """Parse the legacy JSON-array text form (``"[0.1,-0.2,...]"``) and validate it.

    Non-numbers (strings, nulls, booleans, nested arrays) are an ``InvalidEmbeddingError``
    with rule ``"type"``; invalid JSON likewise with a ``"json"`` rule.
    """
    dimensions = check_dimensions(dimensions)
    fast = _parse_number_array(text)
    if fast is not None and fast.shape[0] == dimensions:
        try:
            return as_embedding(fast, dimensions=dimensions, where=where)
        except InvalidEmbeddingError:
            pass  # the checked path below names the problem
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidEmbeddingError("json", f"invalid JSON ({exc})", where=where) from None
    if not isinstance(parsed, list):
        raise InvalidEmbeddingError("type", f"expected a JSON array, got {type(parsed).__name__}", where=where)
    # Fast path: one C-level pass over the element types (bool is not int here, so
    # true/false are caught too). Only when it fails, find the element to name.
    if not set(map(type, parsed)) <= _NUMBER_TYPES:
        for i, item in enumerate(parsed):
            if type(item) not in _NUMBER_TYPES:
                raise InvalidEmbeddingError("type", f"element {i} is {type(item).__name__}, not a number", where=where)
    if len(parsed) != dimensions:
        raise InvalidEmbeddingError("dimensions", f"expected {dimensions} dimensions, got {len(parsed)}", where=where)
    try:
        arr = np.array(parsed, dtype=np.float64)
    except OverflowError:  # an integer beyond float64
        raise InvalidEmbeddingError("finite", "a value overflows float64", where=where) from None
    return as_embedding(arr, dimensions=dimensions, where=where)


def parse_blob_embedding(
    blob: bytes,
    *,
    dimensions: int = DEFAULT_DIMENSIONS,
    where: str | None = None,
) -> Float32Array:
    """Parse sqlite-vec's float32 little-endian BLOB form and validate it."""
    dimensions = check_dimensions(dimensions)
    if len(blob) % 4:
        raise InvalidEmbeddingError("type", f"BLOB of {len(blob)} bytes is not a float32 array", where=where)
    arr = np.frombuffer(blob, dtype="<f4").astype(np.float32)
    return as_embedding(arr, dimensions=dimensions, where=where)


def to_pgvector_text(vec: Sequence[float] | Float32Array) -> str:
    """The text form pgvector accepts (``[v1,v2,...]``), with float32 shortest round-trip digits."""
    arr = np.asarray(vec, dtype=np.float32)
    return "[" + ",".join(np.format_float_positional(x, unique=True, trim="-") for x in arr) + "]"
