"""A restart asked for while a job runs stops the worker before its next claim."""

from __future__ import annotations

import time

import reqrunner
from reqrunner.cli.worker import Worker, request_restart


def test_restart_during_a_short_job_is_seen_before_the_next_claim(
    queue: reqrunner.JobQueue,
) -> None:
    ran: list[str] = []

    @queue.job(name="asks_restart")
    def asks_restart() -> None:
        # Well under the once-a-second throttle, but long enough to count as a job.
        request_restart(queue)
        time.sleep(0.2)
        ran.append("first")

    @queue.job(name="second")
    def second() -> None:
        ran.append("second")

    asks_restart.dispatch()
    second.dispatch()
    assert Worker(queue, sleep=0.1).work() == 0
    assert ran == ["first"]
    assert queue.count_jobs(state="waiting") == 1
