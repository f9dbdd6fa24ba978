"""Deleting old failed and done jobs without stalling the site, and doing it by default.

A prune is a series of short transactions, each deleting a batch of the oldest expired rows
through the finished index. The batch is sized so that a transaction holds its locks for about
:data:`BATCH_SECONDS` (SQLite has one write lock for the whole file: a dispatch waits for the
batch in progress, never for the whole prune), and after each batch the prune pauses as long as
the batch took, so that waiting writers get the lock between two batches.

:class:`Retention` is what :meth:`JobQueue.run` uses to prune a little at a time: at most once
per :data:`PRUNE_EVERY` seconds per process, at most :data:`STEP_ROWS` rows, so a site that
never calls ``prune`` still keeps a bounded table.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from .counts import Moves
from .database import Cursor, Database
from .dialects import JOBS

__all__ = [
    "BATCH_SECONDS",
    "PRUNE_EVERY",
    "STEP_ROWS",
    "Retention",
    "age_seconds",
    "prune_state",
]

log = logging.getLogger("reqrunner.store")

#: Seconds one prune transaction aims to hold the database's locks.
BATCH_SECONDS = 0.02
#: Bounds of a batch, in rows.
MIN_BATCH, MAX_BATCH = 50, 5_000
#: Seconds between two automatic prune steps of one process.
PRUNE_EVERY = 60.0
#: Rows one automatic step deletes at most (per state).
STEP_ROWS = 2_000


def age_seconds(value: timedelta | float | None, what: str) -> float | None:
    """An age given as a timedelta or seconds, in seconds; a ValueError for anything else."""
    if value is None:
        return None
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        raise ValueError(f"{what} must be a timedelta or seconds >= 0, or None; got {value!r}")
    return float(seconds)


def prune_state(db: Database, state: str, before: float, max_rows: int | None = None) -> int:
    """Delete ``state`` jobs that finished before ``before`` (epoch seconds) in short batches,
    at most ``max_rows`` of them (None: all); how many were deleted."""
    dialect = db.dialect
    removed, batch = 0, MIN_BATCH * 4
    while max_rows is None or removed < max_rows:
        want = batch if max_rows is None else min(batch, max_rows - removed)
        start = time.monotonic()

        def work(cur: Cursor, want: int = want) -> int:
            deleted = dialect.prune_batch(cur, state, before, want)
            moves = Moves()
            moves.add(state, -deleted)
            moves.write(cur, dialect)
            return deleted

        deleted = db.write_retrying(work)
        took = time.monotonic() - start
        removed += deleted
        if deleted < want:
            break
        # Aim the next batch at BATCH_SECONDS, growing at most fourfold at a time.
        batch = int(min(MAX_BATCH, batch * 4, max(MIN_BATCH, batch * BATCH_SECONDS / took)))
        time.sleep(min(took, 0.1))
    return removed


def _any_expired(db: Database, state: str, before: float) -> bool:
    """Whether a prune would delete anything: a read, so that a process that lives for one
    page view (CGI) and finds nothing to prune takes no write lock for it."""
    dialect = db.dialect
    with db.read() as cur:
        cur.execute(
            dialect.q(
                f"SELECT 1 FROM {JOBS}{dialect.use_index('ix_reqrunner_jobs_finished')} "
                "WHERE state = ? AND finished_at IS NOT NULL AND finished_at < ? LIMIT 1"
            ),
            (state, before),
        )
        return cur.fetchone() is not None


class Retention:
    """How long failed and done jobs are kept, and the automatic pruning of older ones.

    ``failed`` / ``done``: ages in seconds (None keeps them forever).
    """

    def __init__(self, failed: float | None, done: float | None) -> None:
        self.failed = failed
        self.done = done
        self._next = 0.0
        self._lock = threading.Lock()

    def due(self) -> bool:
        """Whether this process's next automatic step is due (and claim it if so)."""
        if self.failed is None and self.done is None:
            return False
        now = time.monotonic()
        with self._lock:
            if now < self._next:
                return False
            self._next = now + PRUNE_EVERY
            return True

    def step(self, db: Database) -> int:
        """One automatic step: at most :data:`STEP_ROWS` rows per state; how many were
        deleted. Errors are logged, never raised: pruning must not fail a run."""
        try:
            now = time.time()
            removed = sum(
                prune_state(db, state, now - age, STEP_ROWS)
                for state, age in (("failed", self.failed), ("done", self.done))
                if age is not None and _any_expired(db, state, now - age)
            )
            db.dialect.after_prune(removed)
        except Exception:
            log.exception("pruning old jobs failed; the next run tries again")
            return 0
        if removed:
            log.info("pruned %d old job(s)", removed)
        return removed
