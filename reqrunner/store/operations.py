"""The job store's hot path: enqueue, claim, finish, fail, renew leases, recover dead runners.

Every operation is one short transaction. A runner's work is a sequence of *cycles*: one
transaction writes the outcomes of the jobs it just ran and claims the next batch, so a batch of
fast jobs costs one commit, not two per job. Finishing and failing are fenced by the claim's
token: a runner whose lease was taken over changes nothing.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from .database import Cursor, Database
from .dialects import INSERT_COLUMNS, JOBS

__all__ = ["Ack", "Claimed", "CycleResult", "NewJob", "Store"]

log = logging.getLogger("reqrunner.store")

#: Rows per multi-row INSERT: under SQLite's 32,766 host parameters and MySQL's packet size.
INSERT_CHUNK = 500
#: How often (seconds) one process looks for expired leases while it claims.
RECOVER_EVERY = 1.0
#: Seconds between writes of a process's outcome counts, and the counters' granularity.
TALLY_EVERY = 5.0
COUNTER_BUCKET = 300
#: Keep this many entries of a job's attempt history.
HISTORY_KEEP = 20


class NewJob(NamedTuple):
    """One row to insert, its fields in the order of ``sql.INSERT_COLUMNS`` (a tuple, so a
    chunk of them flattens straight into a multi-row INSERT's parameters)."""

    name: str
    queue: str
    state: str
    priority: int
    payload: str
    available_at: float
    attempts: int
    max_attempts: int
    ttr: float
    backoff: float
    unique_slot: str | None
    """The hash of the unique key, or None."""
    unique_key: str | None
    created_at: float


assert NewJob._fields == INSERT_COLUMNS


@dataclass(slots=True)
class Claimed:
    """A job this runner holds a lease on."""

    id: int
    name: str
    queue: str
    payload: str
    attempts: int
    max_attempts: int
    ttr: float
    backoff: float
    priority: int
    available_at: float
    history: str | None
    token: str


@dataclass(frozen=True, slots=True)
class Ack:
    """The outcome of one claimed job, written in the runner's next cycle.

    ``kind``: ``done``; ``retry`` (back to waiting at ``available_at``); ``failed``;
    ``release`` (claimed but never started: back to waiting, the attempt not counted).
    """

    job_id: int
    token: str
    kind: Literal["done", "retry", "failed", "release"]
    available_at: float = 0.0
    error: tuple[str, str, str] | None = None
    history: str | None = None


@dataclass(slots=True)
class CycleResult:
    claimed: list[Claimed] = field(default_factory=list)
    interrupted: int = 0
    lost: int = 0
    """Acks that changed nothing because the lease had been taken over."""


def history_with(history: str | None, entry: dict[str, Any]) -> str:
    """The JSON attempt history with ``entry`` appended (the oldest dropped past the cap)."""
    entries: list[dict[str, Any]] = json.loads(history) if history else []
    entries.append(entry)
    return json.dumps(entries[-HISTORY_KEEP:], separators=(",", ":"))


class Store:
    """Job operations over one :class:`~reqrunner.database.Database`."""

    def __init__(self, db: Database, *, keep_done: bool = False) -> None:
        self.db = db
        self.sql = db.sql
        self.keep_done = keep_done
        self._last_recover = 0.0
        # Outcome counts for the admin's "finished in the last hour/day", written with a
        # cycle at most every TALLY_EVERY seconds (and when a run ends): per job they would
        # make every runner contend for the same counter rows.
        self._tally: Counter[str] = Counter()
        self._tally_lock = threading.Lock()
        self._flushed = time.monotonic()
        self._insert_one = self.sql.insert_one()

    # -- dispatch -------------------------------------------------------------------------------

    def enqueue(self, job: NewJob) -> int:
        with self.db.write() as cur:
            if job.unique_slot is not None:
                return self._enqueue_unique(cur, job)
            if self.sql.name == "mysql":
                cur.execute(self._insert_one, job)
                return int(cur.lastrowid)  # type: ignore[attr-defined]
            # On PostgreSQL the statement also sends the NOTIFY: one round trip, not two.
            cur.execute(self._insert_one, job)
            return int(cur.fetchone()[0])

    def enqueue_many(self, batch: Sequence[NewJob]) -> list[int]:
        """Insert many jobs in chunked multi-row INSERTs inside one transaction."""
        ids: list[int] = []
        with self.db.write() as cur:
            plain = [job for job in batch if job.unique_slot is None]
            if self.sql.name == "postgresql" and plain:
                # One statement whatever the count: the columns travel as 13 arrays.
                columns = [list(column) for column in zip(*plain, strict=True)]
                cur.execute(self.sql.insert_arrays(), columns)
                ids.extend(sorted(int(row[0]) for row in cur.fetchall()))
                plain = []
            for start in range(0, len(plain), INSERT_CHUNK):
                chunk = plain[start : start + INSERT_CHUNK]
                params = [value for job in chunk for value in job]
                if self.sql.returning:
                    cur.execute(self.sql.insert(len(chunk), returning=True), params)
                    ids.extend(sorted(int(row[0]) for row in cur.fetchall()))
                else:
                    # InnoDB hands a multi-row insert consecutive ids (innodb_autoinc_lock_mode
                    # 1 and 2 both do for a single simple INSERT), starting at lastrowid.
                    cur.execute(self.sql.insert(len(chunk), returning=False), params)
                    first = int(cur.lastrowid)  # type: ignore[attr-defined]
                    ids.extend(range(first, first + len(chunk)))
            by_position = iter(ids)
            result = [
                self._enqueue_unique(cur, job) if job.unique_slot is not None else next(by_position)
                for job in batch
            ]
            self._notify(cur, {job.queue for job in batch})
        return result

    def _enqueue_unique(self, cur: Cursor, job: NewJob) -> int:
        """Insert unless an unclaimed job has the same key; return the new or existing id."""
        select = self.sql.q(f"SELECT id FROM {JOBS} WHERE unique_slot = ?")
        for _ in range(5):
            if self.sql.name == "mysql":
                try:
                    cur.execute(self.sql.insert_unique(), job)
                    self._notify(cur, {job.queue})
                    return int(cur.lastrowid)  # type: ignore[attr-defined]
                except Exception as exc:
                    if not self.db.is_integrity_error(exc):
                        raise
            else:
                cur.execute(self.sql.insert_unique(), job)
                row = cur.fetchone()
                if row is not None:
                    self._notify(cur, {job.queue})
                    return int(row[0])
            cur.execute(select, (job.unique_slot,))
            row = cur.fetchone()
            if row is not None:
                return int(row[0])
            # The holder was claimed between our insert and our look-up: try again.
        raise RuntimeError(f"could not insert unique job {job.name!r} after 5 tries")

    def _notify(self, cur: Cursor, queues: set[str]) -> None:
        """Wake PostgreSQL workers that LISTEN on channel ``reqrunner``: one NOTIFY per queue,
        delivered when (and only if) this transaction commits."""
        if self.sql.name == "postgresql":
            for name in sorted(queues):
                cur.execute("SELECT pg_notify('reqrunner', %s)", (name,))

    # -- the runner's cycle ---------------------------------------------------------------------

    def cycle(
        self,
        acks: Sequence[Ack],
        *,
        claim: int = 0,
        queues: Sequence[str] | None = None,
        final: bool = False,
    ) -> CycleResult:
        """Write ``acks``, then (if ``claim``) recover expired leases and claim up to ``claim``
        due jobs, all in one transaction. ``final``: the run is ending, so the outcome counts
        this process has gathered are written too."""
        counts = Counter(ack.kind for ack in acks if ack.kind != "release")
        with self._tally_lock:
            tally = self._tally + counts
            flush = bool(tally) and (final or time.monotonic() - self._flushed >= TALLY_EVERY)
        if not acks and not claim and not flush:
            return CycleResult()
        recover = bool(claim) and time.time() - self._last_recover >= RECOVER_EVERY

        def work(cur: Cursor) -> CycleResult:
            now = time.time()
            result = CycleResult()
            if acks:
                result.lost = self._write_acks(cur, acks, now)
            if claim:
                if recover:
                    result.interrupted = self._recover(cur, now)
                result.claimed = self._claim(cur, claim, queues or (), now)
            if flush or result.interrupted:
                written = tally + Counter(interrupted=result.interrupted)
                self._write_tally(cur, written, now)
            return result

        result = self.db.write_retrying(work)
        with self._tally_lock:
            if flush or result.interrupted:
                self._tally -= tally
                self._flushed = time.monotonic()
            else:
                self._tally += counts
        if recover:
            self._last_recover = time.time()
        if result.lost:
            log.warning(
                "%d job outcome(s) not written: their lease had been taken over", result.lost
            )
        return result

    def _write_tally(self, cur: Cursor, tally: Counter[str], now: float) -> None:
        bucket = int(now // COUNTER_BUCKET * COUNTER_BUCKET)
        rows = [(bucket, kind, n) for kind, n in sorted(tally.items()) if n > 0]
        if rows:
            # sorted: runners upsert the same rows in one order, so they never deadlock
            cur.executemany(self.sql.add_counter(), rows)

    def count_finished(self, since: float) -> dict[str, int]:
        """Outcomes counted since ``since`` (at the counters' 5-minute granularity)."""
        with self.db.read() as cur:
            cur.execute(
                self.sql.q(
                    "SELECT outcome, SUM(n) FROM reqrunner_counters WHERE bucket >= ? "
                    "GROUP BY outcome"
                ),
                (int(since // COUNTER_BUCKET * COUNTER_BUCKET),),
            )
            found = {str(kind): int(n) for kind, n in cur.fetchall()}
        with self._tally_lock:  # this process's outcomes not yet written
            for kind, n in self._tally.items():
                found[kind] = found.get(kind, 0) + n
        return {kind: found.get(kind, 0) for kind in ("done", "retry", "failed", "interrupted")}

    def _claim(self, cur: Cursor, n: int, queues: Sequence[str], now: float) -> list[Claimed]:
        token = secrets.token_hex(16)
        head = (token, now, now)
        where = (now, *queues, n)
        if self.sql.returning:
            cur.execute(self.sql.claim(len(queues)), head + where)
            rows = cur.fetchall()
        else:
            cur.execute(self.sql.claim(len(queues)), where)
            selected = cur.fetchall()
            if not selected:
                return []
            cur.execute(self.sql.mark_claimed(len(selected)), head + tuple(r[0] for r in selected))
            rows = [(*r[:4], r[4] + 1, *r[5:]) for r in selected]
        jobs = [
            Claimed(
                int(r[0]),
                r[1],
                r[2],
                r[3],
                int(r[4]),
                int(r[5]),
                float(r[6]),
                float(r[7]),
                int(r[8]),
                float(r[9]),
                r[10],
                token,
            )
            for r in rows
        ]
        # RETURNING gives no order; run them in the order they were chosen.
        jobs.sort(key=lambda j: (-j.priority, j.available_at, j.id))
        return jobs

    def _write_acks(self, cur: Cursor, acks: Sequence[Ack], now: float) -> int:
        lost = 0
        done: dict[str, list[int]] = {}
        for ack in acks:
            if ack.kind == "done":
                done.setdefault(ack.token, []).append(ack.job_id)
                continue
            cur.execute(*self._outcome_statement(ack, now))
            lost += cur.rowcount != 1
        for token, ids in done.items():
            if self.keep_done:
                cur.execute(self.sql.keep_done(len(ids)), (now, token, *ids))
            else:
                cur.execute(self.sql.delete_done(len(ids)), (token, *ids))
            lost += len(ids) - cur.rowcount
        return lost

    def _outcome_statement(self, ack: Ack, now: float) -> tuple[str, tuple[Any, ...]]:
        q = self.sql.q
        fence = (ack.job_id, ack.token)
        if ack.kind == "release":
            return (
                q(
                    f"UPDATE {JOBS} SET state = 'waiting', token = NULL, reserved_until = NULL, "
                    "attempts = attempts - 1 WHERE id = ? AND token = ?"
                ),
                fence,
            )
        err_type, err_message, err_tb = ack.error or (None, None, None)
        if ack.kind == "retry":
            return (
                q(
                    f"UPDATE {JOBS} SET state = 'waiting', token = NULL, reserved_until = NULL, "
                    "available_at = ?, error_type = ?, error_message = ?, error_traceback = ?, "
                    "history = ? WHERE id = ? AND token = ?"
                ),
                (ack.available_at, err_type, err_message, err_tb, ack.history, *fence),
            )
        return (
            q(
                f"UPDATE {JOBS} SET state = 'failed', token = NULL, reserved_until = NULL, "
                "finished_at = ?, error_type = ?, error_message = ?, error_traceback = ?, "
                "history = ? WHERE id = ? AND token = ?"
            ),
            (now, err_type, err_message, err_tb, ack.history, *fence),
        )

    def _recover(self, cur: Cursor, now: float) -> int:
        """Put jobs of dead runners (expired leases) back to waiting, or fail them when their
        attempts are spent, recording each as *interrupted*."""
        cur.execute(self.sql.expired(), (now, 100))
        rows = cur.fetchall()
        for job_id, name, token, attempts, max_attempts, history in rows:
            message = "the runner holding this job stopped before finishing it (lease expired)"
            entry = {"attempt": attempts, "at": now, "outcome": "interrupted", "error": message}
            ack = Ack(
                int(job_id),
                token,
                "retry" if attempts < max_attempts else "failed",
                available_at=now,
                error=("reqrunner.JobInterrupted", message, ""),
                history=history_with(history, entry),
            )
            cur.execute(*self._outcome_statement(ack, now))
            log.warning(
                "job %s %s interrupted on attempt %s/%s: %s",
                job_id,
                name,
                attempts,
                max_attempts,
                message,
            )
        return len(rows)

    # -- leases of running jobs -----------------------------------------------------------------

    def renew(self, token: str) -> int:
        """Extend the lease of every job claimed with ``token`` by its ``ttr``; return how
        many are still held."""
        with self.db.write() as cur:
            cur.execute(
                self.sql.q(
                    f"UPDATE {JOBS} SET reserved_until = ? + ttr "
                    "WHERE token = ? AND state = 'reserved'"
                ),
                (time.time(), token),
            )
            return int(cur.rowcount)

    def progress(self, job_id: int, token: str, fraction: float, label: str) -> bool:
        with self.db.write() as cur:
            cur.execute(
                self.sql.q(
                    f"UPDATE {JOBS} SET progress = ?, label = ?, reserved_until = ? + ttr "
                    "WHERE id = ? AND token = ?"
                ),
                (fraction, label[:255], time.time(), job_id, token),
            )
            return bool(cur.rowcount == 1)

    def describe(self, job_id: int, token: str, text: str) -> bool:
        with self.db.write() as cur:
            cur.execute(
                self.sql.q(f"UPDATE {JOBS} SET description = ? WHERE id = ? AND token = ?"),
                (text, job_id, token),
            )
            return bool(cur.rowcount == 1)

    # -- what is due ----------------------------------------------------------------------------

    def has_due(self, queues: Sequence[str] | None = None) -> bool:
        """Whether a claim would find a job now: a due waiting job, or a lease to recover."""
        qf, args = _queue_clause(queues)
        now = time.time()
        with self.db.read() as cur:
            cur.execute(
                self.sql.q(
                    f"SELECT 1 FROM {JOBS} WHERE state = 'waiting' AND available_at <= ?{qf} "
                    "LIMIT 1"
                ),
                (now, *args),
            )
            if cur.fetchone() is not None:
                return True
            cur.execute(
                self.sql.q(
                    f"SELECT 1 FROM {JOBS} WHERE state = 'reserved' AND reserved_until < ?{qf} "
                    "LIMIT 1"
                ),
                (now, *args),
            )
            return cur.fetchone() is not None

    def next_due_at(self, queues: Sequence[str] | None = None) -> float | None:
        """The earliest time a job becomes claimable: a waiting job's due time, or a reserved
        job's lease expiry (it will be recovered then). ``None`` when there is no such job."""
        qf, args = _queue_clause(queues)
        with self.db.read() as cur:
            cur.execute(
                self.sql.q(f"SELECT MIN(available_at) FROM {JOBS} WHERE state = 'waiting'{qf}"),
                args,
            )
            waiting = cur.fetchone()[0]
            cur.execute(
                self.sql.q(f"SELECT MIN(reserved_until) FROM {JOBS} WHERE state = 'reserved'{qf}"),
                args,
            )
            expiry = cur.fetchone()[0]
        times = [float(t) for t in (waiting, expiry) if t is not None]
        return min(times) if times else None


def _queue_clause(queues: Sequence[str] | None) -> tuple[str, tuple[str, ...]]:
    if not queues:
        return "", ()
    return f" AND queue IN ({', '.join('?' * len(queues))})", tuple(queues)
