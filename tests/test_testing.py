"""reqrunner.testing: immediate mode and drain, through the real store and runner."""

from __future__ import annotations

import reqrunner
from reqrunner import testing
from tests import catalogue
from tests.catalogue import CALLS


def test_immediate_runs_each_dispatch_before_it_returns(queue: reqrunner.JobQueue) -> None:
    CALLS.clear()
    jobs = catalogue.register(queue)

    @queue.job(name="fan_out")
    def fan_out(n: int) -> None:
        jobs.add.dispatch_many([[i, i] for i in range(n)])

    with testing.immediate(queue):
        jobs.add.dispatch(1, 2)
        assert CALLS == [("add", 1, 2)]
        fan_out.dispatch(3)  # jobs dispatched by a job run in the same pass
        assert CALLS[1:] == [("add", 0, 0), ("add", 1, 1), ("add", 2, 2)]
        failing = jobs.always_fails.dispatch("no")
    info = queue.get(failing)
    assert info is not None and info.state is reqrunner.JobState.FAILED
    jobs.add.dispatch(9, 9)  # outside the block: stored, not run
    assert CALLS[-1] == ("add", 2, 2)
    assert queue.count_jobs(state="waiting") == 1


def test_drain_runs_everything_due(queue: reqrunner.JobQueue) -> None:
    CALLS.clear()
    jobs = catalogue.register(queue)
    jobs.add.dispatch_many([[i, 0] for i in range(40)])
    later = jobs.add.using(delay=3600).dispatch(0, 1)
    report = testing.drain(queue)
    assert (report.ran, report.stopped_by) == (40, "empty")
    assert len(CALLS) == 40 and queue.get(later) is not None
