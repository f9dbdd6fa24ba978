"""The store's side of periodic jobs: which slot each schedule last took, and taking the next.

A schedule's row in ``reqrunner_periodic`` holds the latest slot taken. Taking a slot is one
transaction: read the row, let the caller decide what the slots since then become (jobs, or
nothing), move the row forward with a compare-and-set ``UPDATE … WHERE slot = <what was read>``
and insert the jobs. Of any number of processes that see the same slot come, the one whose
update lands first dispatches it; the others' updates match no row and they insert nothing. A
slot never moves back, so a late process cannot take a slot older than one already taken.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .counts import count_new
from .database import Cursor, Database
from .dialects import JOBS
from .records import NewJob

__all__ = ["Plan", "SlotRow", "Slots"]

_TABLE = "reqrunner_periodic"


@dataclass(frozen=True, slots=True)
class SlotRow:
    """A schedule's row: the latest slot taken, when, what became of it, and its job."""

    slot: float
    taken_at: float
    outcome: str
    """``dispatched``, ``skipped`` (missed slots not caught up), ``overlap`` (the previous run
    was still waiting or running) or ``started`` (the slot the schedule was first seen in)."""
    job_id: int | None


@dataclass(frozen=True, slots=True)
class Plan:
    """What the slots due since a schedule's last one become: the slot the row moves to, the
    jobs to insert (one per slot run, each with the description that names its slot) and the
    outcome recorded."""

    slot: float
    jobs: Sequence[tuple[NewJob, str]]
    outcome: str


Decide = Callable[[float, bool], Plan | None]
"""Given the last slot taken and whether its job is still waiting or running, the plan (None
when no slot is due yet)."""


class Slots:
    """The rows of ``reqrunner_periodic`` over one database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.dialect = db.dialect

    def load(self) -> dict[str, SlotRow]:
        """Every schedule's row, including those of schedules no longer declared."""
        with self.db.read() as cur:
            cur.execute(f"SELECT name, slot, taken_at, outcome, job_id FROM {_TABLE}")
            rows = cur.fetchall()
        return {
            str(name): SlotRow(float(slot), float(at), str(outcome), _id(job_id))
            for name, slot, at, outcome, job_id in rows
        }

    def job_states(self, ids: Sequence[int]) -> dict[int, str]:
        """The states of those of ``ids`` that still exist (finished jobs are deleted)."""
        if not ids:
            return {}
        with self.db.read() as cur:
            cur.execute(
                self.dialect.q(
                    f"SELECT id, state FROM {JOBS} WHERE id IN ({', '.join('?' * len(ids))})"
                ),
                tuple(ids),
            )
            return {int(i): str(s) for i, s in cur.fetchall()}

    def take(self, name: str, start: float, decide: Decide) -> tuple[SlotRow, list[int]]:
        """Take the slots of schedule ``name`` that are due, as ``decide`` plans.

        ``start`` is the slot a schedule with no row yet counts as its last (so a new schedule
        fires from its next slot on, not for its whole past). Returns the row as it now is and
        the ids of the jobs this call dispatched (none when another process took the slots).
        """

        def work(cur: Cursor) -> tuple[SlotRow, list[int]]:
            now = time.time()
            row = self._row(cur, name)
            if row is None:
                cur.execute(
                    self.dialect.insert_ignore(_TABLE, "name, slot, taken_at, outcome"),
                    (name, start, now, "started"),
                )
                row = self._row(cur, name)
                assert row is not None
            running = row.job_id is not None and self._running(cur, row.job_id)
            plan = decide(row.slot, running)
            if plan is None:
                return row, []
            cur.execute(
                self.dialect.q(
                    f"UPDATE {_TABLE} SET slot = ?, taken_at = ?, outcome = ? "
                    "WHERE name = ? AND slot = ?"
                ),
                (plan.slot, now, plan.outcome, name, row.slot),
            )
            if cur.rowcount != 1:
                # Another process moved the row since we read it: the slots are its.
                return row, []
            ids: list[int] = []
            for job, description in plan.jobs:
                job_id = self.dialect.insert_one(cur, job)
                cur.execute(
                    self.dialect.q(f"UPDATE {JOBS} SET description = ? WHERE id = ?"),
                    (description, job_id),
                )
                ids.append(job_id)
            if not self.dialect.counts_inserts:  # else insert_one counted each
                count_new(cur, self.dialect, [job.state for job, _ in plan.jobs])
            if not ids:
                return SlotRow(plan.slot, now, plan.outcome, row.job_id), ids
            cur.execute(
                self.dialect.q(f"UPDATE {_TABLE} SET job_id = ? WHERE name = ?"),
                (ids[-1], name),
            )
            return SlotRow(plan.slot, now, plan.outcome, ids[-1]), ids

        return self.db.write_retrying(work)

    def _row(self, cur: Cursor, name: str) -> SlotRow | None:
        cur.execute(
            self.dialect.q(f"SELECT slot, taken_at, outcome, job_id FROM {_TABLE} WHERE name = ?"),
            (name,),
        )
        found = cur.fetchone()
        if found is None:
            return None
        slot, at, outcome, job_id = found
        return SlotRow(float(slot), float(at), str(outcome), _id(job_id))

    def _running(self, cur: Cursor, job_id: int) -> bool:
        cur.execute(
            self.dialect.q(
                f"SELECT 1 FROM {JOBS} WHERE id = ? AND state IN ('waiting', 'reserved')"
            ),
            (job_id,),
        )
        return cur.fetchone() is not None


def _id(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]
