"""Job definitions: what ``@queue.job`` makes, and how a call becomes a stored job."""

from __future__ import annotations

import inspect
import time
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, ParamSpec, Protocol, TypeVar

from . import deferred, payload
from .context import JobContext
from .models import Limits, RunReport
from .store.operations import NewJob

__all__ = ["Dispatcher", "Job", "JobCall", "JobOptions", "context_parameter", "result_seconds"]

P = ParamSpec("P")
R = TypeVar("R")


class Dispatcher(Protocol):
    """All a :class:`Job` needs of its queue: store the rows a dispatch built and say their
    ids, telling whatever caches "is anything due?" that something now may be.
    :class:`~reqrunner.JobQueue` is the one in use."""

    def enqueue(self, job: NewJob, /) -> int:
        """Store one job; its id (the existing job's id for a duplicate unique job)."""
        ...

    def enqueue_many(self, jobs: Sequence[NewJob], /) -> list[int]:
        """Store several jobs in one transaction; their ids in the same order."""
        ...

    def enqueue_on(self, connection: object, jobs: Sequence[NewJob], /) -> list[int]:
        """Store jobs in the transaction of the app's own ``connection``; their ids."""
        ...

    def run_dispatched(
        self,
        ids: Sequence[int],
        limits: Limits | None = None,
        *,
        should_stop: Callable[[], bool] | None = None,
    ) -> RunReport:
        """Run these jobs now (those still due and unclaimed), in this order."""
        ...


@dataclass(frozen=True, kw_only=True, slots=True)
class JobOptions:
    """A job's defaults, validated once when it is declared."""

    name: str
    attempts: int = 3
    ttr: float = 300.0
    backoff: float = 5.0
    priority: int = 0
    queue: str = "default"
    unique: bool = False
    result_ttl: float = 0.0
    """Seconds a finished job's result (return value or error) is kept; 0 keeps none."""

    def __post_init__(self) -> None:
        _check_name(self.name, "name", 255)
        _check_name(self.queue, "queue", 64)
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise TypeError(f"attempts must be a whole number, not {self.attempts!r}")
        if self.attempts < 1:
            raise ValueError(f"attempts={self.attempts}: a job needs at least 1 attempt")
        if isinstance(self.ttr, bool) or not isinstance(self.ttr, int | float) or self.ttr <= 0:
            raise ValueError(
                f"ttr={self.ttr!r}: time to run is the lease length in seconds and must be > 0"
            )
        if isinstance(self.backoff, bool) or not isinstance(self.backoff, int | float):
            raise TypeError(f"backoff must be seconds as a number, not {self.backoff!r}")
        if self.backoff < 0:
            raise ValueError(f"backoff={self.backoff}: must be 0 or more seconds")
        _check_priority(self.priority)
        if (
            isinstance(self.result_ttl, bool)
            or not isinstance(self.result_ttl, int | float)
            or not self.result_ttl >= 0
        ):
            raise ValueError(
                f"result_ttl={self.result_ttl!r}: seconds to keep a finished job's result, "
                "0 or more (0 keeps none)"
            )


def result_seconds(value: float | timedelta | None) -> float:
    """``result_ttl`` as given to a queue or a job (seconds, a timedelta, or None for 0)."""
    if value is None:
        return 0.0
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds >= 0:
        raise ValueError(
            f"result_ttl={value!r}: give seconds or a timedelta to keep finished jobs' "
            "results for, or None to keep none"
        )
    return float(seconds)


def _check_name(value: object, what: str, longest: int) -> None:
    if not isinstance(value, str) or not value or len(value) > longest:
        raise ValueError(f"a job's {what} is a string of 1 to {longest} characters, not {value!r}")


def _check_priority(value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"priority must be a whole number (higher runs first), not {value!r}")
    if not -(2**31) <= value < 2**31:
        raise ValueError(f"priority={value} is out of range (a 32-bit integer)")


def _delay_seconds(delay: float | timedelta) -> float:
    seconds = delay.total_seconds() if isinstance(delay, timedelta) else delay
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise TypeError(f"delay must be seconds or a timedelta, not {delay!r}")
    if not seconds >= 0:
        raise ValueError(f"delay={delay!r}: must be 0 or more seconds")
    return float(seconds)


def context_parameter(fn: Callable[..., Any]) -> str | None:
    """The name of the parameter that receives the :class:`JobContext`, if any: the one
    annotated ``JobContext``, else one named ``ctx``."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        hints = {}
    params = inspect.signature(fn).parameters
    for name in params:
        if hints.get(name) is JobContext:
            return name
    return "ctx" if "ctx" in params else None


class JobCall:
    """A dispatch with some options changed for it: ``job.using(delay=60).dispatch(...)``."""

    __slots__ = (
        "_after_response", "_connection", "_delay", "_job", "_priority", "_queue", "_unique_key"
    )  # fmt: skip

    def __init__(
        self,
        job: Job[Any, Any],
        *,
        delay: float | timedelta = 0,
        priority: int | None = None,
        queue: str | None = None,
        unique_key: str | None = None,
        after_response: bool = False,
        connection: object = None,
    ) -> None:
        self._job = job
        self._delay = _delay_seconds(delay)
        if not isinstance(after_response, bool):
            raise TypeError(f"after_response is True or False, not {after_response!r}")
        if after_response and self._delay:
            raise ValueError(
                "after_response=True runs the job right after this response; it cannot also "
                f"wait delay={delay!r}: give one or the other"
            )
        self._after_response = after_response
        self._connection = connection
        if priority is not None:
            _check_priority(priority)
        if queue is not None:
            _check_name(queue, "queue", 64)
        if unique_key is not None and (not isinstance(unique_key, str) or not unique_key):
            raise ValueError(f"unique_key must be a non-empty string, not {unique_key!r}")
        self._priority = job.options.priority if priority is None else priority
        self._queue = job.options.queue if queue is None else queue
        self._unique_key = unique_key

    def _row(self, args: Sequence[Any], kwargs: Mapping[str, Any], now: float) -> NewJob:
        job = self._job
        encoded = payload.encode(args, kwargs)
        job.check_arguments(args, kwargs)
        key = self._unique_key
        if key is None and job.options.unique:
            key = payload.canonical_key(args, kwargs)
        opts = job.options
        return NewJob(
            opts.name,
            self._queue,
            "waiting",
            self._priority,
            encoded,
            now + self._delay,
            0,
            opts.attempts,
            float(opts.ttr),
            float(opts.backoff),
            None if key is None else payload.unique_slot(opts.name, key),
            None if key is None else key[:255],
            now,
        )

    def dispatch(self, *args: Any, **kwargs: Any) -> int:
        """Store the job; return its id (the existing job's id for a duplicate unique job)."""
        return self._store([self._row(args, kwargs, time.time())])[0]

    async def adispatch(self, *args: Any, **kwargs: Any) -> int:
        """:meth:`dispatch` from async code: the arguments are checked here, the database
        write happens in a worker thread, so the event loop never waits for it."""
        rows = [self._row(args, kwargs, time.time())]
        return (await _off_the_loop(self._store, rows))[0]

    def dispatch_many(self, calls: Iterable[Mapping[str, Any] | Sequence[Any]]) -> list[int]:
        """Store many jobs at once (chunked multi-row INSERTs in one transaction).

        Each item is a dict of keyword arguments, or a list/tuple of positional ones. Returns
        the ids in the same order.
        """
        rows = self._rows(calls)
        return self._store(rows) if rows else []

    async def adispatch_many(self, calls: Iterable[Mapping[str, Any] | Sequence[Any]]) -> list[int]:
        """:meth:`dispatch_many` from async code, the write in a worker thread."""
        rows = self._rows(calls)
        return await _off_the_loop(self._store, rows) if rows else []

    def _store(self, rows: list[NewJob]) -> list[int]:
        queue = self._job.queue
        if self._connection is not None:
            ids = queue.enqueue_on(self._connection, rows)
        elif len(rows) == 1:
            ids = [queue.enqueue(rows[0])]
        else:
            ids = queue.enqueue_many(rows)
        if self._after_response:
            deferred.add(queue, ids)
        return ids

    def _rows(self, calls: Iterable[Mapping[str, Any] | Sequence[Any]]) -> list[NewJob]:
        now = time.time()
        rows = []
        for i, call in enumerate(calls):
            if isinstance(call, Mapping):
                rows.append(self._row((), call, now))
            elif isinstance(call, list | tuple):
                rows.append(self._row(call, {}, now))
            else:
                raise TypeError(
                    f"dispatch_many item {i} is {call!r}; give a dict of keyword arguments "
                    "or a list of positional ones for each job"
                )
        return rows


async def _off_the_loop(
    store: Callable[[list[NewJob]], list[int]], rows: list[NewJob]
) -> list[int]:
    # anyio, not asyncio: Starlette apps may run on trio. Imported here so that a cron run or a
    # worker never loads it. The worker thread gets a copy of the caller's context, so an
    # after_response dispatch still finds its request.
    import anyio.to_thread  # noqa: PLC0415

    return await anyio.to_thread.run_sync(store, rows)


class Job(Generic[P, R]):
    """A function registered with ``@queue.job``.

    Calling it runs the function here and now; ``dispatch`` stores a job for a runner.
    """

    def __init__(self, queue: Dispatcher, fn: Callable[P, R], options: JobOptions) -> None:
        self.queue = queue
        """Where :meth:`dispatch` stores its jobs: the ``JobQueue`` that registered this job."""
        self.fn = fn
        self.options = options
        self.name = options.name
        self.result_ttl = float(options.result_ttl)
        """Seconds the runner keeps this job's result; 0 keeps none."""
        self.is_async = inspect.iscoroutinefunction(fn)
        self.context_param = context_parameter(fn)
        try:
            sig = inspect.signature(fn, eval_str=True)
        except Exception:  # annotations naming things not importable here
            sig = inspect.signature(fn)
        self.signature = sig.replace(
            parameters=[p for n, p in sig.parameters.items() if n != self.context_param],
            return_annotation=inspect.Signature.empty,
        )
        self._default = JobCall(self)
        # Shapes (positional count, keyword names) known to bind: binding never looks at the
        # values, so each shape is checked once, not once per dispatched job.
        self._fitting: set[tuple[int, frozenset[str]]] = set()
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<reqrunner.Job {self.name!r}>"

    def check_arguments(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        """``TypeError`` if the arguments would not fit the function."""
        shape = (len(args), frozenset(kwargs))
        if shape in self._fitting:
            return
        if self.context_param is not None and self.context_param in kwargs:
            raise TypeError(
                f"{self.name}: {self.context_param!r} is given by the runner, do not pass it"
            )
        try:
            self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            # bind() names the first missing argument before a misspelt keyword that explains
            # it (email= for address): name the keywords the function does not take first.
            unexpected = self._unexpected(kwargs)
            why = (
                f"unexpected keyword argument(s) {', '.join(map(repr, unexpected))}; "
                if unexpected
                else ""
            )
            raise TypeError(f"{self.name}{self.signature}: {why}{exc}") from None
        if len(self._fitting) < 64:
            self._fitting.add(shape)

    def _unexpected(self, kwargs: Mapping[str, Any]) -> list[str]:
        params = self.signature.parameters.values()
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            return []
        named = {p.name for p in params if p.kind is not inspect.Parameter.POSITIONAL_ONLY}
        return [k for k in kwargs if k not in named]

    def dispatch(self, *args: Any, **kwargs: Any) -> int:
        """Store a job that will call this function with these arguments; return its id."""
        return self._default.dispatch(*args, **kwargs)

    def dispatch_many(self, calls: Iterable[Mapping[str, Any] | Sequence[Any]]) -> list[int]:
        """Store one job per item (a dict of keyword arguments or a list of positional ones)."""
        return self._default.dispatch_many(calls)

    async def adispatch(self, *args: Any, **kwargs: Any) -> int:
        """:meth:`dispatch` for ``async def`` code: the write runs in a worker thread."""
        return await self._default.adispatch(*args, **kwargs)

    async def adispatch_many(self, calls: Iterable[Mapping[str, Any] | Sequence[Any]]) -> list[int]:
        """:meth:`dispatch_many` for ``async def`` code: the write runs in a worker thread."""
        return await self._default.adispatch_many(calls)

    def using(
        self,
        *,
        delay: float | timedelta = 0,
        priority: int | None = None,
        queue: str | None = None,
        unique_key: str | None = None,
        after_response: bool = False,
        connection: object = None,
    ) -> JobCall:
        """Dispatch options for one call: run no sooner than ``delay`` from now, with another
        ``priority`` or ``queue``, or at most once while unclaimed per ``unique_key``.

        ``after_response=True``: in a request served through reqrunner's middleware, this
        process also runs the job right after the response has gone out, whatever
        ``run_rate`` says (the job is stored first, so a failure is retried from the queue,
        and a process that dies leaves it queued); elsewhere an ordinary dispatch.

        ``connection``: the app's SQLAlchemy ``Connection`` or ``Session`` on the job
        database; the job is inserted in its transaction, so it exists only if that commits.
        """
        return JobCall(
            self,
            delay=delay,
            priority=priority,
            queue=queue,
            unique_key=unique_key,
            after_response=after_response,
            connection=connection,
        )
