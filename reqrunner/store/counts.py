"""How many jobs are in each state: kept as jobs move, so that counting never scans history.

Every transaction that inserts, moves or deletes jobs gathers what it did in a :class:`Moves`
and adds it to the ``reqrunner_states`` rows with one statement before it commits, so the
counts are exactly as current as the jobs themselves. Reading them is a sum over a few rows
(:func:`totals`); splitting waiting jobs into due and delayed is done by :func:`split_waiting`
from bounded index ranges.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import Any

from .dialects import JOBS, Cursor, Dialect
from .dialects.shared import STATES

__all__ = [
    "COUNTED",
    "STATES",
    "Moves",
    "count_ignored",
    "count_new",
    "due_within",
    "recount",
    "split_waiting",
    "totals",
]

#: The states counted, in the order :func:`totals` answers them.
COUNTED = ("waiting", "reserved", "failed", "done")


def totals(dialect: Dialect) -> str:
    """The four counts in the order of :data:`COUNTED`, as subqueries of one SELECT (so they
    join the same snapshot as whatever else that SELECT reads)."""
    sums = [f"(SELECT COALESCE(SUM(n), 0) FROM {STATES} WHERE state = '{s}')" for s in COUNTED]
    if dialect.inserted is not None:
        # Where the database counts inserts itself, the waiting row holds the difference.
        sums[0] = f"{sums[0]} + {dialect.inserted}"
    return ", ".join(sums)


#: Rows one side of the due/delayed split counts at most before it gives up on that side.
SPLIT_LIMIT = 1_000


class Moves:
    """What one transaction did to the jobs' states, to be added with :meth:`write`."""

    __slots__ = ("_delta",)

    def __init__(self) -> None:
        self._delta: dict[str, int] = {}

    def add(self, state: str, n: int = 1) -> None:
        """``n`` jobs came into ``state`` (went out of it, for negative ``n``)."""
        if n:
            self._delta[state] = self._delta.get(state, 0) + n

    def move(self, source: str, target: str | None, n: int = 1) -> None:
        """``n`` jobs went from ``source`` to ``target`` (``None``: deleted)."""
        self.add(source, -n)
        if target is not None:
            self.add(target, n)

    def inserted(self, states: Iterable[str]) -> None:
        """Jobs came in, one per state given."""
        for state in states:
            self.add(state)

    def write(self, cur: Cursor, dialect: Dialect) -> None:
        """Add the moves to the counts, in the transaction of ``cur``; then start afresh."""
        rows = [(state, n) for state, n in sorted(self._delta.items()) if n]
        self._delta = {}
        if rows:
            # One row of each state per transaction, on a shard picked at random: concurrent
            # transactions seldom wait for each other's row, and with the states always in
            # the same order two of them never deadlock over the rows they both take.
            shard = _shard(dialect)
            cur.executemany(dialect.add_count, [(state, shard, n) for state, n in rows])


def count_new(cur: Cursor, dialect: Dialect, states: Sequence[str]) -> None:
    """Count jobs just inserted through ``cur``, one per state in ``states``.

    Dispatching one job is the commonest write there is: where the database counts inserts
    itself a waiting job costs nothing more, elsewhere it adds its one row without the
    bookkeeping of :class:`Moves`."""
    offset = 0
    if dialect.inserted is not None:
        # Counted as waiting by the database: a job inserted in another state moved from it.
        states = [state for state in states if state != "waiting"]
        offset = -len(states)
    elif len(states) == 1:
        cur.execute(dialect.add_count, (states[0], _shard(dialect), 1))
        return
    if states:
        moves = Moves()
        moves.inserted(states)
        moves.add("waiting", offset)
        moves.write(cur, dialect)


def count_ignored(cur: Cursor, dialect: Dialect) -> None:
    """A unique insert was ignored through ``cur`` (an unclaimed job holds its key). SQLite
    gives the ignored row an id all the same, so its count of inserts took one too many."""
    if dialect.inserted is not None:
        cur.execute(dialect.add_count, ("waiting", _shard(dialect), -1))


def _shard(dialect: Dialect) -> int:
    shards = dialect.count_shards
    return 0 if shards == 1 else random.randrange(shards)


def due_within(limit: int | None) -> str:
    """A subquery counting due waiting jobs (due by its parameter), at most ``limit``."""
    inner = f"SELECT 1 FROM {JOBS} WHERE state = 'waiting' AND available_at <= ?"
    if limit is None:
        return f"(SELECT COUNT(*) FROM ({inner}) d)"
    # In the waiting index's order, so that the limit bounds what is read (see DUE_GUARD).
    return f"(SELECT COUNT(*) FROM ({inner} ORDER BY available_at LIMIT {limit}) d)"


def split_waiting(
    cur: Cursor, dialect: Dialect, waiting: int, due: int, soon: float
) -> tuple[int, int]:
    """``waiting`` (the count of waiting jobs) as (due by ``soon``, delayed past it), given
    ``due``: the due jobs counted up to :data:`SPLIT_LIMIT` (:func:`due_within`).

    Whichever side is small is counted, a bounded range of the due index, and the other side
    is the rest: only when both are large are the due jobs counted in full.
    """
    if due < SPLIT_LIMIT:
        return due, max(waiting - due, 0)
    cur.execute(
        dialect.q(
            f"SELECT COUNT(*) FROM (SELECT 1 FROM {JOBS} WHERE state = 'waiting' "
            f"AND available_at > ? ORDER BY available_at DESC LIMIT {SPLIT_LIMIT}) l"
        ),
        (soon,),
    )
    delayed = int(cur.fetchone()[0])
    if delayed < SPLIT_LIMIT:
        return max(waiting - delayed, 0), delayed
    cur.execute(dialect.q(f"SELECT {due_within(None)}"), (soon,))
    due = int(cur.fetchone()[0])
    return due, max(waiting - due, 0)


def recount(cur: Cursor, dialect: Dialect) -> dict[str, int]:
    """Set the counts from the jobs themselves (a pass over the table): for a database that
    had jobs before it had counts. The caller holds the schema lock."""
    cur.execute(f"SELECT state, COUNT(*) FROM {JOBS} GROUP BY state")
    found: dict[str, Any] = {str(state): int(n) for state, n in cur.fetchall()}
    cur.execute(f"DELETE FROM {STATES}")
    kept = dict(found)
    if dialect.inserted is not None:
        cur.execute(f"SELECT {dialect.inserted}")
        kept["waiting"] = kept.get("waiting", 0) - int(cur.fetchone()[0])
    rows = [(state, 0, n) for state, n in sorted(kept.items()) if n]
    if rows:
        cur.executemany(dialect.add_count, rows)
    return found
