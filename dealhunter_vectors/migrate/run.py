"""One migration run's state, shared by every batch form: reporting, the reject file, commit counting.

The single-node batch forms (:mod:`.batches`) and the distributed ones
(:mod:`.batches_citus`) differ in the statements they run; both report bad rows through
:meth:`Run.reject` (``on_error="stop"`` stops at the first, ``"skip"`` writes each to the
reject file) and count a committed batch through :meth:`Run.committed`, so the report of a
run means the same on every layout.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import orjson

from ..errors import MigrationError
from .reports import LIST_LIMIT, RowProblem, TableReport
from .source import Batch, TablePlan

__all__ = ["MigrationProgress", "ProgressCallback", "RejectWriter", "Run", "Stopped", "TableState"]


@dataclass(frozen=True)
class MigrationProgress:
    """A progress event: a table starts, a batch is committed, a table is done, or the
    final index / ANALYZE phase runs."""

    phase: Literal["table_start", "batch", "table_done", "indexes", "analyze"]
    table: str
    rows_done: int
    rows_total: int


ProgressCallback = Callable[[MigrationProgress], None]


def _json_cell(value: object) -> object:
    if isinstance(value, bytes):
        return {"$blob_base64": base64.b64encode(value).decode()}
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return {"$text_base64": base64.b64encode(value.encode("utf-8", "surrogateescape")).decode()}
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return {"$real": repr(value)}
    return value


class RejectWriter:
    """The reject file: one JSON line per rejected source row (its problems and its values).

    Every failure to write it (a full disk, a read-only mount) is a :class:`MigrationError`
    naming the file, raised once: the first write, flush or close that fails; a later
    :meth:`close` then only releases the file.
    """

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path is not None else None
        self._fh: IO[bytes] | None = None
        self._broken = False

    def _failed(self, exc: OSError) -> MigrationError:
        self._broken = True
        return MigrationError(f"cannot write the reject file {self.path}: {exc.strerror or exc}")

    def write(self, plan: TablePlan, raw: tuple[Any, ...], problems: Sequence[RowProblem]) -> None:
        if self.path is None:
            return
        self.open_empty()
        assert self._fh is not None
        record = {
            "table": plan.name,
            "id": problems[0].row_id,
            "problems": [p.model_dump(exclude={"table", "row_id"}) for p in problems],
            "row": {c.name: _json_cell(v) for c, v in zip(plan.columns, raw, strict=True)},
        }
        try:
            self._fh.write(orjson.dumps(record) + b"\n")
        except OSError as exc:
            raise self._failed(exc) from None

    def open_empty(self) -> None:
        if self.path is not None and self._fh is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fh = self.path.open("wb")
            except OSError as exc:
                raise self._failed(exc) from None

    def flush(self) -> None:
        if self._fh is not None:
            try:
                self._fh.flush()
            except OSError as exc:
                raise self._failed(exc) from None

    def close(self) -> None:
        fh, self._fh = self._fh, None
        if fh is None:
            return
        try:
            fh.close()  # flushes the buffer; the file is closed even when that fails
        except OSError as exc:
            if not self._broken:
                raise self._failed(exc) from None


@dataclass
class TableState:
    """What one table's load has done so far (counted only for committed batches)."""

    plan: TablePlan
    source_rows: int
    present: bool = True
    inserted: int = 0
    already_present: int = 0
    overwritten: int = 0
    conflicts: int = 0
    conflict_ids: list[str] = field(default_factory=list)
    rejected: int = 0
    batches: int = 0
    seconds: float = 0.0
    completed: bool = False

    @property
    def rows_done(self) -> int:
        return self.inserted + self.already_present + self.overwritten + self.conflicts + self.rejected

    def report(self) -> TableReport:
        return TableReport(
            table=self.plan.name,
            present_in_source=self.present,
            source_rows=self.source_rows,
            inserted=self.inserted,
            already_present=self.already_present,
            overwritten=self.overwritten,
            conflicts=self.conflicts,
            conflict_ids=tuple(self.conflict_ids[:LIST_LIMIT]),
            rejected=self.rejected,
            batches=self.batches,
            seconds=round(self.seconds, 3),
            completed=self.completed,
        )


class Stopped(Exception):
    """``on_error="stop"`` met a bad row (its problems)."""

    def __init__(self, problems: list[RowProblem]) -> None:
        super().__init__(problems[0].describe())
        self.problems = problems


@dataclass
class Run:
    """One call of ``migrate_sqlite``: its options, the reject file and the problems found."""

    on_error: Literal["stop", "skip"]
    overwrite: bool
    rejects: RejectWriter
    progress: ProgressCallback | None
    problems: list[RowProblem] = field(default_factory=list)
    problem_count: int = 0

    def record(self, found: Sequence[RowProblem]) -> None:
        self.problem_count += len(found)
        room = LIST_LIMIT - len(self.problems)
        if room > 0:
            self.problems.extend(found[:room])

    def emit(self, event: MigrationProgress) -> None:
        if self.progress is not None:
            self.progress(event)

    def reject(self, state: TableState, batch: Batch, problems: Mapping[int, list[RowProblem]]) -> None:
        """Report the rows of *batch* with *problems* (batch index -> problems), in batch order.

        ``on_error="stop"``: the first is recorded and written to the reject file, then
        :class:`Stopped` is raised (the caller's transaction rolls back). ``"skip"``: each is
        recorded, written and counted as rejected.
        """
        if not problems:
            return
        ordered = sorted(problems)
        if self.on_error == "stop":
            first = problems[ordered[0]]
            self.record(first)
            self.rejects.write(state.plan, batch.raw[ordered[0]], first)
            raise Stopped(first)
        for i in ordered:
            self.record(problems[i])
            self.rejects.write(state.plan, batch.raw[i], problems[i])
        state.rejected += len(problems)

    def reject_source_problems(self, state: TableState, batch: Batch) -> list[int]:
        """Report the batch's conversion problems (:meth:`reject`); the good rows' indices."""
        self.reject(state, batch, batch.problems)
        return [i for i in range(len(batch.raw)) if i not in batch.problems]

    def committed(
        self,
        state: TableState,
        *,
        inserted: int,
        already_present: int = 0,
        overwritten: int = 0,
        differing: Sequence[str] = (),
    ) -> None:
        """Count a committed batch. *differing*: ids stored with other values; with ``overwrite``
        those not overwritten stay conflicts (the distributed layout cannot move a row to
        another tenant), without it every one is a conflict and listed."""
        state.batches += 1
        state.inserted += inserted
        state.already_present += already_present
        if self.overwrite:
            state.overwritten += overwritten
            state.conflicts += len(differing) - overwritten
        else:
            state.conflicts += len(differing)
            room = LIST_LIMIT - len(state.conflict_ids)
            if room > 0:
                state.conflict_ids.extend(sorted(differing)[:room])
        self.rejects.flush()
