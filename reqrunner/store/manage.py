"""Looking at and repairing the queue: stats, lists, one job, retry, delete, release, prune.

These are the Queue Manager's and the CLI's operations; none is on a runner's hot path.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from ..models import JobError, JobInfo, JobState, QueueStats
from . import results
from .counts import COUNTED, SPLIT_LIMIT, Moves, due_within, split_waiting, totals
from .database import Database
from .dialects import JOBS, Cursor, fetch_records
from .outcomes import superseded
from .retention import age_seconds, prune_state

__all__ = ["Manager", "state_filter"]

_INFO_COLUMNS = (
    "id, name, queue, state, payload, attempts, max_attempts, priority, ttr, available_at, "
    "reserved_until, progress, label, description, error_type, error_message, error_traceback, "
    "history, created_at, started_at, finished_at, unique_key"
)

_STATES = {s.value for s in JobState} | {"delayed", "due"}

#: The states a job can be retried from.
_RETRYABLE = ("failed", "waiting")

#: Seconds ahead within which a waiting job counts as due in :meth:`Manager.stats`.
DUE_GRACE = 1.0

# The counts come from the kept counts, the due ones from at most SPLIT_LIMIT rows of the due
# index, the oldest due time from its first entry: one statement, so one snapshot on every
# database, and none of it grows with the table.
_STATS = (
    f"SELECT {due_within(SPLIT_LIMIT)}, "
    f"(SELECT MIN(available_at) FROM {JOBS} WHERE state = 'waiting'), {{totals}}"
)

#: Finished states: listed newest first, through the index by finish time (whose partial
#: predicate the condition repeats, so that every database can use it).
_FINISHED = {"failed", "done"}


def state_filter(state: JobState | str | None, now: float) -> tuple[str, tuple[Any, ...]]:
    """SQL condition and parameters for a state name; ``delayed`` and ``due`` split waiting."""
    if state is None:
        return "", ()
    value = state.value if isinstance(state, JobState) else str(state).lower()
    if value not in _STATES:
        raise ValueError(f"unknown job state {state!r}; use one of: {', '.join(sorted(_STATES))}")
    if value == "delayed":
        return "state = 'waiting' AND available_at > ?", (now,)
    if value == "due":
        return "state = 'waiting' AND available_at <= ?", (now,)
    if value in _FINISHED:
        return f"state = '{value}' AND finished_at IS NOT NULL", ()
    # A literal, not a parameter: a partial index's predicate is matched against it.
    return f"state = '{value}'", ()


def _when(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def _info(row: dict[str, Any], kept: dict[str, Any] | None = None) -> JobInfo:
    """A job's snapshot from its row, with its kept result if ``kept`` (a results row)."""
    args, kwargs = json.loads(row["payload"])
    error = (
        JobError(
            type=row["error_type"],
            message=row["error_message"] or "",
            traceback=row["error_traceback"] or "",
        )
        if row["error_type"]
        else None
    )
    return JobInfo(
        id=int(row["id"]),
        name=row["name"],
        queue=row["queue"],
        state=JobState(row["state"]),
        args=tuple(args),
        kwargs=dict(kwargs),
        attempts=int(row["attempts"]),
        max_attempts=int(row["max_attempts"]),
        priority=int(row["priority"]),
        ttr=float(row["ttr"]),
        available_at=datetime.fromtimestamp(row["available_at"], UTC),
        reserved_until=_when(row["reserved_until"]),
        progress=None if row["progress"] is None else float(row["progress"]),
        label=row["label"] or "",
        description=row["description"] or "",
        error=error,
        history=tuple(json.loads(row["history"])) if row["history"] else (),
        created_at=datetime.fromtimestamp(row["created_at"], UTC),
        finished_at=_when(row["finished_at"]),
        unique_key=row.get("unique_key"),
        started_at=_when(row["started_at"]),
        result=None if kept is None or kept["value"] is None else json.loads(kept["value"]),
        result_until=None if kept is None else _when(kept["expires_at"]),
    )


def _finished_info(kept: dict[str, Any]) -> JobInfo:
    """The snapshot of a finished job whose row is gone, from its kept result alone."""
    row = dict(kept, id=kept["job_id"], available_at=kept["created_at"], ttr=0.0)
    row.update(reserved_until=None, progress=None, label=None)
    return _info(row, kept)


class Manager:
    """Administrative reads and writes over one database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.q = db.dialect.q
        self._stats = self.q(_STATS.format(totals=totals(db.dialect)))

    def stats(self) -> QueueStats:
        now = time.time()
        # A job dispatched for now while this runs carries a time a little after ``now``: it
        # counts as waiting, not delayed, if it is due within DUE_GRACE.
        counts, earliest = self._counts(now + DUE_GRACE)
        oldest = None if earliest is None or earliest > now else now - float(earliest)
        return QueueStats(
            waiting=counts["due"],
            delayed=counts["delayed"],
            reserved=counts["reserved"],
            failed=counts["failed"],
            done=counts["done"],
            oldest_due_age=oldest,
        )

    def _counts(self, soon: float) -> tuple[dict[str, int], float | None]:
        """The jobs in each state, waiting ones split into due by ``soon`` and delayed (and
        all of them as ``waiting``), and the earliest due time of a waiting job."""
        with self.db.read() as cur:
            cur.execute(self._stats, (soon,))
            some_due, earliest, waiting, reserved, failed, done = cur.fetchone()
            due, delayed = split_waiting(cur, self.db.dialect, int(waiting), int(some_due), soon)
        counts = {"due": due, "delayed": delayed, "waiting": due + delayed}
        counts.update(reserved=int(reserved), failed=int(failed), done=int(done))
        return counts, None if earliest is None else float(earliest)

    def _where(
        self, state: JobState | str | None, queue: str | None, name: str | None
    ) -> tuple[str, tuple[Any, ...]]:
        clauses: list[str] = []
        params: list[Any] = []
        cond, args = state_filter(state, time.time())
        if cond:
            clauses.append(cond)
            params.extend(args)
        if queue is not None:
            clauses.append("queue = ?")
            params.append(queue)
        if name is not None:
            # A substring of the job name, so "email" finds "shop.jobs.send_email".
            clauses.append("name LIKE ?")
            params.append(f"%{name}%")
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(params)

    def list_jobs(
        self,
        state: JobState | str | None = None,
        queue: str | None = None,
        name: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[JobInfo]:
        if not (isinstance(limit, int) and isinstance(offset, int)) or limit < 1 or offset < 0:
            raise ValueError(f"limit must be >= 1 and offset >= 0, got {limit!r}, {offset!r}")
        where, params = self._where(state, queue, name)
        # Failed and done jobs newest first (what the admin wants to see); the others of one
        # state in the order a runner would take them; all jobs in the order they came. Each
        # order is an index's, so a page costs the same however many jobs there are.
        value = state.value if isinstance(state, JobState) else state and str(state).lower()
        if value in _FINISHED:
            order, index = "finished_at DESC, id DESC", "ix_reqrunner_jobs_finished"
        elif value is None:
            order, index = "id", None
        else:
            order, index = "priority DESC, available_at, id", "ix_reqrunner_jobs_claim"
        hint = self.db.dialect.use_index(index) if index else ""
        with self.db.read() as cur:
            cur.execute(
                self.q(
                    f"SELECT {_INFO_COLUMNS} FROM {JOBS}{hint}{where} ORDER BY {order} "
                    "LIMIT ? OFFSET ?"
                ),
                (*params, limit, offset),
            )
            return [_info(row) for row in fetch_records(cur)]

    def count_jobs(
        self, state: JobState | str | None = None, queue: str | None = None, name: str | None = None
    ) -> int:
        if queue is None and name is None and state is not None:
            # A whole state is read from the kept counts, not counted row by row.
            value = state.value if isinstance(state, JobState) else str(state).lower()
            if value in _STATES:
                return self._counts(time.time())[0][value]
        where, params = self._where(state, queue, name)
        with self.db.read() as cur:
            cur.execute(self.q(f"SELECT COUNT(*) FROM {JOBS}{where}"), params)
            return int(cur.fetchone()[0])

    def get(self, job_id: int) -> JobInfo | None:
        """One job from its row, or from its kept result once the row is gone."""
        dialect = self.db.dialect
        with self.db.read() as cur:
            cur.execute(self.q(f"SELECT {_INFO_COLUMNS} FROM {JOBS} WHERE id = ?"), (job_id,))
            rows = fetch_records(cur)
            finished = not rows or rows[0]["state"] in ("done", "failed")
            kept = results.read(cur, dialect, job_id, time.time()) if finished else None
        if rows:
            return _info(rows[0], kept)
        return None if kept is None else _finished_info(kept)

    def get_by_key(self, key: str) -> JobInfo | None:
        """The newest job dispatched with unique key ``key`` (or its kept result)."""
        with self.db.read() as cur:
            job_id = results.find_key(cur, self.db.dialect, key, time.time())
        return None if job_id is None else self.get(job_id)

    def _update(self, sql: str, params: tuple[Any, ...]) -> int:
        with self.db.write() as cur:
            cur.execute(self.q(sql), params)
            return int(cur.rowcount)

    def _in_state(
        self, cur: Cursor, sql: str, params: tuple[Any, ...], states: tuple[str, ...]
    ) -> str | None:
        """Run ``sql`` (an UPDATE or DELETE of one job, ending in a WHERE clause) for the job
        in each of ``states`` in turn until it changes a row; the state it was in, or None.
        Naming the state in the statement is what tells the counts what moved, on every
        database (MySQL has no ``DELETE … RETURNING``)."""
        for state in states:
            cur.execute(self.q(f"{sql} AND state = '{state}'"), params)
            if cur.rowcount:
                return state
        return None

    def retry(self, job_id: int | None) -> int:
        """Make a failed (or waiting) job due now with fresh attempts; None = every failed job.

        A unique job takes its key's slot back; where another unclaimed job holds it, the
        retried one gives way to it (deleted, counted as retried: its work is due again).
        """
        with self.db.write() as cur:
            if job_id is None:
                cur.execute(self.q(f"SELECT id FROM {JOBS} WHERE state = 'failed'"))
                ids = [int(row[0]) for row in cur.fetchall()]
            else:
                ids = [job_id]
            changed, moves = 0, Moves()
            # One at a time: two failed jobs of one key must not both take the slot back.
            for one in ids:
                if superseded(cur, self.db.dialect, [one]):
                    was = self._in_state(
                        cur, f"DELETE FROM {JOBS} WHERE id = ?", (one,), _RETRYABLE
                    )
                    target = None
                else:
                    was = self._in_state(
                        cur,
                        f"UPDATE {JOBS} SET state = 'waiting', available_at = ?, attempts = 0, "
                        "finished_at = NULL, token = NULL, reserved_until = NULL, "
                        "unique_slot = COALESCE(unique_slot, unique_hash) WHERE id = ?",
                        (time.time(), one),
                        _RETRYABLE,
                    )
                    target = "waiting"
                if was is not None:
                    moves.move(was, target)
                    changed += 1
            moves.write(cur, self.db.dialect)
            return changed

    def delete(self, job_id: int | None) -> int:
        """Delete one job in any state; None = every failed job."""
        with self.db.write() as cur:
            moves = Moves()
            if job_id is None:
                cur.execute(self.q(f"DELETE FROM {JOBS} WHERE state = 'failed'"))
                deleted = int(cur.rowcount)
                moves.add("failed", -deleted)
            else:
                # A deleted job leaves no result behind either: get() must not find it again.
                cur.execute(self.q(f"DELETE FROM {results.RESULTS} WHERE job_id = ?"), (job_id,))
                kept = int(cur.rowcount)
                was = self._in_state(cur, f"DELETE FROM {JOBS} WHERE id = ?", (job_id,), COUNTED)
                if was is not None:
                    moves.add(was, -1)
                deleted = 1 if was is not None else min(kept, 1)
            moves.write(cur, self.db.dialect)
            return deleted

    def release(self, job_id: int) -> int:
        """Free a reserved job: due again now, its lease void, the attempt still counted (the
        holder's outcome, if it ever comes, is fenced off by the cleared token). A unique job
        takes its slot back, or gives way to the unclaimed job that holds it."""
        with self.db.write() as cur:
            if superseded(cur, self.db.dialect, [job_id]):
                cur.execute(
                    self.q(f"DELETE FROM {JOBS} WHERE id = ? AND state = 'reserved'"), (job_id,)
                )
                target = None
            else:
                cur.execute(
                    self.q(
                        f"UPDATE {JOBS} SET state = 'waiting', available_at = ?, token = NULL, "
                        "reserved_until = NULL, unique_slot = unique_hash "
                        "WHERE id = ? AND state = 'reserved'"
                    ),
                    (time.time(), job_id),
                )
                target = "waiting"
            released = int(cur.rowcount)
            moves = Moves()
            moves.move("reserved", target, released)
            moves.write(cur, self.db.dialect)
            return released

    def prune(
        self,
        failed_older_than: timedelta | float | None,
        done_older_than: timedelta | float | None,
    ) -> int:
        failed = age_seconds(failed_older_than, "failed_older_than")
        done = age_seconds(done_older_than, "done_older_than")
        now, removed = time.time(), 0
        for state, age in (("failed", failed), ("done", done)):
            if age is not None:
                removed += prune_state(self.db, state, now - age)
        with self.db.write() as cur:
            results.expire(cur, self.db.dialect, now)
        # Outcome counters are kept for a week: the admin shows the last day.
        self._update("DELETE FROM reqrunner_counters WHERE bucket < ?", (now - 7 * 86400,))
        self.db.dialect.after_prune(removed)
        return removed
