"""Filling a queue's table quickly with many delayed or finished jobs, for the tests of what
must not grow with the table."""

from __future__ import annotations

import time

import reqrunner
from reqrunner.store.dialects import JOBS
from reqrunner.store.records import NewJob

CHUNK = 5_000


def add_rows(queue: reqrunner.JobQueue, state: str, n: int, *, finished_ago: float = 0.0) -> None:
    """Add ``n`` jobs in ``state``: ``waiting`` ones due in a year, ``failed`` / ``done`` ones
    finished ``finished_ago`` seconds ago."""
    now = time.time()
    at = now + 365 * 86400 if state == "waiting" else now - finished_ago
    for start in range(0, n, CHUNK):
        rows = [
            NewJob("t.noop", "default", state, 0, "[[], {}]", at, 1, 3, 300.0, 5.0, None, None, now)
            for _ in range(min(CHUNK, n - start))
        ]
        queue.store.enqueue_many(rows)
    if state != "waiting":
        with queue.store.db.write() as cur:
            cur.execute(
                queue.dialect.q(
                    f"UPDATE {JOBS} SET finished_at = available_at "
                    "WHERE state = ? AND finished_at IS NULL"
                ),
                (state,),
            )
