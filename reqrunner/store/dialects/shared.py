"""The SQL every dialect shares, the driver cursor it works through, and the helpers that turn
rows into the store's records. The :class:`~reqrunner.store.dialects.base.Dialect` classes build
their statements from these; nothing here differs between databases.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from operator import itemgetter
from typing import Any, Protocol

from ..records import Claimed, NewJob

__all__ = [
    "CLAIM_COLUMNS",
    "CLAIM_ORDER",
    "CLAIM_SET",
    "DUE_GUARD",
    "DUE_LIMIT",
    "INSERT",
    "INSERT_CHUNK",
    "INSERT_COLUMNS",
    "JOBS",
    "VALUES_ROW",
    "Cursor",
    "Listener",
    "chunks",
    "claimed",
    "driver_error",
    "due_where",
    "fetch_records",
    "in_order",
    "marks",
    "missing_driver",
]

JOBS = "reqrunner_jobs"
#: The kept counts of jobs per state (``reqrunner.store.counts``).
STATES = "reqrunner_states"

#: Columns a dispatch writes, named as the fields of :class:`~reqrunner.store.records.NewJob`.
INSERT_COLUMNS: tuple[str, ...] = NewJob._fields

#: Columns a claim returns, named as the fields of :class:`~reqrunner.store.records.Claimed`.
CLAIM_COLUMNS: tuple[str, ...] = tuple(f for f in Claimed.__dataclass_fields__ if f != "token")

#: Rows per multi-row INSERT: under SQLite's 32,766 host parameters and MySQL's packet size.
INSERT_CHUNK = 500

INSERT = f"INSERT INTO {JOBS} ({', '.join(INSERT_COLUMNS)}) VALUES "
VALUES_ROW = "(" + ", ".join("?" for _ in INSERT_COLUMNS) + ")"
#: What claiming does to a row. Parameters: token, now, now. The unique slot moves to
#: ``unique_hash`` (MySQL assigns left to right, the others from the old row: both read the old
#: slot here), so that the job can take it back when it returns to waiting.
CLAIM_SET = (
    "state = 'reserved', token = ?, attempts = attempts + 1, reserved_until = ? + ttr, "
    "started_at = ?, unique_hash = COALESCE(unique_slot, unique_hash), unique_slot = NULL"
)
#: The order jobs are claimed in (the claim index's order).
CLAIM_ORDER = "ORDER BY priority DESC, available_at, id"


class Cursor(Protocol):
    """The part of a DBAPI cursor reqrunner uses."""

    @property
    def rowcount(self) -> int: ...
    @property
    def description(self) -> Sequence[Sequence[Any]] | None: ...
    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Any: ...
    def executemany(self, sql: str, params: Sequence[Sequence[Any]], /) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> Sequence[Any]: ...


class Listener(Protocol):
    """A connection that is told when jobs are dispatched; ``select()`` can wait on it."""

    def fileno(self) -> int: ...
    def drain(self) -> bool:
        """Read what arrived without blocking; whether a dispatch concerned our queues."""
        ...

    def close(self) -> None: ...


def marks(n: int) -> str:
    """``n`` placeholders, comma-separated."""
    return ", ".join("?" * n)


def due_where(queues: int) -> str:
    """The condition of a claimable job. Parameters: now, then one per queue name."""
    where = "state = 'waiting' AND available_at <= ?"
    return f"{where} AND queue IN ({marks(queues)})" if queues else where


#: Whether any job is due: the earliest due time, one entry of the waiting index, against now.
#: Not ``EXISTS (… available_at <= ?)``: PostgreSQL's planner, not knowing that waiting jobs
#: are the ones due later and finished ones the ones due before, reckons that a few rows of a
#: sequential scan would find one, and reads the whole table. Parameter: now.
DUE_GUARD = f"(SELECT MIN(available_at) FROM {JOBS} WHERE state = 'waiting') <= ?"
#: A claim's LIMIT: the batch size when any job is due, else 0. On a table of delayed jobs the
#: claim index (priority first) would otherwise be walked through every one of them before an
#: empty claim ends; the guard is uncorrelated, so it is evaluated once, before the scan, and a
#: LIMIT of 0 ends the statement without one. Parameters: now, limit.
DUE_LIMIT = f"CASE WHEN {DUE_GUARD} THEN ? ELSE 0 END"


def chunks(jobs: Sequence[NewJob]) -> Iterator[tuple[int, list[Any]]]:
    """``jobs`` in chunks of at most :data:`INSERT_CHUNK`: each chunk's row count and its
    parameters, flattened for a multi-row INSERT."""
    for start in range(0, len(jobs), INSERT_CHUNK):
        chunk = jobs[start : start + INSERT_CHUNK]
        yield len(chunk), [value for job in chunk for value in job]


def fetch_records(cur: Cursor) -> list[dict[str, Any]]:
    """The rest of ``cur``'s rows, each a dict keyed by column name."""
    names = [column[0] for column in cur.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def claimed(cur: Cursor, rows: Sequence[Sequence[Any]], token: str) -> list[Claimed]:
    """The claimed jobs of ``rows`` (read by ``cur``), in the order a runner takes them.

    Each field of :class:`Claimed` is taken from the column of its name, found once per claim
    in the cursor's description (a dict per row would cost a runner several percent).
    """
    names = [column[0] for column in cur.description or ()]
    try:
        pick: Callable[[Sequence[Any]], Any] = itemgetter(
            *(names.index(field) for field in CLAIM_COLUMNS)
        )
    except ValueError as exc:
        raise ValueError(f"a claim must return the columns {CLAIM_COLUMNS}, got {names}") from exc
    jobs = [Claimed(token, *pick(row)) for row in rows]
    # RETURNING gives no order; run them in the order they were chosen.
    jobs.sort(key=lambda j: (-j.priority, j.available_at, j.id))
    return jobs


def in_order(jobs: Sequence[Claimed], ids: Sequence[int]) -> list[Claimed]:
    """``jobs`` in the order their ids have in ``ids``."""
    rank = {job_id: i for i, job_id in enumerate(ids)}
    return sorted(jobs, key=lambda job: rank[job.id])


def driver_error(exc: BaseException | None) -> BaseException | None:
    """The driver's own exception behind a SQLAlchemy wrapper."""
    # Where SQLAlchemy is not loaded (a SQLite queue) no exception can be one of its wrappers.
    errors = sys.modules.get("sqlalchemy.exc")
    return exc.orig if errors is not None and isinstance(exc, errors.DBAPIError) else exc


def missing_driver(exc: ModuleNotFoundError, backend: str, driver: str, extra: str) -> Exception:
    """The error for a database whose driver is not installed, naming reqrunner's extra."""
    return ModuleNotFoundError(
        f"the {backend} driver {exc.name or driver!r} is not installed: "
        f"pip install 'reqrunner[{extra}]'",
        name=exc.name,
    )
