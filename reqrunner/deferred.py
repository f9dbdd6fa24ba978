"""Jobs a request dispatched with ``after_response=True``, run by its process once the
response is out.

The middleware opens a :class:`Deferred` for each request it serves and makes it current
(a context variable) while the app handles the request; a dispatch with ``after_response``
stores its job as usual and adds the id here. Context variables follow the request into the
worker threads that run sync views (Starlette and anyio copy the context into them) and into
the tasks an async view starts, and they are the same list object there, so an id added in a
thread is seen by the middleware. Outside a request nothing is current and such a dispatch is
an ordinary one. The jobs are in the queue from the moment they are dispatched: if the run after
the response fails or never happens, a later run takes them like any other job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextvars import ContextVar, Token
from typing import Protocol

from .models import Limits, RunReport

__all__ = ["Deferred", "DeferredRunner", "add", "collecting", "current", "stop_collecting"]

log = logging.getLogger("reqrunner")


class DeferredRunner(Protocol):
    """What runs the jobs of a :class:`Deferred`: the queue they were dispatched on."""

    def run_dispatched(
        self,
        ids: Sequence[int],
        limits: Limits | None = None,
        *,
        should_stop: Callable[[], bool] | None = None,
    ) -> RunReport: ...


class Deferred:
    """The jobs one request dispatched to run after its response, in dispatch order."""

    __slots__ = ("_jobs",)

    def __init__(self) -> None:
        self._jobs: list[tuple[DeferredRunner, int]] = []

    def __bool__(self) -> bool:
        return bool(self._jobs)

    def __len__(self) -> int:
        return len(self._jobs)

    def add(self, queue: DeferredRunner, ids: Sequence[int]) -> None:
        """Remember jobs ``queue`` stored, to run after the response."""
        self._jobs.extend((queue, job_id) for job_id in ids)

    def run(
        self, limits: Limits | None = None, should_stop: Callable[[], bool] | None = None
    ) -> int:
        """Run the jobs (those still due and unclaimed) in dispatch order, one run per stretch
        of jobs on the same queue; how many ran. What fails is logged: the jobs stay queued."""
        jobs, self._jobs = self._jobs, []
        ran = 0
        start = 0
        while start < len(jobs):
            queue = jobs[start][0]
            end = start
            while end < len(jobs) and jobs[end][0] is queue:
                end += 1
            ids = list(dict.fromkeys(job_id for _, job_id in jobs[start:end]))
            try:
                ran += queue.run_dispatched(ids, limits, should_stop=should_stop).ran
            except Exception:
                log.exception("reqrunner could not run jobs %s after the response", ids)
            start = end
        return ran


_current: ContextVar[Deferred | None] = ContextVar("reqrunner_deferred", default=None)


def current() -> Deferred | None:
    """The request's :class:`Deferred`, or None outside a request the middleware serves."""
    return _current.get()


def add(queue: DeferredRunner, ids: Sequence[int]) -> None:
    """Run these jobs after the current response, if there is one (else nothing to do)."""
    deferred = _current.get()
    if deferred is not None:
        deferred.add(queue, ids)


def collecting() -> tuple[Deferred, Token[Deferred | None]]:
    """Start collecting a request's deferred jobs: the collection, and the token that
    :func:`stop_collecting` takes when the app has answered."""
    deferred = Deferred()
    return deferred, _current.set(deferred)


def stop_collecting(token: Token[Deferred | None]) -> None:
    """Stop collecting (the jobs collected stay in the :class:`Deferred`)."""
    _current.reset(token)
