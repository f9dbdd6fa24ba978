"""Jobs a request dispatched with ``after_response=True``, run by its process once the
response is out.

A dispatch with ``after_response`` stores its job as usual and adds the pair (queue, id) to a
list that the middleware takes once the response is complete. Which list depends on how the
request is served, because the middleware pays for finding it on every request, and most
requests dispatch nothing:

- **ASGI.** Requests share one thread, so the middleware makes a list for each request and puts
  it in :data:`CURRENT`, a context variable. That follows the request into the worker threads
  that run sync views (Starlette and anyio copy the context into them) and into the tasks an
  async view starts.
- **WSGI.** A thread serves one request at a time, so nothing is set per request: in a
  process with a WSGI middleware, a dispatch with no list current adds to its thread's entry
  of :data:`PENDING`, and the middleware looks there only when that dict is not empty, which
  for almost every request is one truth test. Jobs dispatched while a response's body is being
  produced run after the thread's next one.

Outside a request such a dispatch is an ordinary one. The jobs are in the queue from the moment
they are dispatched: if the run after the response fails or never happens, a later run takes
them like any other job.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from typing import Protocol

from .models import Limits, RunReport

__all__ = [
    "BY_THREAD", "CURRENT", "MAX_PENDING", "PENDING", "Deferred", "DeferredRunner", "add",
    "keep_by_thread", "ordinary", "take",
]  # fmt: skip

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


Pair = tuple[DeferredRunner, int]

CURRENT: ContextVar[list[Pair] | None] = ContextVar("reqrunner_deferred", default=None)
"""The list of the ASGI request being served, set by the middleware before it calls the app.
It is not reset: each request runs in a context of its own, which ends with it."""

PENDING: dict[int, list[Pair]] = {}
"""Jobs dispatched with no :data:`CURRENT` list, by thread (``threading.get_ident()``), until
the thread's WSGI middleware takes them at the end of a response."""

BY_THREAD = False
"""Whether jobs are kept by thread in this process: set once a :class:`~reqrunner.WSGIMiddleware`
is built (:func:`keep_by_thread`). Elsewhere, in an ASGI site or a script, a dispatch with no
:data:`CURRENT` list is an ordinary one and keeps nothing."""

MAX_PENDING = 10_000
"""At most this many jobs wait in a thread's :data:`PENDING` entry. A thread that serves no
request (a worker, a script) never has its entry taken: what comes past the bound is an
ordinary dispatch, so such a thread holds a bounded list and nothing more."""


class Deferred(list[Pair]):
    """The jobs one response is followed by, in dispatch order: pairs of the queue that stored
    a job and the job's id."""

    __slots__ = ()

    def run(
        self, limits: Limits | None = None, should_stop: Callable[[], bool] | None = None
    ) -> int:
        """Run the jobs (those still due and unclaimed) in dispatch order, one run per stretch
        of jobs on the same queue; how many ran. What fails is logged: the jobs stay queued."""
        ran = 0
        start = 0
        while start < len(self):
            queue = self[start][0]
            end = start
            while end < len(self) and self[end][0] is queue:
                end += 1
            ids = list(dict.fromkeys(job_id for _, job_id in self[start:end]))
            try:
                ran += queue.run_dispatched(ids, limits, should_stop=should_stop).ran
            except Exception:
                log.exception("reqrunner could not run jobs %s after the response", ids)
            start = end
        return ran


def add(queue: DeferredRunner, ids: Sequence[int]) -> None:
    """Run these jobs after the current response (see the module's description)."""
    jobs = CURRENT.get()
    if jobs is None:
        if not BY_THREAD:
            return
        jobs = PENDING.setdefault(threading.get_ident(), [])
        room = MAX_PENDING - len(jobs)
        if room <= 0:
            return
        ids = ids[:room]
    jobs.extend((queue, job_id) for job_id in ids)


def keep_by_thread() -> None:
    """Keep the jobs dispatched with no list current by thread, for a WSGI middleware."""
    # One switch for the process, thrown once and never back.
    global BY_THREAD
    BY_THREAD = True


def take() -> Deferred | None:
    """The jobs the calling thread dispatched since it last took them, or None."""
    jobs = PENDING.pop(threading.get_ident(), None)
    return Deferred(jobs) if jobs else None


def ordinary() -> None:
    """Make the calling context's ``after_response`` dispatches ordinary ones: for the work a
    process does after a response, whose own such dispatches no response follows."""
    CURRENT.set([])
