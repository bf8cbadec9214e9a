"""Reports of the SQLite -> PostgreSQL migration and of its verification (pydantic, frozen).

Every model serialises to JSON (``report.model_dump_json()``); the CLI's ``--json`` prints
exactly that. Counts are exact; id lists are capped at :data:`LIST_LIMIT` entries (the
``*_truncated`` flags say when), the reject file holds every rejected row.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, computed_field

__all__ = [
    "LIST_LIMIT",
    "MigrationReport",
    "ProblemReason",
    "RowProblem",
    "TableReport",
    "TableVerification",
    "ValueKind",
    "VectorProblem",
    "VerificationReport",
]

LIST_LIMIT = 1000
"""Most ids / problems listed per report field; counts are never capped."""

ValueKind = Literal["null", "integer", "real", "text", "blob", "row"]
"""SQLite storage class of the offending value (``row`` for row-level problems)."""

ProblemReason = Literal[
    "storage_class",
    "null_not_allowed",
    "nul_byte",
    "invalid_utf8",
    "int4_range",
    "boolean_value",
    "invalid_json",
    "timestamp_milliseconds",
    "timestamp_out_of_range",
    "timestamp_text",
    "embedding_type",
    "embedding_json",
    "embedding_dimensions",
    "embedding_finite",
    "embedding_zero_norm",
    "embedding_norm_range",
    "embedding_half_precision_range",
    "missing_parent",
    "unique_violation",
    "tenant_unknown",
    "tenant_conflict",
    "constraint_violation",
]
"""Why a source value or row cannot be loaded (see :mod:`dealhunter_vectors.bulk_loader`)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")  # "ignore": JSON with computed fields loads back


class RowProblem(_Frozen):
    """One row-level finding: which row, which column, why, and what kind of value it was.

    ``row_id`` is the source primary key (text ids as they are; an unusable id is shown
    as e.g. ``"<integer 42>"``). ``column`` is ``None`` for row-level problems.
    """

    table: str
    row_id: str
    column: str | None
    reason: ProblemReason
    value_kind: ValueKind
    detail: str

    def describe(self) -> str:
        """One human-readable line: ``table id=... column=...: reason (kind): detail``."""
        col = f" column={self.column}" if self.column else ""
        return f"{self.table} id={self.row_id}{col}: {self.reason} ({self.value_kind}): {self.detail}"


class TableReport(_Frozen):
    """What happened to one table's source rows.

    Every source row ends in exactly one of ``inserted``, ``already_present`` (an equal
    row existed), ``overwritten`` (a different row existed and ``overwrite`` was set),
    ``conflicts`` (a different row exists and was left untouched) or ``rejected``.
    """

    table: str
    present_in_source: bool = True
    source_rows: int
    inserted: int = 0
    already_present: int = 0
    overwritten: int = 0
    conflicts: int = 0
    conflict_ids: tuple[str, ...] = ()
    rejected: int = 0
    batches: int = 0
    seconds: float = 0.0
    completed: bool = False
    """False when the run stopped before this table was fully read."""

    @computed_field  # type: ignore[prop-decorator]
    @property
    def accounted(self) -> int:
        """Source rows with a known outcome."""
        return self.inserted + self.already_present + self.overwritten + self.conflicts + self.rejected

    @computed_field  # type: ignore[prop-decorator]
    @property
    def rows_per_second(self) -> float:
        """Source rows handled per second of this table's load."""
        return round(self.accounted / self.seconds, 1) if self.seconds > 0 else 0.0


class MigrationReport(_Frozen):
    """The outcome of :func:`~dealhunter_vectors.bulk_loader.migrate_sqlite`."""

    source: str
    database: str
    """Target URL with the password masked."""
    status: Literal["completed", "stopped", "failed"]
    """``failed``: a source or target fault ended the run (see the ``MigrationError``); the
    tables show what was committed before it, and a re-run finishes the job."""
    on_error: Literal["stop", "skip"]
    overwrite: bool
    tables: tuple[TableReport, ...]
    problems: tuple[RowProblem, ...]
    """Every problem found (first :data:`LIST_LIMIT`), in load order."""
    problem_count: int
    problems_truncated: bool
    reject_file: str | None
    ignored_source_tables: tuple[str, ...] = ()
    """Source tables that are not part of the legacy schema (e.g. ``__drizzle_migrations``)."""
    indexes_dropped: tuple[str, ...] = ()
    indexes_rebuilt: bool = False
    analyzed: tuple[str, ...] = ()
    seconds: float = 0.0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def source_rows(self) -> int:
        """Rows in the migrated source tables."""
        return sum(t.source_rows for t in self.tables)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def inserted(self) -> int:
        """Rows inserted by this run."""
        return sum(t.inserted for t in self.tables)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def already_present(self) -> int:
        """Rows found already present and equal."""
        return sum(t.already_present for t in self.tables)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def conflicts(self) -> int:
        """Rows present in PostgreSQL with different content, left untouched."""
        return sum(t.conflicts for t in self.tables)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def rejected(self) -> int:
        """Rows rejected because of a problem."""
        return sum(t.rejected for t in self.tables)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        """True only when every source row is in PostgreSQL and none was rejected or conflicting."""
        return (
            self.status == "completed"
            and self.problem_count == 0
            and all(t.completed and t.conflicts == 0 and t.accounted == t.source_rows for t in self.tables)
        )


class VectorProblem(_Frozen):
    """A stored vector that breaks a rule (``dimensions``, ``finite``, ``zero_norm`` or ``norm_range``)."""

    table: str
    row_id: str
    column: str
    reason: Literal["dimensions", "finite", "zero_norm", "norm_range"]
    detail: str


class TableVerification(_Frozen):
    """Source versus PostgreSQL for one table.

    The checksums are the sum (mod 2**128) of a BLAKE2b-128 digest of every row's canonical
    form: order-independent, computed from the converted source values on one side and from
    the rows fetched from PostgreSQL on the other.
    """

    table: str
    source_rows: int
    target_rows: int
    source_checksum: str
    target_checksum: str
    matching_rows: int
    mismatched: int
    mismatched_ids: tuple[str, ...]
    missing: int
    """Convertible source rows absent from PostgreSQL."""
    missing_ids: tuple[str, ...]
    extra: int
    """PostgreSQL rows absent from the source."""
    extra_ids: tuple[str, ...]
    unconvertible: int
    """Source rows the loader would reject (so PostgreSQL cannot hold them)."""
    unconvertible_ids: tuple[str, ...]
    vectors_checked: int
    bad_vectors: tuple[VectorProblem, ...]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        """True when both sides hold exactly the same rows and every vector is valid."""
        return (
            self.source_rows == self.target_rows
            and self.source_checksum == self.target_checksum
            and self.mismatched == 0
            and self.missing == 0
            and self.extra == 0
            and self.unconvertible == 0
            and not self.bad_vectors
        )


class VerificationReport(_Frozen):
    """The outcome of :func:`~dealhunter_vectors.verify.verify_migration`."""

    source: str
    database: str
    tables: tuple[TableVerification, ...]
    seconds: float = 0.0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        """True when every table verifies."""
        return all(t.ok for t in self.tables)
