"""The job store's hot path: enqueue, the claim cycle, the leases of running jobs, what is due.

Every operation is one short transaction. A runner's work is a sequence of *cycles*: one
transaction writes the outcomes of the jobs it just ran (``outcomes.py``) and claims the next
batch (the dialect's claim), so a batch of fast jobs costs one commit, not two per job.
Finishing and failing are fenced by the claim's token: a runner whose lease was taken over
changes nothing.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import Counter
from collections.abc import Sequence

from . import outcomes
from .counts import Moves, count_ignored, count_new
from .database import Cursor, Database
from .dialects import JOBS
from .records import Ack, Claimed, CycleResult, NewJob, history_with, storable

# The records are the store's vocabulary: its users import them from here with the Store.
__all__ = ["Ack", "Claimed", "CycleResult", "NewJob", "Store", "history_with"]

log = logging.getLogger("reqrunner.store")

#: How often (seconds) one process looks for expired leases while it claims.
RECOVER_EVERY = 1.0
#: Seconds between writes of a process's outcome counts, and the counters' granularity.
TALLY_EVERY = 5.0
COUNTER_BUCKET = 300


class Store:
    """The job operations a queue, a runner and a job context use, over one database.

    - dispatch: :meth:`enqueue`, :meth:`enqueue_many`;
    - the runner's claim cycle: :meth:`cycle` (write outcomes, recover expired leases, claim),
      :meth:`count_finished`;
    - a running job's lease: :meth:`renew`, :meth:`progress`, :meth:`describe`;
    - what is due: :meth:`has_due`, :meth:`next_due_at`.

    What differs per database is asked of ``db.dialect``.
    """

    def __init__(self, db: Database, *, keep_done: bool = False) -> None:
        self.db = db
        self.dialect = db.dialect
        self.keep_done = keep_done
        self._last_recover = 0.0
        # Outcome counts for the admin's "finished in the last hour/day", written with a
        # cycle at most every TALLY_EVERY seconds (and when a run ends): per job they would
        # make every runner contend for the same counter rows.
        self._tally: Counter[str] = Counter()
        self._tally_lock = threading.Lock()
        self._flushed = time.monotonic()
        self._holder = self.dialect.q(f"SELECT id FROM {JOBS} WHERE unique_slot = ?")

    # -- dispatch -------------------------------------------------------------------------------

    def enqueue(self, job: NewJob) -> int:
        """Store one job; its id (for a duplicate unique job, the unclaimed holder's id)."""
        # Where the dialect counts the job in its INSERT, one statement (then, for a
        # duplicate, a look-up): atomic without a transaction.
        with self.db.write(single=True) as cur:
            if job.unique_slot is not None:
                return self._enqueue_unique(cur, job)
            job_id = self.dialect.insert_one(cur, job)
            self._count_one(cur, job)
            return job_id

    def enqueue_many(self, batch: Sequence[NewJob]) -> list[int]:
        """Store many jobs in one transaction; their ids in the order of ``batch``."""
        with self.db.write() as cur:
            return self.insert_with(cur, batch)

    def insert_with(self, cur: Cursor, batch: Sequence[NewJob]) -> list[int]:
        """Store jobs through ``cur``, a cursor in a transaction someone else commits (an
        app's own connection); their ids in the order of ``batch``. Listeners are woken by the
        same transaction's commit."""
        if len(batch) == 1 and batch[0].unique_slot is None:
            job_id = self.dialect.insert_one(cur, batch[0])
            self._count_one(cur, batch[0])
            return [job_id]
        plain_jobs = [job for job in batch if job.unique_slot is None]
        plain = iter(self.dialect.insert_many(cur, plain_jobs))
        count_new(cur, self.dialect, [job.state for job in plain_jobs])
        result = [
            self._enqueue_unique(cur, job) if job.unique_slot is not None else next(plain)
            for job in batch
        ]
        self.dialect.notify(cur, {job.queue for job in batch})
        return result

    def _enqueue_unique(self, cur: Cursor, job: NewJob) -> int:
        """Insert unless an unclaimed job has the same key; return the new or existing id."""
        for _ in range(5):
            new = self.dialect.insert_unique(cur, job)
            if new is not None:
                self._count_one(cur, job)
                return new
            count_ignored(cur, self.dialect)
            cur.execute(self._holder, (job.unique_slot,))
            row = cur.fetchone()
            if row is not None:
                return int(row[0])
            # The holder was claimed between our insert and our look-up: try again.
        raise RuntimeError(f"could not insert unique job {job.name!r} after 5 tries")

    def _count_one(self, cur: Cursor, job: NewJob) -> None:
        if not self.dialect.counts_inserts:
            count_new(cur, self.dialect, (job.state,))

    # -- the runner's cycle ---------------------------------------------------------------------

    def cycle(
        self,
        acks: Sequence[Ack],
        *,
        claim: int = 0,
        queues: Sequence[str] | None = None,
        final: bool = False,
        ids: Sequence[int] | None = None,
    ) -> CycleResult:
        """Write ``acks``, then (if ``claim``) recover expired leases and claim up to ``claim``
        due jobs, all in one transaction. ``final``: the run is ending, so the outcome counts
        this process has gathered are written too. ``ids``: claim only those jobs (all of
        them that are still due and unclaimed), in that order."""
        counts = Counter(ack.kind for ack in acks if ack.kind != "release")
        taken: Counter[str] = Counter()
        with self._tally_lock:
            # What this cycle writes is taken out of the shared tally at once, so that another
            # thread's cycle neither writes it twice nor loses what it adds meanwhile.
            flush = bool(self._tally or counts) and (
                final or time.monotonic() - self._flushed >= TALLY_EVERY
            )
            if flush:
                taken, self._tally = self._tally, Counter()
                self._flushed = time.monotonic()
        if not acks and not claim and not flush:
            return CycleResult()
        recover = bool(claim) and time.time() - self._last_recover >= RECOVER_EVERY
        dialect = self.dialect

        def work(cur: Cursor) -> CycleResult:
            now = time.time()
            result = CycleResult()
            moves = Moves()
            if acks:
                result.lost = outcomes.write_acks(
                    cur, dialect, acks, now, keep_done=self.keep_done, moves=moves
                )
            if claim:
                if recover:
                    result.interrupted = outcomes.recover(cur, dialect, now, moves)
                token = secrets.token_hex(16)
                if ids is None:
                    result.claimed = dialect.claim(cur, token, now, claim, queues or ())
                elif ids:
                    result.claimed = dialect.claim_ids(cur, token, now, ids)
                moves.move("waiting", "reserved", len(result.claimed))
            moves.write(cur, dialect)
            if flush or result.interrupted:
                written = taken + counts + Counter(interrupted=result.interrupted)
                outcomes.write_tally(cur, dialect, written, now, COUNTER_BUCKET)
            return result

        try:
            result = self.db.write_retrying(work, conflicts=True)
        except BaseException:
            with self._tally_lock:
                self._tally += taken
            raise
        if not flush and not result.interrupted:
            with self._tally_lock:
                self._tally += counts
        if recover:
            self._last_recover = time.time()
        if result.lost:
            log.warning(
                "%d job outcome(s) not written: their lease had been taken over", result.lost
            )
        return result

    def count_finished(self, since: float) -> dict[str, int]:
        """Outcomes counted since ``since`` (at the counters' 5-minute granularity)."""
        with self.db.read() as cur:
            cur.execute(
                self.dialect.q(
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

    # -- leases of running jobs -----------------------------------------------------------------

    def renew(self, token: str) -> int:
        """Extend the lease of every job claimed with ``token`` by its ``ttr``; return how
        many are still held."""
        with self.db.write() as cur:
            cur.execute(
                self.dialect.q(
                    f"UPDATE {JOBS} SET reserved_until = ? + ttr "
                    "WHERE token = ? AND state = 'reserved'"
                ),
                (time.time(), token),
            )
            return int(cur.rowcount)

    def progress(self, job_id: int, token: str, fraction: float, label: str) -> bool:
        with self.db.write() as cur:
            cur.execute(
                self.dialect.q(
                    f"UPDATE {JOBS} SET progress = ?, label = ?, reserved_until = ? + ttr "
                    "WHERE id = ? AND token = ?"
                ),
                (fraction, storable(label)[:255], time.time(), job_id, token),
            )
            return bool(cur.rowcount == 1)

    def describe(self, job_id: int, token: str, text: str) -> bool:
        with self.db.write() as cur:
            cur.execute(
                self.dialect.q(f"UPDATE {JOBS} SET description = ? WHERE id = ? AND token = ?"),
                (storable(text), job_id, token),
            )
            return bool(cur.rowcount == 1)

    # -- what is due ----------------------------------------------------------------------------

    def has_due(self, queues: Sequence[str] | None = None) -> bool:
        """Whether a claim would find a job now: a due waiting job, or a lease to recover."""
        qf, args = _queue_clause(queues)
        now = time.time()
        with self.db.read() as cur:
            cur.execute(
                self.dialect.q(
                    f"SELECT 1 FROM {JOBS} WHERE state = 'waiting' AND available_at <= ?{qf} "
                    # In the index's order, for the reason DUE_GUARD gives.
                    "ORDER BY available_at LIMIT 1"
                ),
                (now, *args),
            )
            if cur.fetchone() is not None:
                return True
            cur.execute(
                self.dialect.q(
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
            # ORDER BY … LIMIT 1 rather than MIN(): it walks the due index in order and stops
            # at the first job of the queues asked for.
            cur.execute(
                self.dialect.q(
                    f"SELECT available_at FROM {JOBS} WHERE state = 'waiting'{qf} "
                    "ORDER BY available_at LIMIT 1"
                ),
                args,
            )
            row = cur.fetchone()
            waiting = None if row is None else row[0]
            cur.execute(
                self.dialect.q(
                    f"SELECT MIN(reserved_until) FROM {JOBS} WHERE state = 'reserved'{qf}"
                ),
                args,
            )
            expiry = cur.fetchone()[0]
        times = [float(t) for t in (waiting, expiry) if t is not None]
        return min(times) if times else None


def _queue_clause(queues: Sequence[str] | None) -> tuple[str, tuple[str, ...]]:
    if not queues:
        return "", ()
    return f" AND queue IN ({', '.join('?' * len(queues))})", tuple(queues)
