"""Results of finished jobs: the return value (as JSON) or the error, kept for a while.

A job whose outcome comes with ``keep_for`` seconds leaves a row in ``reqrunner_results``
written in the same transaction as its outcome, copied from its own row before that row is
deleted (or marked failed), so the result outlives the job when ``keep_done`` is off. Rows
past their expiry are deleted as new results are written and by ``prune``.
"""

from __future__ import annotations

from typing import Any

from .dialects import JOBS, Cursor, Dialect, fetch_records
from .records import Ack

__all__ = ["RESULTS", "expire", "find_key", "keep", "read"]

RESULTS = "reqrunner_results"

_COPIED = (
    "name, queue, priority, payload, attempts, max_attempts, description, unique_key, "
    "created_at, started_at"
)


def keep(cur: Cursor, dialect: Dialect, ack: Ack, now: float) -> None:
    """Keep the result of ``ack`` (a ``done`` or ``failed`` outcome with ``keep_for``), taken
    from the job's row while the claim's token still fences it. Runs before the outcome."""
    q = dialect.q
    cur.execute(q(f"DELETE FROM {RESULTS} WHERE job_id = ?"), (ack.job_id,))
    err_type, err_message, err_tb = ack.error or (None, None, None)
    state = "done" if ack.kind == "done" else "failed"
    cur.execute(
        q(
            f"INSERT INTO {RESULTS} (job_id, state, value, error_type, error_message, "
            f"error_traceback, history, finished_at, expires_at, {_COPIED}) "
            f"SELECT id, ?, ?, ?, ?, ?, COALESCE(?, history), ?, ?, {_COPIED} FROM {JOBS} "
            "WHERE id = ? AND token = ?"
        ),
        (
            state,
            ack.value,
            err_type,
            err_message,
            err_tb,
            ack.history,
            now,
            now + ack.keep_for,
            ack.job_id,
            ack.token,
        ),
    )


def expire(cur: Cursor, dialect: Dialect, now: float) -> int:
    """Delete results past their expiry; how many."""
    cur.execute(dialect.q(f"DELETE FROM {RESULTS} WHERE expires_at < ?"), (now,))
    return int(cur.rowcount)


def read(cur: Cursor, dialect: Dialect, job_id: int, now: float) -> dict[str, Any] | None:
    """The kept, unexpired result of one job as a row dict, or None."""
    cur.execute(
        dialect.q(f"SELECT * FROM {RESULTS} WHERE job_id = ? AND expires_at >= ?"),
        (job_id, now),
    )
    rows = fetch_records(cur)
    return rows[0] if rows else None


def find_key(cur: Cursor, dialect: Dialect, key: str, now: float) -> int | None:
    """The id of the newest job dispatched with unique key ``key``: from the kept results
    (indexed), else from the jobs table (a scan: the key is indexed there only while the job
    is unclaimed, by its hash with the job's name)."""
    q = dialect.q
    cur.execute(
        q(
            f"SELECT job_id FROM {RESULTS} WHERE unique_key = ? AND expires_at >= ? "
            "ORDER BY job_id DESC LIMIT 1"
        ),
        (key, now),
    )
    row = cur.fetchone()
    if row is None:
        cur.execute(
            q(f"SELECT id FROM {JOBS} WHERE unique_key = ? ORDER BY id DESC LIMIT 1"), (key,)
        )
        row = cur.fetchone()
    return None if row is None else int(row[0])
