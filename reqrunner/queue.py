"""``JobQueue``: the one object a site creates; it ties the store, the jobs and the runner."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from . import periodic as _periodic
from . import triggers
from .jobs import Job, JobCall, JobOptions, result_seconds
from .management import QueueManagement, job_id_of
from .models import Limits, RunReport
from .resolving import Resolving
from .runner import JobFunction, Runner
from .store.database import Database
from .store.manage import Manager
from .store.meta import Meta
from .store.operations import NewJob, Store
from .store.retention import Retention, age_seconds
from .store.schedules import Slots
from .store.target import Target, resolve
from .store.transactional import InTransaction

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = ["JobQueue"]

P = ParamSpec("P")
R = TypeVar("R")

_UNSET: Any = object()
_NO_LIMITS = Limits(max_jobs=None, max_time=None, max_memory=None)


class JobQueue(QueueManagement):
    """A durable job queue in a SQL database, with a bounded runner.

    ``JobQueue()`` keeps its jobs in the SQLite file ``./reqrunner.sqlite3`` (or the database
    named by ``REQRUNNER_DATABASE_URL``); ``JobQueue(url)`` takes any SQLAlchemy URL of SQLite,
    PostgreSQL or MySQL/MariaDB, or an ``Engine`` (or another queue's ``target``). Nothing
    connects until the queue is first used, and the tables are created then.

    ``keep_done=True`` keeps finished jobs (state ``done``) until :meth:`prune` removes them;
    by default a finished job is deleted. ``result_ttl`` (seconds or a timedelta) keeps what
    finished jobs returned, or the error they failed with, for that long whatever
    ``keep_done`` says: ``queue.get(id).result``; a job may set its own. ``busy_timeout`` is
    how long a SQLite write waits for another writer.

    Old jobs are pruned by default, a little at a time: every :meth:`run` (once a minute per
    process at most, a few thousand rows at most, in short transactions) deletes failed jobs
    that finished more than ``prune_failed_after`` ago (180 days) and kept done jobs older than
    ``prune_done_after`` (7 days). A timedelta or seconds; None keeps them.
    """

    def __init__(
        self,
        url_or_engine: str | Engine | Target | None = None,
        *,
        keep_done: bool = False,
        result_ttl: float | timedelta | None = None,
        busy_timeout: float = 5.0,
        prune_failed_after: timedelta | float | None = timedelta(days=180),
        prune_done_after: timedelta | float | None = timedelta(days=7),
    ) -> None:
        self.result_ttl = result_seconds(result_ttl)
        """Seconds a finished job's result is kept unless the job says otherwise (0: none)."""
        self._retention = Retention(
            age_seconds(prune_failed_after, "prune_failed_after"),
            age_seconds(prune_done_after, "prune_done_after"),
        )
        self._busy_timeout = busy_timeout
        self._db = Database(resolve(url_or_engine), busy_timeout=busy_timeout)
        self.dialect = self._db.dialect
        """The database's dialect: what differs per database (``name``, ``listens``, …)."""
        self.store = Store(self._db, keep_done=keep_done)
        self._in_transaction = InTransaction(self._db, self.store)
        self._manager = Manager(self._db)
        self._meta = Meta(self._db)
        self._jobs: dict[str, Job[Any, Any]] = {}
        self._resolvers: list[Callable[[str], JobFunction | None]] = []
        self._resolved: dict[str, JobFunction | None] = {}
        self._listeners: list[Callable[[], None]] = []
        self.periodic_jobs = _periodic.Periodic(Slots(self._db), self._dispatched)
        """The schedules declared with :meth:`periodic`, and when their next slots come."""
        self._secret: str | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<reqrunner.JobQueue {self.url}>"

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine of the job database: the one given, else one made for the URL
        (on SQLite and PostgreSQL when first asked for: reqrunner's own work there needs
        none). An engine made for a PostgreSQL URL has a pool of its own beside the queue's,
        so a site's transactions through it never take the queue's connections."""
        return self._db.engine

    @property
    def target(self) -> Target:
        """Which job database this queue uses, without building an engine for it."""
        return self._db.target

    @property
    def keep_done(self) -> bool:
        """Whether finished jobs are kept (state ``done``) until pruned, or deleted at once."""
        return self.store.keep_done

    def with_database(self, url_or_engine: str | Engine | Target) -> JobQueue:
        """A queue on another database with the same jobs registered and the same options
        (what the CLI's ``--db`` uses to point an app's jobs at another store)."""
        other = JobQueue(
            url_or_engine,
            keep_done=self.keep_done,
            result_ttl=self.result_ttl,
            busy_timeout=self._busy_timeout,
            prune_failed_after=self._retention.failed,
            prune_done_after=self._retention.done,
        )
        for name, defined in self._jobs.items():
            other._jobs[name] = Job(other, defined.fn, defined.options)
        other._resolvers.extend(self._resolvers)
        for name, schedule in self.periodic_jobs.schedules.items():
            other.periodic_jobs.add(replace(schedule, job=other._jobs[name]))
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
        result_ttl: float | timedelta | None = None,
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
        result_ttl: float | timedelta | None = None,
    ) -> Job[P, R] | Callable[[Callable[P, R]], Job[P, R]]:
        """Register a function as a job: ``@queue.job`` or ``@queue.job(name=..., ...)``.

        ``attempts``: runs before the job is ``failed``; ``ttr``: seconds a runner may hold it
        without a sign of life before it counts as interrupted; ``backoff``: seconds before the
        first retry, doubled each time; ``priority``: higher runs first; ``unique``: at most one
        unclaimed job per name and arguments (a duplicate dispatch returns the existing id);
        ``result_ttl``: how long its result is kept (default: the queue's ``result_ttl``).
        """
        ttl = self.result_ttl if result_ttl is None else result_seconds(result_ttl)

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
                result_ttl=ttl,
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

    def periodic(
        self,
        cron: str | None = None,
        /,
        *,
        every: timedelta | float | None = None,
        tz: str | None = None,
        catch_up: _periodic.CatchUp = "one",
        overlap: bool = False,
        name: str | None = None,
        attempts: int = 3,
        ttr: float = 300,
        backoff: float = 5,
        priority: int = 0,
        queue: str = "default",
    ) -> Callable[[Callable[P, R]], Job[P, R]]:
        """Run a function (no arguments, or only a ``JobContext``) on a schedule, each slot once
        across every process: ``@queue.periodic("*/15 * * * *", tz="Europe/Berlin")`` (cron,
        UTC by default) or ``@queue.periodic(every=3600)``. Missed slots give one run
        (``catch_up="one"``), none (``"skip"``) or one each (``"all"``, bounded); a slot whose
        last run still waits or runs is skipped unless ``overlap=True``. Else as :meth:`job`."""
        spec = _periodic.parse(cron, every, tz, catch_up, overlap)
        declare = self.job(
            name=name, attempts=attempts, ttr=ttr, backoff=backoff, priority=priority, queue=queue
        )

        def register(func: Callable[P, R]) -> Job[P, R]:
            defined = declare(func)
            try:
                self.periodic_jobs.add(_periodic.Schedule.of(defined, spec))
            except TypeError:
                del self._jobs[defined.name]
                raise
            return defined

        return register

    def dispatch(self, name: str, /, *args: Any, **kwargs: Any) -> int:
        """Dispatch a job by name. A registered job's arguments are checked against its
        function; an unregistered name (a job another process defines) is stored as given."""
        defined = self._jobs.get(name)
        if defined is None:
            defined = Job(self, _any_arguments, JobOptions(name=name))
        return defined.dispatch(*args, **kwargs)

    def using(self, name: str, /, **options: Any) -> JobCall:
        """Dispatch options for one call of the job named ``name``:
        ``queue.using("send_mail", after_response=True).dispatch(...)`` is
        ``send_mail.using(after_response=True).dispatch(...)`` (see :meth:`Job.using`)."""
        defined = self._jobs.get(name)
        if defined is None:
            defined = Job(self, _any_arguments, JobOptions(name=name))
        return defined.using(**options)

    def add_resolver(self, resolver: Callable[[str], JobFunction | None]) -> None:
        """Let ``resolver(name)`` supply the function of a stored job whose name no
        ``@queue.job`` registered (None: not one of its own). A runner asks it once per name
        and process; this is how jobs declared by a framework's own API (Django's ``@task``)
        run without being registered here."""
        if not callable(resolver):
            raise TypeError(f"add_resolver takes a callable, not {resolver!r}")
        self._resolvers.append(resolver)

    def on_dispatch(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` after every dispatch made through this queue in this process."""
        self._listeners.append(callback)

    def enqueue(self, job: NewJob, /) -> int:
        """Store one job a :class:`Job` built and tell the ``on_dispatch`` listeners; its id.

        This is what ``dispatch`` ends in; call ``dispatch`` rather than this.
        """
        job_id = self.store.enqueue(job)
        self._dispatched()
        return job_id

    def enqueue_many(self, jobs: Sequence[NewJob], /) -> list[int]:
        """Store jobs a :class:`Job` built, in one transaction, and tell the listeners once."""
        ids = self.store.enqueue_many(jobs)
        self._dispatched()
        return ids

    def _dispatched(self) -> None:
        for callback in self._listeners:
            callback()

    def enqueue_on(self, connection: object, jobs: Sequence[NewJob], /) -> list[int]:
        """Store jobs a :class:`Job` built in the transaction of the app's ``connection`` (a
        SQLAlchemy ``Connection`` or ``Session`` on this queue's database); the listeners are
        told when it commits. This is what ``using(connection=...)`` ends in."""
        return self._in_transaction.enqueue(connection, jobs, self._tell_listeners)

    def _tell_listeners(self) -> None:
        for callback in self._listeners:
            callback()

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
        via: str | None = None,
    ) -> RunReport:
        """Dispatch the periodic slots that have come, then run due jobs until none is due or a
        limit is reached; say what happened. Defaults are PKP's: 30 jobs, 30 seconds, 80 % of
        the memory limit. ``queues``: only those queues; ``should_stop`` is asked between jobs;
        ``via`` names the trigger for :func:`reqrunner.triggers.last_runs`."""
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
        jobs: Mapping[str, JobFunction] = (
            Resolving(self._jobs, self._resolvers, self._resolved)
            if self._resolvers
            else self._jobs
        )
        self.periodic_jobs.fire()
        report = Runner(self.store, jobs, limits, queues=queues, should_stop=should_stop).run()
        if via is not None:
            triggers.note_run(self, via, report)
        if self._retention.due():
            self._retention.step(self._db)
        return report

    def run_dispatched(
        self,
        ids: Sequence[int],
        limits: Limits | None = None,
        *,
        should_stop: Callable[[], bool] | None = None,
    ) -> RunReport:
        """Run the jobs ``ids`` now, in that order: those still due and unclaimed (a job
        another runner took, or one already finished, is skipped). What the middleware does
        with a request's ``after_response`` jobs; no run lease is taken, but each job is
        claimed as in any run, so no one else runs it at the same time. ``limits`` (by
        default none) bound the run; a job they leave unstarted stays queued."""
        if isinstance(ids, int | str):
            raise TypeError(f"ids is a list of job ids, not {ids!r}")
        return Runner(
            self.store,
            self._jobs,
            limits or _NO_LIMITS,
            should_stop=should_stop,
            ids=[job_id_of(job_id) for job_id in ids],
        ).run()

    def next_due_in(self, queues: Sequence[str] | None = None) -> float | None:
        """Seconds until a job can be claimed or a periodic slot comes (0.0 when now), None
        when neither waits."""
        times = [t for t in (self.store.next_due_at(queues), self.periodic_jobs.next_at()) if t]
        return max(0.0, min(times) - time.time()) if times else None

    def has_due(self, queues: Sequence[str] | None = None) -> bool:
        """Whether a runner would find a job to claim now (one indexed query, no cache), or a
        periodic slot has come (known from memory: no query)."""
        return self.periodic_jobs.is_due() or self.store.has_due(queues)

    def close(self) -> None:
        """Close this thread's connections and the engine's pool."""
        self._db.close()


def _any_arguments(*args: Any, **kwargs: Any) -> None:
    """Stands in for a job function another process defines (any arguments fit)."""
