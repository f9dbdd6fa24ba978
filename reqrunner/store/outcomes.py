"""The writing half of a claim cycle: job outcomes, recovered leases and outcome counters.

Every write is fenced by the claim's token, so a runner whose lease was taken over changes
nothing; the caller counts what was lost.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

from ..errors import JobInterrupted, error_type
from . import results
from .counts import Moves
from .dialects import JOBS, Cursor, Dialect, fetch_records
from .dialects.shared import marks
from .records import Ack, history_with

__all__ = [
    "outcome_statement",
    "recover",
    "superseded",
    "write_acks",
    "write_outcome",
    "write_tally",
]

log = logging.getLogger("reqrunner.store")

#: Expired leases recovered per cycle at most.
RECOVER_BATCH = 100

_INTERRUPTED = "the runner holding this job stopped before finishing it (lease expired)"


def write_acks(
    cur: Cursor,
    dialect: Dialect,
    acks: Sequence[Ack],
    now: float,
    *,
    keep_done: bool,
    moves: Moves,
) -> int:
    """Write the outcomes ``acks``, adding the jobs' moves to ``moves``; how many changed
    nothing (their lease was taken over)."""
    lost = 0
    done: dict[str, list[int]] = {}
    kept = [ack for ack in acks if ack.keep_for > 0 and ack.kind in ("done", "failed")]
    if kept:
        results.expire(cur, dialect, now)
        for ack in kept:
            results.keep(cur, dialect, ack, now)
    waiting = superseded(cur, dialect, [a.job_id for a in acks if a.kind in _BACK_TO_WAITING])
    for ack in acks:
        if ack.kind == "done":
            done.setdefault(ack.token, []).append(ack.job_id)
            continue
        lost += (
            write_outcome(cur, dialect, ack, now, give_way=ack.job_id in waiting, moves=moves) != 1
        )
    for token, ids in done.items():
        if keep_done:
            cur.execute(dialect.keep_done(len(ids)), (now, token, *ids))
        else:
            cur.execute(dialect.delete_done(len(ids)), (token, *ids))
        moves.move("reserved", "done" if keep_done else None, cur.rowcount)
        lost += len(ids) - cur.rowcount
    return lost


def write_outcome(
    cur: Cursor, dialect: Dialect, ack: Ack, now: float, *, give_way: bool, moves: Moves
) -> int:
    """Write one reserved job's ``release``, ``retry`` or ``failed`` outcome, or delete it
    (``give_way``: its unique slot is taken); how many rows it changed (0 or 1)."""
    if give_way:
        cur.execute(dialect.q(f"DELETE FROM {JOBS} WHERE id = ? AND token = ?"), fence(ack))
        target = None
    else:
        cur.execute(*outcome_statement(dialect, ack, now))
        target = "failed" if ack.kind == "failed" else "waiting"
    moves.move("reserved", target, cur.rowcount)
    return int(cur.rowcount)


_BACK_TO_WAITING = ("retry", "release")


def fence(ack: Ack) -> tuple[int, str]:
    """The parameters that limit a write to the job while ``ack``'s claim still holds it."""
    return (ack.job_id, ack.token)


def superseded(cur: Cursor, dialect: Dialect, ids: Sequence[int]) -> set[int]:
    """Which of the unique jobs ``ids``, about to be unclaimed again, find their key's slot
    taken by another unclaimed job (dispatched while they ran).

    Such a job gives way: the one waiting does the same work, and "at most one unclaimed job
    per key" holds. The caller deletes it instead of putting it back.
    """
    if not ids:
        return set()
    cur.execute(
        dialect.q(
            f"SELECT j.id FROM {JOBS} j WHERE j.id IN ({marks(len(ids))}) "
            "AND j.unique_hash IS NOT NULL AND EXISTS "
            f"(SELECT 1 FROM {JOBS} h WHERE h.unique_slot = j.unique_hash AND h.id <> j.id)"
        ),
        tuple(ids),
    )
    found = {int(row[0]) for row in cur.fetchall()}
    if found:
        log.info(
            "job(s) %s gave way to an unclaimed job with the same unique key",
            ", ".join(map(str, sorted(found))),
        )
    return found


def outcome_statement(dialect: Dialect, ack: Ack, now: float) -> tuple[str, tuple[Any, ...]]:
    """The UPDATE that writes a ``release``, ``retry`` or ``failed`` outcome, and its
    parameters."""
    q = dialect.q
    fenced = fence(ack)
    # Back to waiting, a unique job takes its slot back (superseded() said it is free).
    if ack.kind == "release":
        return (
            q(
                f"UPDATE {JOBS} SET state = 'waiting', token = NULL, reserved_until = NULL, "
                "unique_slot = unique_hash, attempts = attempts - 1 WHERE id = ? AND token = ?"
            ),
            fenced,
        )
    err_type, err_message, err_tb = ack.error or (None, None, None)
    if ack.kind == "retry":
        return (
            q(
                f"UPDATE {JOBS} SET state = 'waiting', token = NULL, reserved_until = NULL, "
                "unique_slot = unique_hash, available_at = ?, error_type = ?, "
                "error_message = ?, error_traceback = ?, history = ? WHERE id = ? AND token = ?"
            ),
            (ack.available_at, err_type, err_message, err_tb, ack.history, *fenced),
        )
    return (
        q(
            f"UPDATE {JOBS} SET state = 'failed', token = NULL, reserved_until = NULL, "
            "finished_at = ?, error_type = ?, error_message = ?, error_traceback = ?, "
            "history = ? WHERE id = ? AND token = ?"
        ),
        (now, err_type, err_message, err_tb, ack.history, *fenced),
    )


def recover(cur: Cursor, dialect: Dialect, now: float, moves: Moves) -> int:
    """Put jobs of dead runners (expired leases) back to waiting, or fail them when their
    attempts are spent, recording each as *interrupted* and adding their moves to ``moves``;
    how many."""
    cur.execute(dialect.expired(), (now, RECOVER_BATCH))
    rows = fetch_records(cur)
    attempts_left = [int(job["id"]) for job in rows if job["attempts"] < job["max_attempts"]]
    giving_way = superseded(cur, dialect, attempts_left)
    for job in rows:
        attempts, max_attempts = job["attempts"], job["max_attempts"]
        entry = {"attempt": attempts, "at": now, "outcome": "interrupted", "error": _INTERRUPTED}
        ack = Ack(
            int(job["id"]),
            job["token"],
            "retry" if attempts < max_attempts else "failed",
            available_at=now,
            error=(error_type(JobInterrupted), _INTERRUPTED, ""),
            history=history_with(job["history"], entry),
        )
        write_outcome(cur, dialect, ack, now, give_way=ack.job_id in giving_way, moves=moves)
        log.warning(
            "job %s %s interrupted on attempt %s/%s: %s",
            job["id"],
            job["name"],
            attempts,
            max_attempts,
            _INTERRUPTED,
        )
    return len(rows)


def write_tally(
    cur: Cursor, dialect: Dialect, tally: Counter[str], now: float, bucket_seconds: int
) -> None:
    """Add ``tally`` to the outcome counters of the bucket ``now`` falls in."""
    bucket = int(now // bucket_seconds * bucket_seconds)
    rows = [(bucket, kind, n) for kind, n in sorted(tally.items()) if n > 0]
    if rows:
        # sorted: runners upsert the same rows in one order, so they never deadlock
        cur.executemany(dialect.add_to("reqrunner_counters", ("bucket", "outcome")), rows)
