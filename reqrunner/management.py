"""The looking-and-repairing half of :class:`~reqrunner.JobQueue`: stats, lists, one job,
retry, delete, release, prune, and the site-wide values and leases the web side keeps.

A base class of ``JobQueue``, so that the queue's module keeps to declaring, dispatching and
running; every method here is a thin, checked front to the store's management side.
"""

from __future__ import annotations

import os
from datetime import timedelta

from .errors import JobNotFound
from .models import JobInfo, JobState, QueueStats
from .store.database import Database
from .store.facts import StorageFacts, storage_facts
from .store.manage import Manager
from .store.meta import Meta
from .store.operations import Store

__all__ = ["QueueManagement", "job_id_of"]


class QueueManagement:
    """Stats, lists and repairs over a job database (a base of :class:`~reqrunner.JobQueue`,
    which sets these attributes)."""

    store: Store
    _db: Database
    _manager: Manager
    _meta: Meta
    _secret: str | None

    # -- looking and repairing ------------------------------------------------------------------

    def stats(self) -> QueueStats:
        """Counts per state and the age of the oldest due job."""
        return self._manager.stats()

    def list_jobs(
        self,
        state: JobState | str | None = None,
        queue: str | None = None,
        name: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[JobInfo]:
        """Jobs in a state (``waiting``, ``reserved``, ``failed``, ``done``, or ``delayed`` /
        ``due`` for the two kinds of waiting), a queue, or whose name contains ``name``."""
        return self._manager.list_jobs(state, queue, name, limit, offset)

    def count_jobs(
        self, state: JobState | str | None = None, queue: str | None = None, name: str | None = None
    ) -> int:
        """How many jobs :meth:`list_jobs` would find without a limit."""
        return self._manager.count_jobs(state, queue, name)

    def count_finished(self, since: float) -> dict[str, int]:
        """How many job attempts ended since ``since`` (epoch seconds; 5-minute granularity),
        by outcome: ``done``, ``retry``, ``failed`` and ``interrupted``. Counted as they
        happen, so finished jobs count even though they are deleted."""
        return self.store.count_finished(since)

    def get(self, job_id: int) -> JobInfo | None:
        """One job, or None if there is no such job (finished jobs are deleted by default)."""
        return self._manager.get(job_id_of(job_id))

    def get_by_key(self, unique_key: str) -> JobInfo | None:
        """The newest job dispatched with this unique key (``unique=True`` or
        ``using(unique_key=...)``), or None; finished jobs as :meth:`get` finds them."""
        if not isinstance(unique_key, str) or not unique_key:
            raise TypeError(f"a unique key is a non-empty string, not {unique_key!r}")
        return self._manager.get_by_key(unique_key[:255])

    def retry(self, job_id: int) -> bool:
        """Make a failed (or waiting) job due now with its attempts reset. False if it is
        reserved or done; :class:`JobNotFound` if there is no such job."""
        return self._changed(self._manager.retry(job_id_of(job_id)), job_id)

    def retry_failed(self) -> int:
        """Retry every failed job; return how many."""
        return self._manager.retry(None)

    def delete(self, job_id: int) -> bool:
        """Delete a job whatever its state and return True; :class:`JobNotFound` if there is
        no such job. (True rather than None, so that ``if queue.delete(id):`` stays right.)"""
        if self._manager.delete(job_id_of(job_id)) == 0:
            raise JobNotFound(job_id)
        return True

    def delete_failed(self) -> int:
        """Delete every failed job; return how many."""
        return self._manager.delete(None)

    def release(self, job_id: int) -> bool:
        """Free a stuck reservation: the job is due again now. False if it was not reserved;
        :class:`JobNotFound` if there is no such job."""
        return self._changed(self._manager.release(job_id_of(job_id)), job_id)

    def _changed(self, rows: int, job_id: int) -> bool:
        # Nothing changed: either the job is in a state the action does not apply to, or it is
        # gone. Only this rare path pays the second query.
        if rows == 0 and self._manager.get(job_id) is None:
            raise JobNotFound(job_id)
        return rows == 1

    def prune(
        self,
        failed_older_than: timedelta | float | None = timedelta(days=180),
        done_older_than: timedelta | float | None = timedelta(days=7),
    ) -> int:
        """Delete failed and done jobs that finished longer ago than these ages (None keeps
        them); return how many were deleted."""
        return self._manager.prune(failed_older_than, done_older_than)

    # -- site-wide values and leases --------------------------------------------------------------

    def get_meta(self, name: str) -> str | None:
        return self._meta.get(name)

    def set_meta(self, name: str, value: str) -> None:
        self._meta.set(name, value)

    def delete_meta(self, name: str) -> None:
        self._meta.delete(name)

    def get_meta_prefixed(self, prefix: str) -> dict[str, str]:
        """Every stored value whose name starts with ``prefix``."""
        return self._meta.get_prefixed(prefix)

    @property
    def secret(self) -> str:
        """``REQRUNNER_SECRET``, else a secret generated once and kept in the database."""
        if self._secret is None:
            self._secret = os.environ.get("REQRUNNER_SECRET") or self._meta.generated_secret()
        return self._secret

    def acquire_lease(self, name: str, ttl: float) -> str | None:
        """Hold the named lease for ``ttl`` seconds across all processes; its token, or None."""
        return self._meta.acquire(name, ttl)

    def renew_lease(self, name: str, token: str, ttl: float) -> bool:
        return self._meta.renew(name, token, ttl)

    def release_lease(self, name: str, token: str) -> None:
        self._meta.release(name, token)

    def storage_facts(self) -> StorageFacts:
        """A look at the job database for a health check (file, journal mode, size, schema
        version, lock wait); raises :class:`~reqrunner.StoreError` when it is unreachable."""
        return storage_facts(self._db)

    def use_once(self, name: str, until: float) -> bool:
        """Record ``name`` as used until ``until`` (epoch seconds), across all processes; True
        the first time, False while the record lasts (what makes a run token single-use)."""
        return self._meta.use_once(name, until)


def job_id_of(job_id: object) -> int:
    """``job_id`` checked to be a job id (an int)."""
    if isinstance(job_id, bool) or not isinstance(job_id, int):
        raise TypeError(f"a job id is an int, not {job_id!r}")
    return job_id
