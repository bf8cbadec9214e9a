"""Write a legacy dealhunter SQLite database the way the old application wrote it.

The old app (TypeScript, Drizzle ORM on better-sqlite3, schema maintained with
``drizzle-kit push``) stored everything as TEXT or INTEGER:

* timestamps (``integer({mode:'timestamp'})``) as Unix **seconds**
  (``Math.floor(date.getTime() / 1000)``), see :func:`to_sqlite_timestamp`;
* booleans as 0/1 (:func:`to_sqlite_boolean`);
* JSON as ``JSON.stringify`` text (:func:`js_json_dumps`);
* embeddings as ``JSON.stringify(number[])`` text (:func:`embedding_to_json`), whose
  numbers are formatted like JavaScript's ``Number.prototype.toString``
  (:func:`js_number`).

:func:`create_legacy_schema` issues the DDL drizzle-kit would (from the packaged
``dealhunter_vectors/data/sqlite_schema.json``) and :func:`build_legacy_database`
fills all 29 tables with coherent synthetic data (see :class:`LegacyDatasetSpec`),
returning a :class:`LegacyDatabaseSummary` with row counts, owner ids and the exact
float32 vectors behind every stored embedding, for comparison after a migration.

All SQL identifiers come from the packaged schema, are checked against
``[a-z_][a-z0-9_]*`` and are quoted; values are always bound as parameters.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import json
import math
import random
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, TypeAlias

import numpy as np
import orjson
from numpy.typing import ArrayLike, NDArray

from ..db.schema import legacy_schema
from .synthetic import (
    EmbeddingSpace,
    TextGenerator,
    Topic,
    make_embedding_space,
    query_with_cosine,
    topic_for_cluster,
)

__all__ = [
    "EmbeddingColumnData",
    "LegacyColumn",
    "LegacyDatabaseSummary",
    "LegacyDatasetSpec",
    "LegacyForeignKey",
    "LegacyIndex",
    "LegacySchema",
    "LegacyTable",
    "build_legacy_database",
    "create_index_sql",
    "create_legacy_schema",
    "create_table_sql",
    "embedding_to_json",
    "js_json_dumps",
    "js_number",
    "load_legacy_schema",
    "quote_identifier",
    "to_sqlite_boolean",
    "to_sqlite_timestamp",
]

SqlValue: TypeAlias = str | int | float | None
JsonValue: TypeAlias = "bool | int | float | str | Sequence[JsonValue] | Mapping[str, JsonValue] | None"

# ----------------------------------------------------------------------------- schema

_IDENT_RE = re.compile(r"[a-z_][a-z0-9_]*\Z")


def quote_identifier(name: str) -> str:
    """Quote an identifier drizzle-kit style (backticks), refusing anything unexpected.

    Only names matching ``[a-z_][a-z0-9_]*`` (all names in the packaged schema) are
    accepted, so the result can never smuggle SQL. SQLite treats a backtick-quoted
    name exactly like a double-quoted one, which matters for the table ``references``.
    """
    if not _IDENT_RE.match(name):
        raise ValueError(f"unexpected SQL identifier {name!r}")
    return f"`{name}`"


@dataclass(frozen=True)
class LegacyForeignKey:
    """A declared foreign key: ``column REFERENCES table(column) ON DELETE on_delete``."""

    table: str
    column: str
    on_delete: str


@dataclass(frozen=True)
class LegacyColumn:
    """One column of the legacy schema, as described in ``sqlite_schema.json``."""

    name: str
    storage: Literal["text", "integer"]
    kind: str
    nullable: bool
    default: str | int | bool | None
    primary_key: bool
    unique: bool
    references: LegacyForeignKey | None
    enum: tuple[str, ...] | None = None
    json_shape: str | None = None
    json_or_text: bool = False
    dims: int | None = None

    @property
    def sql_default(self) -> str | None:
        """The DEFAULT clause body drizzle-kit emits, or None (``app:`` defaults have none)."""
        d = self.default
        if d is None or (isinstance(d, str) and d.startswith("app:")):
            return None
        if isinstance(d, bool):
            return "true" if d else "false"
        if isinstance(d, int):
            return str(d)
        return "'" + d.replace("'", "''") + "'"

    @property
    def app_default_now(self) -> bool:
        """True for timestamps the application fills with ``new Date()``."""
        return self.default == "app:now()"


@dataclass(frozen=True)
class LegacyIndex:
    """A named (possibly unique, possibly composite) index."""

    name: str
    columns: tuple[str, ...]
    unique: bool


@dataclass(frozen=True)
class LegacyTable:
    """A table: columns in declaration order plus its indexes."""

    name: str
    columns: tuple[LegacyColumn, ...]
    indexes: tuple[LegacyIndex, ...]

    def column(self, name: str) -> LegacyColumn:
        """The column called ``name`` (KeyError if absent)."""
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name}.{name}")

    @property
    def column_names(self) -> tuple[str, ...]:
        """Column names in declaration (= physical) order."""
        return tuple(c.name for c in self.columns)


@dataclass(frozen=True)
class LegacySchema:
    """The whole legacy schema; ``tables`` is keyed by name, in ``insert_order``."""

    tables: Mapping[str, LegacyTable]
    insert_order: tuple[str, ...]
    raw: Mapping[str, Any] = field(repr=False)

    def table(self, name: str) -> LegacyTable:
        """The table called ``name``."""
        return self.tables[name]


def _parse_column(c: Mapping[str, Any]) -> LegacyColumn:
    ref = c.get("references")
    for ident in [c["name"], *([ref["table"], ref["column"]] if ref else [])]:
        quote_identifier(ident)  # validates
    storage = c["storage"]
    if storage not in ("text", "integer"):
        raise ValueError(f"unexpected storage class {storage!r} for {c['name']}")
    return LegacyColumn(
        name=c["name"],
        storage=storage,
        kind=c["kind"],
        nullable=bool(c["nullable"]),
        default=c["default"],
        primary_key=bool(c["primary_key"]),
        unique=bool(c["unique"]),
        references=LegacyForeignKey(ref["table"], ref["column"], ref["on_delete"]) if ref else None,
        enum=tuple(c["enum"]) if c.get("enum") is not None else None,
        json_shape=c.get("json_shape"),
        json_or_text=bool(c.get("json_or_text", False)),
        dims=c.get("dims"),
    )


@functools.cache
def load_legacy_schema() -> LegacySchema:
    """Load (once) the packaged ``dealhunter_vectors/data/sqlite_schema.json``."""
    raw = legacy_schema()  # the packaged facts, read once by the schema module
    parsed: dict[str, LegacyTable] = {}
    for t in raw["tables"]:
        quote_identifier(t["name"])
        indexes = []
        for ix in t["indexes"]:
            quote_identifier(ix["name"])
            for col in ix["columns"]:
                quote_identifier(col)
            indexes.append(LegacyIndex(ix["name"], tuple(ix["columns"]), bool(ix["unique"])))
        parsed[t["name"]] = LegacyTable(t["name"], tuple(_parse_column(c) for c in t["columns"]), tuple(indexes))
    order = tuple(raw["insert_order"])
    if sorted(order) != sorted(parsed):
        raise ValueError("insert_order does not list exactly the schema's tables")
    tables = MappingProxyType({name: parsed[name] for name in order})
    return LegacySchema(tables=tables, insert_order=order, raw=MappingProxyType(raw))


def create_table_sql(table: LegacyTable) -> str:
    """The ``CREATE TABLE`` statement drizzle-kit (sqlite dialect) emits for ``table``.

    Columns in declaration order: ``text``/``integer``, ``PRIMARY KEY NOT NULL`` for
    the id, ``DEFAULT`` for SQL defaults (booleans as ``false``, which SQLite stores as
    0), ``NOT NULL``; then one ``FOREIGN KEY ... ON UPDATE no action ON DELETE x`` per
    reference.
    """
    q = quote_identifier
    lines: list[str] = []
    for c in table.columns:
        parts = [q(c.name), c.storage]
        if c.primary_key:
            parts.append("PRIMARY KEY")
        default = c.sql_default
        if default is not None:
            parts.append(f"DEFAULT {default}")
        if not c.nullable:
            parts.append("NOT NULL")
        lines.append(" ".join(parts))
    for c in table.columns:
        ref = c.references
        if ref is None:
            continue
        on_delete = ref.on_delete.lower()
        if on_delete not in ("no action", "cascade", "set null", "restrict", "set default"):
            raise ValueError(f"unexpected ON DELETE action {ref.on_delete!r}")
        lines.append(
            f"FOREIGN KEY ({q(c.name)}) REFERENCES {q(ref.table)}({q(ref.column)})"
            f" ON UPDATE no action ON DELETE {on_delete}"
        )
    body = ",\n\t".join(lines)
    return f"CREATE TABLE {q(table.name)} (\n\t{body}\n);"


def create_index_sql(table: LegacyTable) -> list[str]:
    """The ``CREATE [UNIQUE] INDEX`` statements for ``table``'s indexes, in schema order."""
    q = quote_identifier
    return [
        f"CREATE {'UNIQUE ' if ix.unique else ''}INDEX {q(ix.name)} ON {q(table.name)} "
        f"({','.join(q(c) for c in ix.columns)});"
        for ix in table.indexes
    ]


def create_legacy_schema(conn: sqlite3.Connection) -> None:
    """Create all 29 legacy tables and their 65 indexes on ``conn``, in insert order.

    Does not commit; the caller owns the transaction (DDL is transactional in SQLite).
    """
    schema = load_legacy_schema()
    for name in schema.insert_order:
        table = schema.tables[name]
        conn.execute(create_table_sql(table))
        for stmt in create_index_sql(table):
            conn.execute(stmt)


# ------------------------------------------------------------------ value conversion


def js_number(x: float) -> str:
    """Format a float exactly like JavaScript's ``String(x)`` / ``JSON.stringify(x)``.

    Shortest round-trip digits (Python's ``repr`` and ECMAScript's Number::toString
    both pick the shortest digit string that reads back to ``x``, nearest to ``x`` on
    ties), laid out by the ECMAScript rules: plain decimal for ``1e-7 < |x| < 1e21``
    (``0.000001``, ``123456789012345680000``), otherwise exponent form without a
    leading zero and with an explicit sign (``1e-7``, ``1.5e-7``, ``1e+21``); integral
    values have no ``.0``; ``-0`` prints as ``0``. Non-finite values give ``NaN``,
    ``Infinity`` and ``-Infinity`` (``JSON.stringify`` would write ``null``; the JSON
    helpers here refuse them instead).
    """
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0.0:
        return "0"
    if x < 0:
        return "-" + js_number(-x)
    mantissa, _, exp_text = repr(x).partition("e")
    exponent = int(exp_text) if exp_text else 0
    int_part, _, frac_part = mantissa.partition(".")
    digits = int_part + frac_part
    stripped = digits.lstrip("0")
    # value = 0.<digits> * 10**(len(int_part) + exponent); leading zeros shift the point
    n = len(int_part) + exponent - (len(digits) - len(stripped))
    digits = stripped.rstrip("0")
    k = len(digits)
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * (-n) + digits
    e = n - 1
    sign = "+" if e >= 0 else "-"
    head = digits if k == 1 else digits[0] + "." + digits[1:]
    return f"{head}e{sign}{abs(e)}"


def _is_array_index(key: str) -> bool:
    return key.isdigit() and str(int(key)) == key and int(key) < 2**32 - 1 and key.isascii()


def _encode_json(value: object, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("JSON cannot hold NaN or Infinity (JSON.stringify would write null)")
        out.append(js_number(value))
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, Mapping):
        keys = [str(k) for k in value]
        if len(keys) != len(value) or not all(isinstance(k, str) for k in value):
            raise TypeError("JSON object keys must be strings")
        # ECMAScript property order: array-index keys ascending, then insertion order
        ordered = sorted((k for k in keys if _is_array_index(k)), key=int) + [k for k in keys if not _is_array_index(k)]
        out.append("{")
        for i, k in enumerate(ordered):
            if i:
                out.append(",")
            out.append(json.dumps(k, ensure_ascii=False))
            out.append(":")
            _encode_json(value[k], out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode_json(item, out)
        out.append("]")
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def js_json_dumps(value: JsonValue) -> str:
    """``JSON.stringify(value)``: no whitespace, non-ASCII kept, numbers via :func:`js_number`.

    Accepts None, bool, int, float, str, lists/tuples and str-keyed mappings.
    """
    out: list[str] = []
    _encode_json(value, out)
    return "".join(out)


# orjson prints the same shortest round-trip digits as JavaScript but lays some numbers
# out differently: exponent form for values below 1e-5 and from 1e16 on (JS keeps plain
# decimals for 1e-6 <= |x| < 1e21) and integral values as "1.0"/"0.0"/"-0.0". Only
# tokens containing "e" or ending in ".0" can differ; they are rare in embeddings, so
# they are located with bytes.find (C speed) and re-rendered with js_number.
_JS_FIX_MARKERS = (b"e", b".0,", b".0]")


def _js_fix_tokens(raw: bytes) -> bytes:
    """Rewrite the tokens of a flat orjson number array that JavaScript prints differently."""
    spans: set[tuple[int, int]] = set()
    for marker in _JS_FIX_MARKERS:
        i = raw.find(marker)
        while i != -1:
            start = raw.rfind(b",", 0, i) + 1 or 1  # 1: just after the opening "["
            end = raw.find(b",", i)
            if end == -1:
                end = len(raw) - 1  # the closing "]"
            spans.add((start, end))
            i = raw.find(marker, end)
    if not spans:
        return raw
    parts: list[bytes] = []
    last = 0
    for start, end in sorted(spans):
        parts.append(raw[last:start])
        parts.append(js_number(float(raw[start:end])).encode("ascii"))
        last = end
    parts.append(raw[last:])
    return b"".join(parts)


def embedding_to_json(vector: ArrayLike) -> str:
    """``JSON.stringify`` of an embedding, e.g. ``[0.012345679104328156,-1e-7,0]``.

    A float32 input is widened to float64 first, exactly as a JavaScript ``number[]``
    holding float32 values would be printed. Every number is written with the
    shortest digits that round-trip to that float64, so parsing the text and casting
    to float32 (``np.asarray(json.loads(s), dtype=np.float32)``) reproduces the float32
    array **bit-exactly** (and a float64 input is reproduced bit-exactly as float64).
    Raises ValueError for non-1-D or non-finite input.
    """
    arr = np.asarray(vector)
    if arr.ndim != 1:
        raise ValueError("an embedding must be a 1-D array")
    wide = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.isfinite(wide).all():
        raise ValueError("embedding contains NaN or Infinity")
    raw = orjson.dumps(wide, option=orjson.OPT_SERIALIZE_NUMPY)
    return _js_fix_tokens(raw).decode("ascii")


def to_sqlite_timestamp(value: datetime) -> int:
    """Drizzle ``integer({mode:'timestamp'})``: ``Math.floor(ms / 1000)``, Unix seconds.

    Naive datetimes are taken as UTC.
    """
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return math.floor(value.timestamp())


def to_sqlite_boolean(value: bool) -> int:
    """Drizzle ``integer({mode:'boolean'})``: 1 for true, 0 for false."""
    return 1 if value else 0


# ------------------------------------------------------------------- dataset spec


@dataclass(frozen=True)
class LegacyDatasetSpec:
    """Sizes and knobs of a synthetic legacy database.

    Per pre-qualification the builder also writes one quick scan, one subjective
    assessment, one background job, two team assignments, one or two documents, two
    audit-trail entries and (for two of every three) a deep migration analysis; per
    qualification three section-data rows, one website audit, two CMS match results,
    one baseline comparison, one PT estimation, two reference matches, one competitor
    match and one pitchdeck with two deliverables and two team members.
    ``catalogue_rows`` sizes references, competencies, competitors and technologies
    (employees get twice as many).
    """

    business_units: int = 3
    users: int = 6
    accounts: int = 4
    pre_qualifications: int = 4
    qualifications: int = 3
    """Qualification i belongs to pre-qualification ``i % pre_qualifications``."""
    deal_embeddings_per_qualification: int = 8
    deal_embeddings_per_pre_qualification: int = 6
    raw_chunks_per_pre_qualification: int = 6
    description_embedding_fraction: float = 0.9
    """Share of pre-qualifications with a description_embedding (rounded so at least
    one has none when the share is below 1 and there are pre-qualifications)."""
    near_duplicate_fraction: float = 0.1
    """Share of pre-qualifications that re-submit an earlier deal: same customer and a
    description_embedding with cosine 0.90-0.97 to the earlier one."""
    screenshot_fraction: float = 0.05
    """Share of deal_embeddings rows that are screenshot chunks with NULL embedding."""
    orphan_deal_embeddings: int = 0
    """Extra deal_embeddings rows with neither owner set (legal in the legacy schema)."""
    catalogue_rows: int = 4
    document_bytes: int = 1024
    """Size of each fake uploaded file before base64 encoding."""
    n_clusters: int = 24
    """Topic clusters of the embedding space (see :mod:`dealhunter_vectors.synthetic`)."""
    spread: float = 0.75
    seed: int = 0
    dims: int = 3072

    def __post_init__(self) -> None:
        for name in (
            "accounts",
            "pre_qualifications",
            "qualifications",
            "deal_embeddings_per_qualification",
            "deal_embeddings_per_pre_qualification",
            "raw_chunks_per_pre_qualification",
            "orphan_deal_embeddings",
            "document_bytes",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        for name in ("business_units", "users", "catalogue_rows", "n_clusters"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.dims < 2:
            raise ValueError("dims must be >= 2")
        if self.qualifications and not self.pre_qualifications:
            raise ValueError("qualifications need at least one pre-qualification")
        for name in ("description_embedding_fraction", "near_duplicate_fraction", "screenshot_fraction"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1]")
        if not (self.spread >= 0.0 and math.isfinite(self.spread)):
            raise ValueError("spread must be a finite number >= 0")

    @classmethod
    def tiny(cls, *, seed: int = 0, dims: int = 8) -> LegacyDatasetSpec:
        """A few dozen rows, 8-d embeddings, every one of the 29 tables has >= 2 rows."""
        return cls(
            business_units=2,
            users=4,
            accounts=2,
            pre_qualifications=3,
            qualifications=2,
            deal_embeddings_per_qualification=6,
            deal_embeddings_per_pre_qualification=4,
            raw_chunks_per_pre_qualification=4,
            screenshot_fraction=0.1,
            near_duplicate_fraction=0.34,
            catalogue_rows=2,
            document_bytes=256,
            n_clusters=6,
            seed=seed,
            dims=dims,
        )

    @classmethod
    def demo(cls, *, seed: int = 0, dims: int = 3072) -> LegacyDatasetSpec:
        """About 3,900 embeddings at 3072 dimensions (~250 MB file), builds in seconds."""
        return cls(
            business_units=4,
            users=12,
            accounts=8,
            pre_qualifications=24,
            qualifications=12,
            deal_embeddings_per_qualification=120,
            deal_embeddings_per_pre_qualification=40,
            raw_chunks_per_pre_qualification=60,
            catalogue_rows=6,
            n_clusters=32,
            seed=seed,
            dims=dims,
        )

    @property
    def expected_deal_embeddings(self) -> int:
        """Total deal_embeddings rows the spec produces (with and without embedding)."""
        return (
            self.qualifications * self.deal_embeddings_per_qualification
            + self.pre_qualifications * self.deal_embeddings_per_pre_qualification
            + self.orphan_deal_embeddings
        )


# ----------------------------------------------------------------------- summary


@dataclass(frozen=True, eq=False)
class EmbeddingColumnData:
    """The exact float32 vectors behind one embedding column.

    ``ids[i]`` is the id of the row whose JSON text encodes ``vectors[i]``; only rows
    with a non-NULL embedding are listed (``null_ids`` has the others). ``labels[i]``
    is the synthetic cluster of row i. ``vectors`` is None when the database was built
    with ``keep_embeddings=False``.
    """

    table: str
    column: str
    ids: tuple[str, ...]
    vectors: NDArray[np.float32] | None = field(repr=False)
    labels: NDArray[np.int64] = field(repr=False)
    ids_by_owner: Mapping[str, tuple[str, ...]] = field(repr=False)
    """Owner (qualification or pre-qualification id) -> ids of its rows with embedding.
    For ``pre_qualifications.description_embedding`` the owner is the row itself."""
    null_ids: tuple[str, ...] = ()

    @functools.cached_property
    def _position(self) -> dict[str, int]:
        return {row_id: i for i, row_id in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def vector(self, row_id: str) -> NDArray[np.float32]:
        """The float32 vector stored for ``row_id`` (KeyError if it has none)."""
        if self.vectors is None:
            raise ValueError("built with keep_embeddings=False")
        vec: NDArray[np.float32] = self.vectors[self._position[row_id]]
        return vec

    def label(self, row_id: str) -> int:
        """The synthetic cluster of ``row_id``."""
        return int(self.labels[self._position[row_id]])


@dataclass(frozen=True, eq=False)
class LegacyDatabaseSummary:
    """What :func:`build_legacy_database` wrote."""

    path: Path
    spec: LegacyDatasetSpec
    row_counts: Mapping[str, int]
    """Rows per table, all 29 tables, in insert order."""
    business_unit_ids: tuple[str, ...]
    user_ids: tuple[str, ...]
    pre_qualification_ids: tuple[str, ...]
    qualification_ids: tuple[str, ...]
    owner_clusters: Mapping[str, int]
    """Primary topic cluster of every pre-qualification and qualification id (a
    qualification shares its pre-qualification's). Use ``space.centres[k]`` or
    ``space.query_near_centre(k, ...)`` to build queries with realistic hits."""
    near_duplicates: tuple[tuple[str, str], ...]
    """(pre-qualification id, earlier pre-qualification id it re-submits)."""
    deal_embeddings: EmbeddingColumnData
    raw_chunks: EmbeddingColumnData
    description_embeddings: EmbeddingColumnData
    space: EmbeddingSpace = field(repr=False)
    build_seconds: float = 0.0

    @property
    def vector_columns(self) -> Mapping[tuple[str, str], EmbeddingColumnData]:
        """The three vector columns keyed by ``(table, column)``."""
        return {
            ("deal_embeddings", "embedding"): self.deal_embeddings,
            ("raw_chunks", "embedding"): self.raw_chunks,
            ("pre_qualifications", "description_embedding"): self.description_embeddings,
        }


# ----------------------------------------------------------------------- builder

_T_START = 1_758_000_000  # 2025-09-16
_T_END = 1_768_700_000  # 2026-01-18
_DAY = 86_400
_BATCH_ROWS = 1024
_STREAM_DEAL, _STREAM_RAW, _STREAM_DESC = 11, 12, 13

_BU_NAMES = (
    "Digital Experience", "Public Sector", "Insurance", "Banking", "Automotive & Manufacturing",
    "Health", "Energy & Utilities", "Retail", "Data & AI", "Mobility",
)  # fmt: skip
_PRE_QUAL_AGENTS = (
    "tech-agent", "legal-agent", "commercial-agent", "competition-agent", "contract-agent",
    "deadline-agent", "quick-scan",
)  # fmt: skip
_QUAL_AGENTS = (
    "tech-agent", "legal-agent", "commercial-agent", "deep-scan-expert-cms", "deep-scan-expert-tech",
    "deep-scan-expert-legal", "deep-scan-expert-commercial", "deep-scan-expert-hosting",
    "deep-scan-expert-accessibility", "deep-scan-expert-migration",
)  # fmt: skip
_CHUNK_TYPES = ("analysis", "summary", "recommendation", "finding", "risk", "requirement", "tech_stack")
_RAW_TYPES = ("paragraph", "section", "table", "list", "heading")
_SECTIONS = (
    "overview", "technology", "legal", "commercial", "timeline", "team", "hosting", "migration",
    "accessibility", "references",
)  # fmt: skip
_HOSTING = ("AWS Frankfurt", "Azure West Europe", "IONOS", "Hetzner", "Open Telekom Cloud", "on-premise")
_SERVERS = ("nginx", "Apache", "Microsoft-IIS/10.0", "cloudflare", "Varnish")
_COMPETENCIES = (
    "Drupal Development", "TYPO3 Integration", "Accessibility Audits", "Cloud Operations",
    "UX Design", "Headless Architecture", "Search (Solr/Elasticsearch)", "SAP Integration",
)  # fmt: skip
_COMPETITORS = (
    "Dataport", "Materna", "Valtech", "Accenture Song", "Diconium", "Publicis Sapient", "Arvato Systems",
    "Netcentric",
)  # fmt: skip
_DELIVERABLES = (
    "Executive Summary", "Technisches Konzept", "Migrationskonzept", "Preisblatt", "Referenzen",
    "Projektplan",
)  # fmt: skip
_MIME = (
    ("application/pdf", "pdf"),
    ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx"),
    ("text/plain", "txt"),
)
_INT_RANGES: dict[str, tuple[int, int]] = {
    "confidence": (0, 100),
    "rank": (1, 5),
    "version": (1, 1),
    "page_count": (12, 8000),
    "file_size": (10_000, 5_000_000),
    "team_size": (2, 25),
    "duration_months": (2, 24),
    "progress": (0, 100),
    "attempt_number": (1, 3),
    "max_attempts": (3, 3),
    "baseline_hours": (200, 2000),
    "github_stars": (100, 120_000),
    "adesso_reference_count": (0, 80),
    "lcp": (800, 6000),
    "fid": (10, 400),
    "ttfb": (80, 1500),
    "a11y_issue_count": (0, 400),
    "estimated_fix_hours": (4, 400),
    "total_pt": (40, 2500),
    "total_cost": (30_000, 2_000_000),
    "risk_buffer": (5, 30),
    "customer_relationship": (1, 10),
    "strategic_importance": (1, 10),
    "win_probability": (1, 10),
    "resource_availability": (1, 10),
    "technical_fit": (1, 10),
    "additional_pt": (0, 300),
    "total_estimated_pt": (50, 2500),
}
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


@dataclass
class _ChunkRow:
    """A planned deal_embeddings / raw_chunks row before its vector exists."""

    values: dict[str, SqlValue]
    label: int | None  # None: no embedding (screenshot)
    owner: str | None


BUILD_STEPS = (
    "business units, users, catalogue",
    "pre-qualifications",
    "pre-qualification children",
    "qualifications",
    "deal_embeddings",
    "raw_chunks",
    "pitchdecks",
)
"""The steps of :func:`build_legacy_database`, in order (for progress displays)."""

BuildProgress = Callable[[str, int, int], None]
"""``progress(step, done, total)``: called before each build step and at the end."""


class _Builder:
    def __init__(self, conn: sqlite3.Connection, spec: LegacyDatasetSpec, keep_embeddings: bool) -> None:
        self.conn = conn
        self.spec = spec
        self.keep = keep_embeddings
        self.schema = load_legacy_schema()
        self.rng = random.Random(spec.seed)
        self.nprng = np.random.default_rng([spec.seed, 99])
        self.text = TextGenerator(spec.seed)
        self.space = make_embedding_space(dims=spec.dims, n_clusters=spec.n_clusters, seed=spec.seed)
        self.ids: dict[str, list[str]] = {name: [] for name in self.schema.insert_order}
        self.counts: dict[str, int] = dict.fromkeys(self.schema.insert_order, 0)
        self._used_ids: set[str] = set()
        self._email_seq = 0
        self.bu_names: list[str] = []
        # pre-generated owner ids (audit trails mention pre-qualifications before they exist)
        self.pq_ids = [self.new_id() for _ in range(spec.pre_qualifications)]
        self.q_ids = [self.new_id() for _ in range(spec.qualifications)]
        self.customers: dict[str, str] = {}
        self.owner_clusters: dict[str, int] = {}
        self.secondary: dict[str, int] = {}
        self.near_duplicates: list[tuple[str, str]] = []
        self.quick_scan_of: dict[str, str] = {}
        self._plan_owners()

    # ---------------------------------------------------------------- primitives
    def new_id(self) -> str:
        """A cuid2-shaped id: 24 chars, lower-case base36, starting with a letter."""
        while True:
            ident = self.rng.choice(_ID_ALPHABET[:26]) + "".join(self.rng.choices(_ID_ALPHABET, k=23))
            if ident not in self._used_ids:
                self._used_ids.add(ident)
                return ident

    def ts(self) -> int:
        return self.rng.randrange(_T_START, _T_END)

    def later(self, t: int, max_days: float = 30.0) -> int:
        return t + self.rng.randrange(0, max(1, int(max_days * _DAY)))

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def email(self, name: str, domain: str) -> str:
        self._email_seq += 1
        local = name.lower().replace(" ", ".").replace("ü", "ue").replace("ö", "oe").replace("ä", "ae")
        return f"{local}.{self._email_seq}@{domain}"

    def topic(self, owner: str | None = None) -> Topic:
        if owner is not None and owner in self.owner_clusters:
            return topic_for_cluster(self.owner_clusters[owner])
        return topic_for_cluster(self.rng.randrange(self.spec.n_clusters))

    def budget(self) -> str:
        lo = self.rng.randrange(1, 20) * 50_000
        return f"{lo:,} – {lo * 2:,} EUR".replace(",", ".")

    def url(self, name: str | None = None) -> str:
        base = (name or self.text.company_name()).split(" ")[0].lower()
        base = re.sub(r"[^a-z0-9]+", "-", base.replace("ü", "ue").replace("ö", "oe").replace("ä", "ae"))
        return f"https://www.{base.strip('-') or 'example'}.de"

    def pick(self, table: str) -> str:
        ids = self.ids[table]
        if not ids:
            raise RuntimeError(f"no {table} rows to reference")
        return self.rng.choice(ids)

    def _plan_owners(self) -> None:
        spec = self.spec
        perm = list(range(spec.n_clusters))
        self.rng.shuffle(perm)
        n_dup = round(spec.near_duplicate_fraction * spec.pre_qualifications)
        dup_idx = set(
            self.rng.sample(range(1, spec.pre_qualifications), min(n_dup, max(0, spec.pre_qualifications - 1)))
        )
        for i, pq in enumerate(self.pq_ids):
            if i in dup_idx:
                j = self.rng.randrange(i)
                while j in dup_idx and j > 0:
                    j = self.rng.randrange(j)
                earlier = self.pq_ids[j]
                self.owner_clusters[pq] = self.owner_clusters[earlier]
                self.customers[pq] = self.customers[earlier]
                self.near_duplicates.append((pq, earlier))
            else:
                self.owner_clusters[pq] = perm[i % spec.n_clusters]
                self.customers[pq] = self.text.company_name()
            self.secondary[pq] = self._other_cluster(self.owner_clusters[pq])
        for i, q in enumerate(self.q_ids):
            pq = self.pq_ids[i % spec.pre_qualifications]
            self.owner_clusters[q] = self.owner_clusters[pq]
            self.secondary[q] = self._other_cluster(self.owner_clusters[q])
            self.customers[q] = self.customers[pq]

    def _other_cluster(self, primary: int) -> int:
        if self.spec.n_clusters == 1:
            return primary
        k = self.rng.randrange(self.spec.n_clusters - 1)
        return k if k < primary else k + 1

    def chunk_label(self, owner: str | None) -> int:
        if owner is None:
            return self.rng.randrange(self.spec.n_clusters)
        r = self.rng.random()
        if r < 0.6:
            return self.owner_clusters[owner]
        if r < 0.85:
            return self.secondary[owner]
        return self.rng.randrange(self.spec.n_clusters)

    # ----------------------------------------------------------- generic values
    def json_value(self, table: str, col: LegacyColumn) -> JsonValue:
        n = col.name
        r = self.rng
        topic = self.topic()
        if n == "outline":
            return {"outline": [self.text.sentence(topic) for _ in range(r.randrange(2, 5))]}
        if n == "talking_points":
            return {"talkingPoints": [self.text.sentence(topic) for _ in range(r.randrange(2, 5))]}
        if n == "visual_ideas":
            return {"visualIdeas": [f"Diagramm: {self.text.words(3)}" for _ in range(r.randrange(1, 4))]}
        if n in ("tech_stack",):
            return {
                "cms": topic.tech.name if topic.tech.kind == "cms" else None,
                "framework": topic.tech.companion if topic.tech.kind == "cms" else topic.tech.name,
                "hosting": r.choice(_HOSTING),
                "libraries": ["jQuery", "Bootstrap"][: r.randrange(0, 3)],
            }
        if col.json_shape == "array":
            if n in ("phases",):
                return [{"name": p, "pt": r.randrange(5, 200)} for p in ("Konzeption", "Umsetzung", "Migration")]
            if n in (
                "sources",
                "encounter_notes",
                "seo_issues",
                "migration_risks",
                "performance_bottlenecks",
            ):
                return [
                    {
                        "title": self.text.words(2),
                        "detail": self.text.sentence(topic),
                        "severity": r.choice(("low", "medium", "high")),
                    }
                    for _ in range(r.randrange(1, 4))
                ]
            if n in ("technologies", "keywords", "matched_technologies", "deep_scan_completed_experts"):
                return sorted({topic_for_cluster(r.randrange(64)).tech.name for _ in range(r.randrange(1, 4))})
            return [self.text.words(r.randrange(1, 4)) for _ in range(r.randrange(1, 5))]
        # object (documented) or undocumented shape: the app mostly stores objects
        obj: dict[str, JsonValue] = {
            "summary": self.text.sentence(topic),
            "score": r.randrange(0, 101),
            "items": [self.text.words(2) for _ in range(r.randrange(0, 4))],
        }
        if r.random() < 0.3:
            obj["ratio"] = round(r.random(), 3)
            obj["checkedAt"] = datetime.fromtimestamp(self.ts(), UTC).isoformat().replace("+00:00", "Z")
        return obj

    def text_value(self, table: str, col: LegacyColumn) -> str:
        n = col.name
        r = self.rng
        topic = self.topic()
        if n.endswith("_url") or n == "website":
            return self.url()
        if n == "email" or n.endswith("_email"):
            return self.email(self.text.person_name(), "example.com")
        if n == "password":
            return "$2b$10$" + "".join(r.choices(_ID_ALPHABET + "ABCDEFGHIJKLMNOPQRSTUVWXYZ./", k=53))
        if n == "leader_name" or (n == "name" and table in ("users", "employees")):
            return self.text.person_name()
        if n in ("customer_name", "company_name") or (n == "name" and table == "accounts"):
            return self.text.company_name() if table != "competitors" else r.choice(_COMPETITORS)
        if n == "name" and table == "competencies":
            return r.choice(_COMPETENCIES)
        if n == "name" and table == "technologies":
            return topic.tech.name
        if n in ("cms", "source_cms", "target_cms"):
            return topic.tech.name if topic.tech.kind == "cms" else topic.tech.companion
        if n == "framework":
            return topic.tech.name if topic.tech.kind == "framework" else topic.tech.companion
        if n in ("cms_version", "latest_version"):
            return topic.tech.version
        if n == "hosting":
            return r.choice(_HOSTING)
        if n == "server":
            return r.choice(_SERVERS)
        if n == "cls":
            return f"{r.uniform(0.0, 0.4):.3f}"
        if n == "wcag_level":
            return r.choice(("A", "AA", "AAA"))
        if n in ("start_date", "end_date"):
            day = datetime.fromtimestamp(self.later(self.ts(), 200), UTC)
            return day.date().isoformat()
        if n == "last_release":
            return f"{topic.tech.version} ({r.choice(('März', 'Juni', 'Oktober'))} 2025)"
        if n == "industry":
            return topic.industry
        if n in ("budget", "budget_range"):
            return self.budget()
        if n in ("job_id", "inngest_run_id"):
            return "01J" + "".join(r.choices(_ID_ALPHABET.upper()[:36], k=23))
        if n in ("current_step", "deep_scan_current_phase"):
            return r.choice(("extracting", "quick-scan", "scoring", "deep-scan:cms", "deep-scan:legal", "done"))
        if n in ("error_message", "deep_scan_error"):
            return r.choice(("Timeout after 120000 ms", "Rate limit exceeded (429)", "Page not reachable: 503"))
        if n == "section_id":
            return r.choice(_SECTIONS)
        if n == "entity_id":
            return r.choice(self.pq_ids) if self.pq_ids else self.new_id()
        if n == "license":
            return r.choice(("GPL-2.0-or-later", "MIT", "proprietary", "Apache-2.0"))
        if n == "category":
            return "CMS" if topic.tech.kind == "cms" else "Framework"
        if n == "community_size":
            return r.choice(("small", "medium", "large"))
        if n == "research_status":
            return r.choice(("pending", "completed", "failed"))
        if n == "baseline_name":
            return f"{topic.tech.name} Baseline {topic.tech.version}"
        if n == "deliverable_name":
            return r.choice(_DELIVERABLES)
        if n == "project_name":
            return f"Relaunch {self.text.company_name()}"
        if n == "scope":
            return r.choice(("Konzeption und Umsetzung", "Migration", "Betrieb und Wartung", "Relaunch"))
        if n == "outcome":
            return r.choice(("gewonnen", "verloren", "zurückgezogen"))
        if n == "recommended_business_unit":
            return r.choice(self.bu_names)
        if n == "draft":
            return f"## {r.choice(_DELIVERABLES)}\n\n{self.text.sentence(topic)}\n\n- {self.text.words(3)}"
        if n == "file_name":
            return f"Leistungsbeschreibung_{r.randrange(1000, 9999)}.pdf"
        if n == "file_type":
            return _MIME[0][0]
        return self.text.sentence(topic)

    def generic(self, table: str, col: LegacyColumn, created: int) -> SqlValue:
        kind = col.kind
        r = self.rng
        if col.primary_key:
            return self.new_id()
        if col.references is not None:
            if col.nullable and r.random() < 0.2:
                return None
            return self.pick(col.references.table)
        if kind == "timestamp_s":
            if col.app_default_now:
                return self.later(created, 20) if col.name == "updated_at" else created
            return None if col.nullable and r.random() < 0.35 else self.later(created)
        if kind == "boolean":
            if col.nullable and r.random() < 0.1:
                return None
            return to_sqlite_boolean(r.random() < 0.3)
        if kind == "embedding":
            if col.nullable:
                return None
            raise RuntimeError(f"{table}.{col.name} needs an explicit embedding")
        if col.nullable and col.default is None and r.random() < 0.15:
            return None
        if kind == "enum":
            if not col.enum:
                raise RuntimeError(f"{table}.{col.name} is an enum without values")
            return r.choice(col.enum)
        if kind == "integer":
            lo, hi = _INT_RANGES.get(col.name, (0, 100) if col.name.endswith("score") else (-5, 40))
            if col.name.startswith("delta_"):
                lo, hi = -5, 40
            if col.default is not None and isinstance(col.default, int) and r.random() < 0.5:
                return col.default
            return r.randint(lo, hi)
        if kind == "json":
            return js_json_dumps(self.json_value(table, col))
        if col.json_or_text:
            if r.random() < 0.5:
                return js_json_dumps(
                    r.choice(
                        (
                            {
                                "decision": r.choice(("bid", "no_bid")),
                                "reason": self.text.sentence(self.topic()),
                            },
                            r.choice(("pending", "bid", "no_bid", "draft")),
                        )
                    )
                )
            return self.text.sentence(self.topic())
        return self.text_value(table, col)

    # --------------------------------------------------------------- insertion
    def insert(self, table_name: str, rows: Iterable[Mapping[str, SqlValue]]) -> None:
        table = self.schema.tables[table_name]
        names = table.column_names
        known = set(names)
        ids = self.ids[table_name]

        def tuples() -> Iterator[tuple[SqlValue, ...]]:
            for overrides in rows:
                unknown = set(overrides) - known
                if unknown:
                    raise KeyError(f"{table_name} has no columns {sorted(unknown)}")
                created_v = overrides.get("created_at")
                created = created_v if isinstance(created_v, int) else self.ts()
                values: list[SqlValue] = []
                for col in table.columns:
                    if col.name in overrides:
                        values.append(overrides[col.name])
                    elif col.name == "created_at":
                        values.append(created)
                    else:
                        values.append(self.generic(table_name, col, created))
                row_id = values[0]
                if not isinstance(row_id, str):
                    raise TypeError(f"{table_name}.id must be a string, got {row_id!r}")
                ids.append(row_id)
                yield tuple(values)

        cols = ", ".join(quote_identifier(c) for c in names)
        marks = ", ".join("?" for _ in names)
        sql = f"INSERT INTO {quote_identifier(table_name)} ({cols}) VALUES ({marks})"  # noqa: S608
        before = len(ids)
        self.conn.executemany(sql, tuples())
        self.counts[table_name] += len(ids) - before

    # ------------------------------------------------------------ table plans
    def validation_fields(self, created: int) -> dict[str, SqlValue]:
        validated = self.chance(0.5)
        return {
            "created_at": created,
            "status": self.rng.choice(("approved", "rejected")) if validated else "pending",
            "is_validated": to_sqlite_boolean(validated),
            "validated_at": self.later(created) if validated else None,
            "validated_by_user_id": self.pick("users") if validated else None,
        }

    def run(self, progress: BuildProgress | None = None) -> LegacyDatabaseSummary:
        """Write every table in the app's insert order; the summary of what was written.

        *progress* is called as ``progress(step, done, total)`` before each of the
        :data:`BUILD_STEPS` and once more with ``done == total`` at the end.
        """
        t0 = time.perf_counter()
        report = progress or (lambda step, done, total: None)
        report(BUILD_STEPS[0], 0, len(BUILD_STEPS))
        self._insert_organisation()
        report(BUILD_STEPS[1], 1, len(BUILD_STEPS))
        desc_vectors, desc_ids, desc_labels = self._insert_pre_qualifications()
        report(BUILD_STEPS[2], 2, len(BUILD_STEPS))
        self._insert_pre_qualification_children()
        report(BUILD_STEPS[3], 3, len(BUILD_STEPS))
        self._insert_qualifications()
        report(BUILD_STEPS[4], 4, len(BUILD_STEPS))
        deal = self.insert_chunks("deal_embeddings", self.deal_embedding_plan(), _STREAM_DEAL)
        report(BUILD_STEPS[5], 5, len(BUILD_STEPS))
        raw = self.insert_chunks("raw_chunks", self.raw_chunk_plan(), _STREAM_RAW)
        report(BUILD_STEPS[6], 6, len(BUILD_STEPS))
        self._insert_pitchdecks()
        report("done", len(BUILD_STEPS), len(BUILD_STEPS))
        return self._summary(deal, raw, desc_vectors, desc_ids, desc_labels, t0)

    def _insert_organisation(self) -> None:
        """Business units, users and the catalogue tables (references, competencies, ...)."""
        spec = self.spec
        r = self.rng

        def bu_rows() -> Iterator[dict[str, SqlValue]]:
            for i in range(spec.business_units):
                name = _BU_NAMES[i % len(_BU_NAMES)] + ("" if i < len(_BU_NAMES) else f" {i // len(_BU_NAMES) + 1}")
                self.bu_names.append(name)
                leader = self.text.person_name()
                yield {
                    "id": self.new_id(),
                    "name": name,
                    "leader_name": leader,
                    "leader_email": self.email(leader, "adesso.de"),
                    "keywords": js_json_dumps(sorted({topic_for_cluster(r.randrange(64)).tech.name for _ in range(3)})),
                }

        self.insert("business_units", bu_rows())

        def user_rows() -> Iterator[dict[str, SqlValue]]:
            for i in range(spec.users):
                name = self.text.person_name()
                yield {
                    "id": self.new_id(),
                    "email": self.email(name, "adesso.de"),
                    "name": name,
                    "role": ("admin", "bl", "bd")[i % 3] if i < 3 else r.choice(("bd", "bd", "bl", "admin")),
                    "business_unit_id": None if self.chance(0.2) else self.pick("business_units"),
                    "deleted_at": self.ts() if self.chance(0.05) else None,
                }

        self.insert("users", user_rows())
        cat = spec.catalogue_rows
        self.insert(
            "references",
            ({**self.validation_fields(self.ts()), "user_id": self.pick("users"), "version": 1} for _ in range(cat)),
        )
        self.insert(
            "competencies",
            ({**self.validation_fields(self.ts()), "user_id": self.pick("users")} for _ in range(cat)),
        )
        self.insert(
            "technologies",
            (
                {
                    "id": self.new_id(),
                    "name": topic_for_cluster(i).tech.name,
                    "business_unit_id": self.pick("business_units"),
                    "is_default": to_sqlite_boolean(i == 0),
                }
                for i in range(cat)
            ),
        )
        self.insert(
            "employees",
            (
                {
                    "business_unit_id": self.pick("business_units"),
                    "skills": js_json_dumps(sorted({topic_for_cluster(r.randrange(64)).tech.name for _ in range(3)})),
                    "roles": js_json_dumps(r.sample(["developer", "architect", "pm", "consultant", "designer"], 2)),
                }
                for _ in range(2 * cat)
            ),
        )
        self.insert(
            "audit_trails",
            ({"user_id": self.pick("users")} for _ in range(max(2, 2 * spec.pre_qualifications + spec.qualifications))),
        )
        self.insert("accounts", ({"user_id": self.pick("users")} for _ in range(spec.accounts)))

    def _insert_pre_qualifications(self) -> tuple[NDArray[np.float32], list[str], NDArray[np.int64]]:
        """The pre-qualifications with their description embeddings (returned for the summary)."""
        desc_vectors, desc_ids, desc_labels = self.description_embeddings()
        desc_json = {pid: embedding_to_json(v) for pid, v in zip(desc_ids, desc_vectors, strict=True)}

        def pq_rows() -> Iterator[dict[str, SqlValue]]:
            for pid in self.pq_ids:
                topic = topic_for_cluster(self.owner_clusters[pid])
                customer = self.customers[pid]
                description = self.text.description(topic, customer)
                created = self.ts()
                raw_input = js_json_dumps({"text": description, "source": "seed"}) if self.chance(0.1) else description
                requirements: dict[str, JsonValue] = {
                    "customerName": customer,
                    "projectDescription": description,
                    "technologies": [topic.tech.name, topic.tech.companion],
                    "budgetRange": self.budget(),
                    "submissionDeadline": datetime.fromtimestamp(self.later(created, 60), UTC).date().isoformat(),
                    "industry": topic.industry,
                }
                yield {
                    "id": pid,
                    "user_id": self.pick("users"),
                    "raw_input": raw_input,
                    "extracted_requirements": None if self.chance(0.1) else js_json_dumps(requirements),
                    "account_id": None if self.chance(0.25) or not self.ids["accounts"] else self.pick("accounts"),
                    "assigned_business_unit_id": None if self.chance(0.3) else self.pick("business_units"),
                    "website_url": self.url(customer),
                    "quick_scan_id": None,
                    "deep_migration_analysis_id": None,
                    "description_embedding": desc_json.get(pid),
                    "created_at": created,
                }

        self.insert("pre_qualifications", pq_rows())
        return desc_vectors, desc_ids, desc_labels

    def _insert_pre_qualification_children(self) -> None:
        """Quick scans, deep migration analyses, documents, competitors, team assignments, jobs."""
        spec = self.spec
        r = self.rng
        cat = spec.catalogue_rows

        def per_pq() -> Iterator[dict[str, SqlValue]]:
            for pid in self.pq_ids:
                yield {"pre_qualification_id": pid}

        def quick_scan_rows() -> Iterator[dict[str, SqlValue]]:
            for pid in self.pq_ids:
                topic = topic_for_cluster(self.owner_clusters[pid])
                qs_id = self.new_id()
                self.quick_scan_of[pid] = qs_id
                yield {
                    "id": qs_id,
                    "pre_qualification_id": pid,
                    "website_url": self.url(self.customers[pid]),
                    "cms": topic.tech.name if topic.tech.kind == "cms" else topic.tech.companion,
                    "framework": topic.tech.name if topic.tech.kind == "framework" else topic.tech.companion,
                }

        self.insert("quick_scans", quick_scan_rows())
        self.insert(
            "deep_migration_analyses",
            (
                {
                    "pre_qualification_id": pid,
                    "user_id": self.pick("users"),
                    "website_url": self.url(self.customers[pid]),
                }
                for i, pid in enumerate(self.pq_ids)
                if i % 3 != 2
            ),
        )
        # the app inserts the children, then points the pre-qualification at them
        dma_ids = self.ids["deep_migration_analyses"]
        dma_of = dict(zip([p for i, p in enumerate(self.pq_ids) if i % 3 != 2], dma_ids, strict=True))
        self.conn.executemany(
            "UPDATE `pre_qualifications` SET `quick_scan_id` = ?, `deep_migration_analysis_id` = ?,"
            " `updated_at` = `updated_at` + ? WHERE `id` = ?",
            [(self.quick_scan_of[p], dma_of.get(p), r.randrange(60, 3600), p) for p in self.pq_ids],
        )

        def document_rows() -> Iterator[dict[str, SqlValue]]:
            for i, pid in enumerate(self.pq_ids):
                for _ in range(1 if i % 2 else 2):
                    mime, ext = r.choice(_MIME)
                    payload = (b"%PDF-1.4\n" if ext == "pdf" else b"PK\x03\x04") + r.randbytes(spec.document_bytes)
                    yield {
                        "pre_qualification_id": pid,
                        "user_id": self.pick("users"),
                        "file_name": f"Ausschreibung_{self.customers[pid].split(' ')[0]}_{i}.{ext}",
                        "file_type": mime,
                        "file_data": base64.b64encode(payload).decode("ascii"),
                        "file_size": len(payload),
                    }

        self.insert("documents", document_rows())
        self.insert(
            "competitors",
            ({**self.validation_fields(self.ts()), "user_id": self.pick("users")} for _ in range(cat)),
        )
        self.insert(
            "team_assignments",
            ({"pre_qualification_id": p, "employee_id": self.pick("employees")} for p in self.pq_ids for _ in range(2)),
        )
        self.insert("subjective_assessments", ({**x, "user_id": self.pick("users")} for x in per_pq()))
        self.insert("background_jobs", ({**x, "user_id": self.pick("users")} for x in per_pq()))

    def _per_qualification(self, n: int, **extra: Any) -> Iterator[dict[str, SqlValue]]:
        """*n* rows per qualification (values of *extra* called per row when callable)."""
        for qid in self.q_ids:
            for _ in range(n):
                yield {
                    "qualification_id": qid,
                    **{k: v() if callable(v) else v for k, v in extra.items()},
                }

    def _insert_qualifications(self) -> None:
        """The qualifications and their per-qualification tables."""
        spec = self.spec
        r = self.rng

        def qualification_rows() -> Iterator[dict[str, SqlValue]]:
            for i, qid in enumerate(self.q_ids):
                pid = self.pq_ids[i % spec.pre_qualifications]
                topic = topic_for_cluster(self.owner_clusters[qid])
                voted = self.chance(0.6)
                created = self.ts()
                yield {
                    "id": qid,
                    "pre_qualification_id": pid,
                    "customer_name": self.customers[qid],
                    "website_url": self.url(self.customers[qid]),
                    "industry": topic.industry,
                    "project_description": self.text.description(topic, self.customers[qid]),
                    "quick_scan_id": self.quick_scan_of[pid] if self.chance(0.9) else None,
                    "business_unit_id": self.pick("business_units"),
                    "bl_vote": r.choice(("BID", "NO-BID")) if voted else None,
                    "bl_voted_by_user_id": self.pick("users") if voted else None,
                    "bl_voted_at": self.later(created) if voted else None,
                    "selected_cms_id": self.pick("technologies") if self.chance(0.7) else None,
                    "deep_scan_last_checkpoint": self.later(created) if self.chance(0.7) else None,
                    "created_at": created,
                }

        self.insert("qualifications", qualification_rows())

        self.insert(
            "qualification_section_data",
            (
                {
                    "qualification_id": q,
                    "section_id": s,
                    "content": js_json_dumps(
                        {
                            "title": s,
                            "text": self.text.sentence(self.topic(q)),
                            "confidence": r.randrange(30, 100),
                        }
                    ),
                }
                for q in self.q_ids
                for s in r.sample(_SECTIONS, 3)
            ),
        )
        self.insert("website_audits", self._per_qualification(1))
        self.insert("cms_match_results", self._per_qualification(2, technology_id=lambda: self.pick("technologies")))
        self.insert("baseline_comparisons", self._per_qualification(1, technology_id=lambda: self.pick("technologies")))
        self.insert("pt_estimations", self._per_qualification(1))
        self.insert("reference_matches", self._per_qualification(2, reference_id=lambda: self.pick("references")))
        self.insert("competitor_matches", self._per_qualification(1, competitor_id=lambda: self.pick("competitors")))

    def _insert_pitchdecks(self) -> None:
        """Pitchdecks (one per qualification), their deliverables and team members."""
        self.insert("pitchdecks", self._per_qualification(1))
        pitchdecks = self.ids["pitchdecks"]
        self.insert("pitchdeck_deliverables", ({"pitchdeck_id": p} for p in pitchdecks for _ in range(2)))
        self.insert(
            "pitchdeck_team_members",
            ({"pitchdeck_id": p, "employee_id": self.pick("employees")} for p in pitchdecks for _ in range(2)),
        )

    def _summary(
        self,
        deal: EmbeddingColumnData,
        raw: EmbeddingColumnData,
        desc_vectors: NDArray[np.float32],
        desc_ids: list[str],
        desc_labels: NDArray[np.int64],
        t0: float,
    ) -> LegacyDatabaseSummary:
        desc_null = tuple(p for p in self.pq_ids if p not in set(desc_ids))
        description = EmbeddingColumnData(
            table="pre_qualifications",
            column="description_embedding",
            ids=tuple(desc_ids),
            vectors=desc_vectors if self.keep else None,
            labels=desc_labels,
            ids_by_owner=MappingProxyType({p: (p,) for p in desc_ids}),
            null_ids=desc_null,
        )
        return LegacyDatabaseSummary(
            path=Path(),
            spec=self.spec,
            row_counts=MappingProxyType(dict(self.counts)),
            business_unit_ids=tuple(self.ids["business_units"]),
            user_ids=tuple(self.ids["users"]),
            pre_qualification_ids=tuple(self.pq_ids),
            qualification_ids=tuple(self.q_ids),
            owner_clusters=MappingProxyType(dict(self.owner_clusters)),
            near_duplicates=tuple((a, b) for a, b in self.near_duplicates if a in desc_ids and b in desc_ids),
            deal_embeddings=deal,
            raw_chunks=raw,
            description_embeddings=description,
            space=self.space,
            build_seconds=time.perf_counter() - t0,
        )

    # ------------------------------------------------------------- embeddings
    def description_embeddings(self) -> tuple[NDArray[np.float32], list[str], NDArray[np.int64]]:
        spec = self.spec
        n = len(self.pq_ids)
        n_without = math.ceil((1.0 - spec.description_embedding_fraction) * n - 1e-9) if n else 0
        dup_of = dict(self.near_duplicates)
        # prefer leaving originals and re-submissions embedded so the duplicate check has data
        involved = set(dup_of) | set(dup_of.values())
        plain = [p for p in self.pq_ids if p not in involved]
        without = set(self.rng.sample(plain, min(n_without, len(plain))))
        # then re-submissions, and only as a last resort the originals they copy
        originals = set(dup_of.values())
        for group in ([p for p in dup_of if p not in originals], [p for p in self.pq_ids if p in originals]):
            need = n_without - len(without)
            without |= set(self.rng.sample(group, min(need, len(group))))
        ids = [p for p in self.pq_ids if p not in without]
        labels = np.array([self.owner_clusters[p] for p in ids], dtype=np.int64)
        vectors = self.space.sample(labels, seed=(_STREAM_DESC,), spread=spec.spread)
        position = {p: i for i, p in enumerate(ids)}
        for dup, original in self.near_duplicates:
            if dup in position and original in position:
                cos = self.rng.uniform(0.90, 0.97)
                vectors[position[dup]] = query_with_cosine(vectors[position[original]], cos, self.nprng)
        return vectors, ids, labels

    def deal_embedding_plan(self) -> list[_ChunkRow]:
        spec = self.spec
        r = self.rng
        plan: list[_ChunkRow] = []
        owners: list[tuple[str | None, str | None, int, tuple[str, ...]]] = []
        owners += [(q, None, spec.deal_embeddings_per_qualification, _QUAL_AGENTS) for q in self.q_ids]
        owners += [(None, p, spec.deal_embeddings_per_pre_qualification, _PRE_QUAL_AGENTS) for p in self.pq_ids]
        if spec.orphan_deal_embeddings:
            owners.append((None, None, spec.orphan_deal_embeddings, _PRE_QUAL_AGENTS))
        for q_id, pq_id, count, agents in owners:
            owner = q_id or pq_id
            next_index: dict[tuple[str, str], int] = {}
            for _ in range(count):
                agent = r.choice(agents)
                screenshot = r.random() < spec.screenshot_fraction
                chunk_type = "screenshot" if screenshot else r.choice(_CHUNK_TYPES)
                key = (agent, chunk_type)
                index = next_index.get(key, 0)
                next_index[key] = index + 1
                label = None if screenshot else self.chunk_label(owner)
                topic = topic_for_cluster(label if label is not None else self.owner_clusters.get(owner or "", 0))
                created = self.ts()
                validated = r.random() < 0.35
                if screenshot:
                    device = r.choice(("Desktop", "Mobile"))
                    content = f"Screenshot der Startseite ({device}, {1440 if device == 'Desktop' else 390}px)"
                    meta: JsonValue = {
                        "url": self.url(self.customers.get(owner or "")),
                        "viewport": device.lower(),
                        "screenshotPath": f"/screenshots/{self.new_id()}.png",
                    }
                elif r.random() < 0.05:
                    content = js_json_dumps(
                        {"finding": self.text.sentence(topic), "severity": r.choice(("low", "high"))}
                    )
                    meta = {"source": agent}
                else:
                    content = self.text.agent_chunk(topic, agent, customer=self.customers.get(owner or ""))
                    meta = self.chunk_metadata(topic, agent)
                meta_json = None if (meta is None or (not screenshot and r.random() < 0.12)) else js_json_dumps(meta)
                plan.append(
                    _ChunkRow(
                        values={
                            "pre_qualification_id": pq_id,
                            "qualification_id": q_id,
                            "agent_name": agent,
                            "chunk_type": chunk_type,
                            "chunk_index": index,
                            "content": content,
                            "metadata": meta_json,
                            "chunk_category": r.choice(
                                self.schema.tables["deal_embeddings"].column("chunk_category").enum or ("elaboration",)
                            ),
                            "confidence": None
                            if r.random() < 0.03
                            else (50 if r.random() < 0.2 else r.randrange(0, 101)),
                            "requires_validation": None if r.random() < 0.1 else to_sqlite_boolean(r.random() < 0.25),
                            "validated_at": self.later(created) if validated else None,
                            "validated_by": self.pick("users") if validated else None,
                            "created_at": created,
                            "updated_at": self.later(created, 5),
                        },
                        label=label,
                        owner=owner,
                    )
                )
        return plan

    def chunk_metadata(self, topic: Topic, agent: str) -> JsonValue:
        r = self.rng
        x = r.random()
        meta: dict[str, JsonValue] = {"agent": agent, "language": r.choice(("de", "en"))}
        if x < 0.6:
            tech = f"{topic.tech.name} {topic.tech.version}" if r.random() < 0.5 else topic.tech.name
            if topic.tech.kind == "cms":
                meta["cms"] = tech
                if r.random() < 0.5:
                    meta["framework"] = topic.tech.companion
            else:
                meta["framework"] = tech
                if r.random() < 0.5:
                    meta["cms"] = topic.tech.companion
        if r.random() < 0.3:
            meta["sourceUrl"] = self.url()
        return meta

    def raw_chunk_plan(self) -> list[_ChunkRow]:
        r = self.rng
        plan: list[_ChunkRow] = []
        for pid in self.pq_ids:
            position = 0
            created = self.ts()
            for i in range(self.spec.raw_chunks_per_pre_qualification):
                label = self.chunk_label(pid)
                content = self.text.raw_chunk(topic_for_cluster(label), customer=self.customers[pid])
                meta = None
                if r.random() >= 0.05:
                    meta = js_json_dumps(
                        {
                            "startPosition": position,
                            "endPosition": position + len(content),
                            "type": r.choice(_RAW_TYPES),
                        }
                    )
                position += len(content) + 1
                plan.append(
                    _ChunkRow(
                        values={
                            "pre_qualification_id": pid,
                            "chunk_index": i,
                            "content": content,
                            "token_count": max(1, round(len(content) / 4)),
                            "metadata": meta,
                            "created_at": created,
                        },
                        label=label,
                        owner=pid,
                    )
                )
        return plan

    def insert_chunks(self, table: str, plan: list[_ChunkRow], stream: int) -> EmbeddingColumnData:
        """Insert planned rows in batches, sampling and JSON-encoding vectors per batch."""
        dims = self.spec.dims
        embedded = [row for row in plan if row.label is not None]
        vectors = np.empty((len(embedded), dims), dtype=np.float32) if self.keep else None
        labels = np.array([row.label for row in embedded], dtype=np.int64)
        ids: list[str] = []
        null_ids: list[str] = []
        by_owner: dict[str, list[str]] = {}
        cursor = 0

        def rows() -> Iterator[dict[str, SqlValue]]:
            nonlocal cursor
            for batch_no, lo in enumerate(range(0, len(plan), _BATCH_ROWS)):
                batch = plan[lo : lo + _BATCH_ROWS]
                batch_labels = [row.label for row in batch if row.label is not None]
                sampled = self.space.sample(batch_labels, seed=(stream, batch_no), spread=self.spec.spread)
                k = 0
                for row in batch:
                    row_id = self.new_id()
                    values = dict(row.values)
                    values["id"] = row_id
                    if row.label is None:
                        values["embedding"] = None
                        null_ids.append(row_id)
                    else:
                        vec = sampled[k]
                        k += 1
                        values["embedding"] = embedding_to_json(vec)
                        if vectors is not None:
                            vectors[cursor] = vec
                        cursor += 1
                        ids.append(row_id)
                        if row.owner is not None:
                            by_owner.setdefault(row.owner, []).append(row_id)
                    yield values

        self.insert(table, rows())
        return EmbeddingColumnData(
            table=table,
            column="embedding",
            ids=tuple(ids),
            vectors=vectors,
            labels=labels,
            ids_by_owner=MappingProxyType({k: tuple(v) for k, v in by_owner.items()}),
            null_ids=tuple(null_ids),
        )


def build_legacy_database(
    path: str | Path,
    spec: LegacyDatasetSpec | None = None,
    *,
    overwrite: bool = False,
    keep_embeddings: bool = True,
    progress: BuildProgress | None = None,
) -> LegacyDatabaseSummary:
    """Create a legacy SQLite database at ``path`` and fill all 29 tables.

    Runs ``PRAGMA foreign_keys = ON`` (as the app did), creates the schema with
    :func:`create_legacy_schema`, inserts every table in ``insert_order`` with
    ``executemany`` inside one transaction, and sets ``pre_qualifications.quick_scan_id``
    / ``deep_migration_analysis_id`` with an UPDATE after those children exist.
    Refuses to replace an existing file unless ``overwrite=True``; on error the
    partial file is removed. ``keep_embeddings=False`` drops the float32 matrices from
    the summary (saves ``rows x dims x 4`` bytes for big builds). Deterministic for a
    spec (same seed -> identical rows and vectors). *progress*: see :data:`BUILD_STEPS`.
    """
    spec = spec or LegacyDatasetSpec()
    target = Path(path)
    if target.exists():
        if not overwrite:
            raise FileExistsError(f"{target} exists; pass overwrite=True to replace it")
        target.unlink()
    for suffix in ("-journal", "-wal", "-shm"):
        side = target.with_name(target.name + suffix)
        if side.exists() and overwrite:
            side.unlink()
    started = time.perf_counter()
    conn = sqlite3.connect(target, isolation_level=None)
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        # durability of this one-off build does not matter; not persisted in the file
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("BEGIN")
        create_legacy_schema(conn)
        summary = _Builder(conn, spec, keep_embeddings).run(progress)
        violations = conn.execute("PRAGMA foreign_key_check").fetchall()
        if violations:
            raise RuntimeError(f"foreign key violations: {violations[:5]}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()
        target.unlink(missing_ok=True)
        raise
    conn.close()
    return dataclasses.replace(summary, path=target, build_seconds=time.perf_counter() - started)
