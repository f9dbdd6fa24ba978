"""The bounded run under the run lease: renewed while it runs, stopped when lost, released."""

from __future__ import annotations

import time

import pytest

import reqrunner
from reqrunner.web.core import MiddlewareCore
from reqrunner.web.wsgi import WSGIMiddleware

from .conftest import inner_wsgi


@pytest.fixture
def core(queue: reqrunner.JobQueue) -> MiddlewareCore:
    @queue.job(name="slow")
    def slow() -> None:
        time.sleep(1.1)  # several renewals of the lease (set short below)

    @queue.job(name="quick")
    def quick() -> None:
        pass

    core = WSGIMiddleware(inner_wsgi, queue, max_time=10).core
    core.lease_ttl = 0.6  # renewed every 0.2 s
    return core


def test_a_run_that_lost_its_lease_stops_after_the_current_job(
    core: MiddlewareCore, queue: reqrunner.JobQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue.jobs["slow"].using(priority=9).dispatch()
    queue.dispatch("quick")
    queue.dispatch("quick")
    renewals: list[str] = []

    def lost(name: str, token: str, ttl: float) -> bool:
        renewals.append(name)
        return False  # another process took the lease over (it had expired)

    monkeypatch.setattr(queue, "renew_lease", lost)
    report = core.run_bounded(via="sync")
    assert report is not None
    assert (report.ran, report.stopped_by) == (1, "stopped")
    assert renewals == ["reqrunner.run.0"]  # the first renewal found it lost: no more
    assert queue.stats().waiting == 2


def test_the_lease_is_held_during_the_run_and_released_after(
    core: MiddlewareCore, queue: reqrunner.JobQueue
) -> None:
    held: list[str | None] = []

    @queue.job(name="peek")
    def peek() -> None:
        held.append(queue.acquire_lease("reqrunner.run.0", 60))

    queue.dispatch("peek")
    report = core.run_bounded(via="sync")
    assert report is not None and report.ran == 1
    assert held == [None]  # while the run ran, nobody else could take the lease
    assert queue.acquire_lease("reqrunner.run.0", 60) is not None  # released at the end
    assert core.run_bounded(via="sync") is None  # and now that we hold it, no run starts
