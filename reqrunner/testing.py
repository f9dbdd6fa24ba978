"""Helpers for testing an app's jobs without a server, a worker or a web request.

``immediate(queue)`` runs each job as soon as it is dispatched, through the same store and
runner as production (the job is stored, claimed, run and finished), so a test sees what a real
run would do, including JSON checks, retries and failures. ``drain(queue)`` runs everything
due now, for tests that dispatch first and look afterwards::

    def test_signup_sends_mail(queue):
        with reqrunner.testing.immediate(queue):
            client.post("/signup", data={...})
        assert outbox == [...]

    def test_nightly_report(queue):
        build_report.dispatch()
        report = reqrunner.testing.drain(queue)
        assert report.failed == 0
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from .models import Limits, RunReport
from .queue import JobQueue

__all__ = ["drain", "immediate"]

_UNBOUNDED = Limits(max_jobs=None, max_time=None, max_memory=None)
_active: weakref.WeakKeyDictionary[JobQueue, int] = weakref.WeakKeyDictionary()
_hooked: weakref.WeakSet[JobQueue] = weakref.WeakSet()
_running = threading.local()


def drain(queue: JobQueue, *, max_jobs: int = 10_000) -> RunReport:
    """Run every job that is due now (and jobs those dispatch) until none is; return what ran.

    ``max_jobs`` guards against a job that keeps dispatching itself.
    """
    return queue.run(Limits(max_jobs=max_jobs, max_time=None, max_memory=None))


@contextmanager
def immediate(queue: JobQueue) -> Iterator[None]:
    """Within the block, every dispatch on ``queue`` runs the due jobs before it returns."""
    if queue not in _hooked:
        queue.on_dispatch(lambda: _run_now(queue))
        _hooked.add(queue)
    _active[queue] = _active.get(queue, 0) + 1
    try:
        yield
    finally:
        _active[queue] -= 1


def _run_now(queue: JobQueue) -> None:
    if not _active.get(queue) or getattr(_running, "on", False):
        return  # not in immediate mode, or a job dispatching more: the current run takes them
    _running.on = True
    try:
        queue.run(_UNBOUNDED)
    finally:
        _running.on = False
