"""The search statements, one ``.sql`` file each in ``search/sql/``, read once at import.

Each file is the statement as it runs (``EXPLAIN`` it as written, with ``PREPARE``). The
deal-chunk statements are written for rows owned by a qualification; :func:`owner_variant`
derives the pre-qualification form by replacing the one owner predicate, so both forms
share one text.
"""

from __future__ import annotations

from importlib import resources
from typing import Literal

OwnerColumn = Literal["qualification_id", "pre_qualification_id"]

_OWNER_PREDICATE = 'd."qualification_id" = '


def load(name: str) -> str:
    """The statement in ``search/sql/<name>.sql``."""
    return resources.files("dealhunter_vectors.search").joinpath("sql", f"{name}.sql").read_text("utf-8")


def owner_variant(sql: str, owner: OwnerColumn) -> str:
    """*sql* (written for ``d."qualification_id"``) for rows of the given owner column."""
    if sql.count(_OWNER_PREDICATE) != 1:
        raise RuntimeError(f"expected exactly one owner predicate {_OWNER_PREDICATE!r} in the statement")
    return sql.replace(_OWNER_PREDICATE, f'd."{owner}" = ')
