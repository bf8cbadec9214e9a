"""Binary wire format of pgvector's ``vector`` and ``halfvec`` types, without the ``pgvector`` package.

pgvector's binary send/receive format (``vector_send`` / ``halfvec_send`` in pgvector's C
source): a big-endian ``int16`` dimension count, an ``int16`` that is always 0, then the
values as big-endian ``float32`` (``vector``) or IEEE ``float16`` (``halfvec``).

The library used the ``pgvector`` Python package only for this (``Vector(x).to_binary()``)
and for an opaque wrapper that asyncpg's array encoder does not iterate into. Both are a
few lines here, so the package is no dependency any more: services that also install
langchain-postgres (``pgvector<0.4``) or llama-index (``pgvector<1``) resolve.

* :class:`Vector` / :class:`HalfVector` wrap a 1-D array as *one* value. asyncpg treats any
  iterable inside a list as a sub-array, so the elements of a ``vector[]`` parameter must be
  wrapped (the searches send ``[Vector(q), ...]``). Objects of the ``pgvector`` package are
  accepted as well when it is installed (anything with ``to_numpy()``).
* Encoders accept wrappers, numpy arrays, lists and tuples of numbers; decoders return
  numpy ``float32`` arrays (``halfvec`` values widened exactly).
"""

from __future__ import annotations

import struct
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "HalfVector",
    "Vector",
    "decode_halfvec",
    "decode_vector",
    "encode_halfvec",
    "encode_vector",
]

_HEADER: Final = struct.Struct(">HH")
_MAX_DIM: Final = 16000  # pgvector's VECTOR_MAX_DIM (halfvec allows the same)


class Vector:
    """One ``vector`` value (a 1-D float32 array) that asyncpg sends as a single element."""

    __slots__ = ("_value",)

    def __init__(self, value: Any) -> None:
        self._value = _as_1d(value, np.float32)

    def to_numpy(self) -> NDArray[np.float32]:
        """The values as a 1-D numpy ``float32`` array."""
        return self._value

    def __repr__(self) -> str:
        return f"Vector(dim={self._value.shape[0]})"


class HalfVector:
    """One ``halfvec`` value (a 1-D float16 array) that asyncpg sends as a single element."""

    __slots__ = ("_value",)

    def __init__(self, value: Any) -> None:
        self._value = _as_1d(value, np.float16)

    def to_numpy(self) -> NDArray[np.float16]:
        """The values as a 1-D numpy ``float16`` array."""
        return self._value

    def __repr__(self) -> str:
        return f"HalfVector(dim={self._value.shape[0]})"


def _as_1d(value: Any, dtype: type[np.floating[Any]]) -> NDArray[Any]:
    if isinstance(value, (Vector, HalfVector)) or (not isinstance(value, np.ndarray) and hasattr(value, "to_numpy")):
        value = value.to_numpy()
    arr = np.asarray(value, dtype=dtype)
    if arr.ndim != 1:
        raise ValueError(f"a vector must be one-dimensional, got shape {arr.shape}")
    if not 1 <= arr.shape[0] <= _MAX_DIM:
        raise ValueError(f"a vector must have 1 to {_MAX_DIM} dimensions, got {arr.shape[0]}")
    return arr


def encode_vector(value: Any) -> bytes:
    """Binary ``vector``: int16 dim, int16 0, big-endian float32 values."""
    arr = _as_1d(value, np.float32)
    return _HEADER.pack(arr.shape[0], 0) + arr.astype(">f4", copy=False).tobytes()


def encode_halfvec(value: Any) -> bytes:
    """Binary ``halfvec``: int16 dim, int16 0, big-endian IEEE float16 values (round to nearest)."""
    arr = _as_1d(value, np.float16)
    return _HEADER.pack(arr.shape[0], 0) + arr.astype(">f2", copy=False).tobytes()


def decode_vector(data: bytes) -> NDArray[np.float32]:
    """A binary ``vector`` as a numpy ``float32`` array."""
    dim = int.from_bytes(data[:2], "big")
    return np.frombuffer(data, dtype=">f4", count=dim, offset=4).astype(np.float32)


def decode_halfvec(data: bytes) -> NDArray[np.float32]:
    """A binary ``halfvec`` as a numpy ``float32`` array (exact widening)."""
    dim = int.from_bytes(data[:2], "big")
    return np.frombuffer(data, dtype=">f2", count=dim, offset=4).astype(np.float32)
