"""The proven error bound of the half-precision prefilter of the owner-scoped searches.

``|half distance - exact distance| <= HALF_DISTANCE_ERROR_BOUND`` for every row and query
whose norm lies in :data:`HALF_NORM_RANGE`. The derivation (half rounding of both unit
directions plus pgvector's float32 sums over 3072 terms) is in docs/design.md, section
"Owner-scoped search: the error bound"; ``tests/db/test_inline_halfvec.py`` checks it against
the server. The statements in ``sql/deal_search.sql`` and ``sql/raw_search.sql`` carry its
value as a literal (``tests/test_architecture.py`` checks they agree).
"""

from __future__ import annotations

import math
from typing import Final

HALF_DIMENSIONS: Final = 3072
"""Dimensions of the ``embedding_half`` columns (migration 004)."""
_HALF_UNIT_ROUNDOFF: Final = 2.0**-11  # round to nearest, normal half values
_HALF_SUBNORMAL_ERROR: Final = 2.0**-25  # absolute, |x| < 2^-14 (half subnormals, spacing 2^-24)
_FLOAT32_UNIT_ROUNDOFF: Final = 2.0**-24
_GAMMA: Final = HALF_DIMENSIONS * _FLOAT32_UNIT_ROUNDOFF / (1 - HALF_DIMENSIONS * _FLOAT32_UNIT_ROUNDOFF)
HALF_DIRECTION_ANGLE: Final = math.asin(
    _HALF_UNIT_ROUNDOFF + _HALF_SUBNORMAL_ERROR * math.sqrt(HALF_DIMENSIONS) * (1 + 2.0**-9)
) + math.asin(2 * _FLOAT32_UNIT_ROUNDOFF)
"""Largest angle between a vector and its half copy ``l2_normalize(x)::halfvec`` (step 1)."""
COSINE_ARITHMETIC_ERROR: Final = 2 * _GAMMA / (1 - _GAMMA)
"""Largest error of one pgvector cosine (float32 sums over 3072 terms) against the true cosine (step 3)."""
HALF_DISTANCE_ERROR_BOUND: Final = 2 * HALF_DIRECTION_ANGLE + 2 * COSINE_ARITHMETIC_ERROR + 1e-9
"""Proven bound on ``|half distance - exact distance|`` for rows and queries with a half copy (~1.71e-3)."""
HALF_NORM_RANGE: Final = (1e-12, 1e15)
"""Norms with a half copy (migration 004); outside it pgvector's float32 arithmetic under- or overflows."""
