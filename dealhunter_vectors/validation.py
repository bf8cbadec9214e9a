"""Validation of public arguments and stored values, in Python, before anything reaches the server.

Every check raises :class:`~dealhunter_vectors.errors.InvalidArgumentError` (a
``ValueError``) whose message starts with the argument's name. The rules:

* integers are ``int`` or numpy integers, never ``bool`` (``limit=True`` is an error) and
  never floats (``limit=5.0`` is an error); values a PostgreSQL ``integer`` receives must
  lie in int32; ``limit`` lies in ``[1, MAX_LIMIT]``;
* flags are ``bool`` (or ``numpy.bool_``) only: ``inclusive=1`` is an error;
* numbers (thresholds, percents, weights, timeouts) are real (``int``, ``float``,
  ``Fraction``, numpy numbers), finite, within float64 and within their range; ``bool`` and
  ``Decimal`` are not accepted;
* texts (ids, agent names, tech stack, categories) are ``str`` without NUL characters and
  without lone surrogates (PostgreSQL ``text`` can hold neither);
* text lists are a ``str`` (one item) or a list / tuple / set of texts; a numpy array,
  a mapping or bytes is an error.

Query embeddings are checked by :func:`dealhunter_vectors.embeddings.as_embedding`
(``InvalidEmbeddingError``, also a ``ValueError``).

The searches (``search/_args.py``) and the write paths (:mod:`dealhunter_vectors.writes`)
build on these rules.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any, Final

import numpy as np

from .errors import InvalidArgumentError

INT32_MIN: Final = -(2**31)
INT32_MAX: Final = 2**31 - 1
MAX_LIMIT: Final = 1_000_000
"""Largest ``limit`` of any search or listing (so every derived server setting, e.g.
``hnsw.max_scan_tuples = 4 x (limit + 8)``, stays inside its int32 range)."""


def _kind(value: object) -> str:
    return type(value).__name__


def integer(value: Any, name: str, *, minimum: int = INT32_MIN, maximum: int = INT32_MAX) -> int:
    """An integer in ``[minimum, maximum]`` (int32 by default); bool and floats are rejected."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise InvalidArgumentError(name, f"must be an integer, got {_kind(value)}")
    number = int(value)
    if not (minimum <= number <= maximum):
        raise InvalidArgumentError(name, f"must lie in [{minimum}, {maximum}], got {number}")
    return number


def optional_integer(value: Any, name: str, *, minimum: int = INT32_MIN, maximum: int = INT32_MAX) -> int | None:
    """:func:`integer` or None."""
    return None if value is None else integer(value, name, minimum=minimum, maximum=maximum)


def limit(value: Any, name: str = "limit", *, maximum: int = MAX_LIMIT) -> int:
    """A row limit in ``[1, maximum]``."""
    return integer(value, name, minimum=1, maximum=maximum)


def optional_limit(value: Any, name: str = "limit", *, maximum: int = MAX_LIMIT) -> int | None:
    """:func:`limit` or None (no limit)."""
    return None if value is None else limit(value, name, maximum=maximum)


def flag(value: Any, name: str) -> bool:
    """A ``bool`` (``numpy.bool_`` accepted); 0/1, strings and None are rejected."""
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidArgumentError(name, f"must be True or False, got {_kind(value)}")
    return bool(value)


def optional_flag(value: Any, name: str) -> bool | None:
    """:func:`flag` or None."""
    return None if value is None else flag(value, name)


def number(value: Any, name: str, *, minimum: float, maximum: float) -> float:
    """A finite real number in ``[minimum, maximum]``, as a float.

    Accepted: ``int``, ``float``, ``fractions.Fraction``, numpy integers and floats (any
    ``numbers.Real`` but bool). Rejected: bool, ``Decimal`` (not a ``numbers.Real``: its
    rounding to float is the caller's choice), complex, strings, NaN, infinities and values
    beyond float64 (``10**400``, a huge ``Fraction``; ``float()`` would raise
    ``OverflowError``).
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise InvalidArgumentError(
            name,
            f"must be a real number (int, float, Fraction, numpy) in [{minimum:g}, {maximum:g}], got {_kind(value)}",
        )
    try:
        if isinstance(value, np.floating):
            with np.errstate(over="ignore"):  # a long double beyond float64 becomes inf (rejected below)
                result = float(value)
        else:
            result = float(value)
    except (OverflowError, ValueError, TypeError):
        raise InvalidArgumentError(
            name, f"must lie in [{minimum:g}, {maximum:g}], got a value of type {_kind(value)} beyond the float range"
        ) from None
    if not math.isfinite(result) or not (minimum <= result <= maximum):
        shown = repr(value) if len(repr(value)) <= 40 else f"a {_kind(value)} of {len(repr(value))} characters"
        raise InvalidArgumentError(name, f"must lie in [{minimum:g}, {maximum:g}], got {shown}")
    return result


def text(value: Any, name: str) -> str:
    """A ``str`` that PostgreSQL ``text`` can hold (no NUL, valid UTF-8: no lone surrogates)."""
    if not isinstance(value, str):
        raise InvalidArgumentError(name, f"must be a string, got {_kind(value)}")
    if "\x00" in value:
        raise InvalidArgumentError(name, f"contains a NUL character at index {value.index(chr(0))}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidArgumentError(name, f"is not valid Unicode text ({exc.reason} at index {exc.start})") from None
    return str(value)  # a numpy str_ becomes a plain str


def optional_text(value: Any, name: str) -> str | None:
    """:func:`text` or None."""
    return None if value is None else text(value, name)


def text_list(value: Any, name: str) -> list[str] | None:
    """None, one ``str`` or a list / tuple / set of texts -> a list (or None)."""
    if value is None:
        return None
    if isinstance(value, str):
        return [text(value, name)]
    if not isinstance(value, (list, tuple, set, frozenset)):
        raise InvalidArgumentError(name, f"must be a string or a list of strings, got {_kind(value)}")
    items: Iterable[Any] = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
    return [text(item, f"{name}[{i}]") for i, item in enumerate(items)]
