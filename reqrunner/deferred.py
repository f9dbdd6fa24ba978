"""Jobs a request dispatched with ``after_response=True``, run by its process once the
response is out.

The middleware opens a :class:`Deferred` for each request it serves and makes it current
(:data:`CURRENT`, a context variable) while the app handles the request; a dispatch with
``after_response`` stores its job as usual and adds the id here. Context variables follow the
request into the worker threads that run sync views (Starlette and anyio copy the context into
them) and into the tasks an async view starts, and they are the same list object there, so an
id added in a thread is seen by the middleware. Outside a request nothing is current and such a
dispatch is an ordinary one. The jobs are in the queue from the moment they are dispatched: if
the run after the response fails or never happens, a later run takes them like any other job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from typing import Protocol

from .models import Limits, RunReport

__all__ = ["CURRENT", "Deferred", "DeferredRunner", "add", "current"]

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


class Deferred(list[tuple[DeferredRunner, int]]):
    """The jobs one request dispatched to run after its response, in dispatch order: pairs of
    the queue that stored a job and the job's id.

    A list, because one is made for every request the middleware serves, and most stay empty:
    making one and asking whether it is empty are then C calls, with no Python frame.
    """

    __slots__ = ()

    def add(self, queue: DeferredRunner, ids: Sequence[int]) -> None:
        """Remember jobs ``queue`` stored, to run after the response."""
        self.extend((queue, job_id) for job_id in ids)

    def run(
        self, limits: Limits | None = None, should_stop: Callable[[], bool] | None = None
    ) -> int:
        """Run the jobs (those still due and unclaimed) in dispatch order, one run per stretch
        of jobs on the same queue; how many ran. What fails is logged: the jobs stay queued."""
        jobs = self[:]
        self.clear()
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


CURRENT: ContextVar[Deferred | None] = ContextVar("reqrunner_deferred", default=None)
"""The :class:`Deferred` of the request being served. The middleware sets it before it calls
the app and resets it with the token once the app has answered; nothing is current outside a
request it serves."""


def current() -> Deferred | None:
    """The request's :class:`Deferred`, or None outside a request the middleware serves."""
    return CURRENT.get()


def add(queue: DeferredRunner, ids: Sequence[int]) -> None:
    """Run these jobs after the current response, if there is one (else nothing to do)."""
    deferred = CURRENT.get()
    if deferred is not None:
        deferred.add(queue, ids)
