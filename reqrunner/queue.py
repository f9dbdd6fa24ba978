"""``JobQueue``: the one object a site creates; it ties the store, the jobs and the runner."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from types import MappingProxyType
from typing import Any, ParamSpec, TypeVar, overload

from sqlalchemy.engine import Engine

from .errors import JobNotFound
from .jobs import Job, JobOptions
from .models import JobInfo, JobState, Limits, QueueStats, RunReport
from .runner import Runner
from .store.database import Database, resolve_engine
from .store.manage import Manager
from .store.meta import Meta
from .store.operations import NewJob, Store

__all__ = ["JobQueue"]

P = ParamSpec("P")
R = TypeVar("R")

_UNSET: Any = object()


class JobQueue:
    """A durable job queue in a SQL database, with a bounded runner.

    ``JobQueue()`` keeps its jobs in the SQLite file ``./reqrunner.sqlite3`` (or the database
    named by ``REQRUNNER_DATABASE_URL``); ``JobQueue(url)`` takes any SQLAlchemy URL of SQLite,
    PostgreSQL or MySQL/MariaDB, or an ``Engine``. Nothing connects until the queue is first
    used, and the tables are created then.

    ``keep_done=True`` keeps finished jobs (state ``done``) until :meth:`prune` removes them;
    by default a finished job is deleted. ``busy_timeout`` is how long a SQLite write waits for
    another writer.
    """

    def __init__(
        self,
        url_or_engine: str | Engine | None = None,
        *,
        keep_done: bool = False,
        busy_timeout: float = 5.0,
    ) -> None:
        self.engine = resolve_engine(url_or_engine)
        self._busy_timeout = busy_timeout
        self._db = Database(self.engine, busy_timeout=busy_timeout)
        self.dialect = self._db.dialect
        """The database's dialect: what differs per database (``name``, ``listens``, …)."""
        self.store = Store(self._db, keep_done=keep_done)
        self._manager = Manager(self._db)
        self._meta = Meta(self._db)
        self._jobs: dict[str, Job[Any, Any]] = {}
        self._listeners: list[Callable[[], None]] = []
        self._secret: str | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<reqrunner.JobQueue {self.url}>"

    @property
    def keep_done(self) -> bool:
        """Whether finished jobs are kept (state ``done``) until pruned, or deleted at once."""
        return self.store.keep_done

    def with_database(self, url_or_engine: str | Engine) -> JobQueue:
        """A queue on another database with the same jobs registered and the same options
        (what the CLI's ``--db`` uses to point an app's jobs at another store)."""
        other = JobQueue(url_or_engine, keep_done=self.keep_done, busy_timeout=self._busy_timeout)
        for name, defined in self._jobs.items():
            other._jobs[name] = Job(other, defined.fn, defined.options)
        return other

    @property
    def url(self) -> str:
        """The database URL with any password hidden."""
        return self._db.safe_url

    @property
    def jobs(self) -> Mapping[str, Job[Any, Any]]:
        """The registered jobs by name."""
        return MappingProxyType(self._jobs)

    # -- declaring and dispatching --------------------------------------------------------------

    @overload
    def job(self, fn: Callable[P, R], /) -> Job[P, R]: ...

    @overload
    def job(
        self,
        /,
        *,
        name: str | None = None,
        attempts: int = 3,
        ttr: float = 300,
        backoff: float = 5,
        priority: int = 0,
        queue: str = "default",
        unique: bool = False,
    ) -> Callable[[Callable[P, R]], Job[P, R]]: ...

    def job(
        self,
        fn: Callable[P, R] | None = None,
        /,
        *,
        name: str | None = None,
        attempts: int = 3,
        ttr: float = 300,
        backoff: float = 5,
        priority: int = 0,
        queue: str = "default",
        unique: bool = False,
    ) -> Job[P, R] | Callable[[Callable[P, R]], Job[P, R]]:
        """Register a function as a job: ``@queue.job`` or ``@queue.job(name=..., ...)``.

        ``attempts``: runs before the job is ``failed``; ``ttr``: seconds a runner may hold it
        without a sign of life before it counts as interrupted; ``backoff``: seconds before the
        first retry, doubled each time; ``priority``: higher runs first; ``unique``: at most one
        unclaimed job per name and arguments (a duplicate dispatch returns the existing id).
        """

        def register(func: Callable[P, R]) -> Job[P, R]:
            if not callable(func):
                raise TypeError(f"@queue.job decorates a function, not {func!r}")
            job_name = name or f"{func.__module__}.{func.__qualname__}"
            options = JobOptions(
                name=job_name,
                attempts=attempts,
                ttr=ttr,
                backoff=backoff,
                priority=priority,
                queue=queue,
                unique=unique,
            )
            defined = Job(self, func, options)
            with self._lock:
                if job_name in self._jobs:
                    raise ValueError(
                        f"a job named {job_name!r} is already registered on this queue; "
                        "give one of them another name=..."
                    )
                self._jobs[job_name] = defined
            return defined

        return register if fn is None else register(fn)

    def dispatch(self, name: str, /, *args: Any, **kwargs: Any) -> int:
        """Dispatch a job by name. A registered job's arguments are checked against its
        function; an unregistered name (a job another process defines) is stored as given."""
        defined = self._jobs.get(name)
        if defined is None:
            defined = Job(self, _any_arguments, JobOptions(name=name))
        return defined.dispatch(*args, **kwargs)

    def on_dispatch(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` after every dispatch made through this queue in this process."""
        self._listeners.append(callback)

    def enqueue(self, job: NewJob, /) -> int:
        """Store one job a :class:`Job` built and tell the ``on_dispatch`` listeners; its id.

        This is what ``dispatch`` ends in; call ``dispatch`` rather than this.
        """
        job_id = self.store.enqueue(job)
        for callback in self._listeners:
            callback()
        return job_id

    def enqueue_many(self, jobs: Sequence[NewJob], /) -> list[int]:
        """Store jobs a :class:`Job` built, in one transaction, and tell the listeners once."""
        ids = self.store.enqueue_many(jobs)
        for callback in self._listeners:
            callback()
        return ids

    # -- running ----------------------------------------------------------------------------------

    def run(
        self,
        limits: Limits | None = None,
        *,
        max_jobs: int | None = _UNSET,
        max_time: float | None = _UNSET,
        max_memory: int | float | str | None = _UNSET,
        queues: Sequence[str] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> RunReport:
        """Run due jobs until none is due or a limit is reached; say what happened.

        Defaults are PKP's: 30 jobs, 30 seconds, 80 % of the memory limit. ``queues`` restricts
        the run to those queue names; ``should_stop`` is asked between jobs.
        """
        given: dict[str, Any] = {
            k: v
            for k, v in (("max_jobs", max_jobs), ("max_time", max_time), ("max_memory", max_memory))
            if v is not _UNSET
        }
        if limits is None:
            limits = Limits(**given)
        elif given:
            raise TypeError("pass either limits=Limits(...) or max_* keywords, not both")
        elif not isinstance(limits, Limits):
            raise TypeError(f"limits must be a reqrunner.Limits, not {limits!r}")
        if isinstance(queues, str):
            raise TypeError(f"queues is a list of queue names; write queues=[{queues!r}]")
        return Runner(self.store, self._jobs, limits, queues=queues, should_stop=should_stop).run()

    def next_due_in(self, queues: Sequence[str] | None = None) -> float | None:
        """Seconds until a job can be claimed (0.0 when one can now), None when none waits."""
        at = self.store.next_due_at(queues)
        return None if at is None else max(0.0, at - time.time())

    def has_due(self, queues: Sequence[str] | None = None) -> bool:
        """Whether a runner would find a job to claim now (one indexed query, no cache)."""
        return self.store.has_due(queues)

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
        return self._manager.get(_job_id(job_id))

    def retry(self, job_id: int) -> bool:
        """Make a failed (or waiting) job due now with its attempts reset. False if it is
        reserved or done; :class:`JobNotFound` if there is no such job."""
        return self._changed(self._manager.retry(_job_id(job_id)), job_id)

    def retry_failed(self) -> int:
        """Retry every failed job; return how many."""
        return self._manager.retry(None)

    def delete(self, job_id: int) -> bool:
        """Delete a job whatever its state and return True; :class:`JobNotFound` if there is
        no such job. (True rather than None, so that ``if queue.delete(id):`` stays right.)"""
        if self._manager.delete(_job_id(job_id)) == 0:
            raise JobNotFound(job_id)
        return True

    def delete_failed(self) -> int:
        """Delete every failed job; return how many."""
        return self._manager.delete(None)

    def release(self, job_id: int) -> bool:
        """Free a stuck reservation: the job is due again now. False if it was not reserved;
        :class:`JobNotFound` if there is no such job."""
        return self._changed(self._manager.release(_job_id(job_id)), job_id)

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

    def use_once(self, name: str, until: float) -> bool:
        """Record ``name`` as used until ``until`` (epoch seconds), across all processes; True
        the first time, False while the record lasts (what makes a run token single-use)."""
        return self._meta.use_once(name, until)

    def close(self) -> None:
        """Close this thread's connections and the engine's pool."""
        self._db.close()


def _any_arguments(*args: Any, **kwargs: Any) -> None:
    """Stands in for a job function another process defines (any arguments fit)."""


def _job_id(job_id: object) -> int:
    if isinstance(job_id, bool) or not isinstance(job_id, int):
        raise TypeError(f"a job id is an int, not {job_id!r}")
    return job_id
