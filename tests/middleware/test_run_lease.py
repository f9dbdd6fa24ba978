"""The run lease is a hard limit: kept through long jobs, taken over from dead holders."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import reqrunner
from reqrunner.web.core import MiddlewareCore
from reqrunner.web.wsgi import WSGIMiddleware

from .conftest import inner_wsgi

HOLD = """
import os, sys, time
import reqrunner
queue = reqrunner.JobQueue(sys.argv[1])
assert queue.acquire_lease("reqrunner.run.0", 600) is not None
print("held", flush=True)
if sys.argv[2] == "exit":
    os._exit(3)  # what a job calling os._exit does to its worker
time.sleep(60)
"""


def _core(queue: reqrunner.JobQueue, ttl: float) -> MiddlewareCore:
    core = WSGIMiddleware(inner_wsgi, queue, max_time=30).core
    core.lease_ttl = ttl
    return core


def test_a_job_longer_than_the_lease_keeps_other_runs_out(queue: reqrunner.JobQueue) -> None:
    inside = threading.Event()

    @queue.job(name="long")
    def long() -> None:
        inside.set()
        time.sleep(1.2)  # four times the lease's TTL

    queue.dispatch("long")
    queue.dispatch("long")
    core = _core(queue, 0.3)
    first: list[reqrunner.RunReport | None] = []
    runner = threading.Thread(target=lambda: first.append(core.run_bounded(via="sync")))
    runner.start()
    assert inside.wait(5)
    time.sleep(0.8)  # well past the TTL, still inside the first job
    assert core.run_bounded(via="sync") is None
    runner.join()
    assert first[0] is not None and first[0].ran == 2


def _holder(url: str, how: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, url, how], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_lease_of_a_dead_process_on_this_host_is_taken_over_at_once(
    queue: reqrunner.JobQueue, db_url: str
) -> None:
    @queue.job(name="quick")
    def quick() -> None:
        pass

    core = _core(queue, 600)
    alive = _holder(db_url, "sleep")
    try:
        queue.dispatch("quick")
        assert core.run_bounded(via="sync") is None  # its holder lives: wait
    finally:
        alive.kill()
        alive.communicate()
    report = core.run_bounded(via="sync")
    assert report is not None and report.ran == 1

    dead = _holder(db_url, "exit")
    dead.communicate(timeout=10)
    assert dead.returncode == 3
    queue.dispatch("quick")
    report = core.run_bounded(via="sync")
    assert report is not None and report.ran == 1


def test_a_lease_held_on_another_host_is_left_to_expire(queue: reqrunner.JobQueue) -> None:
    token = queue.acquire_lease("reqrunner.run.0", 600)
    assert token is not None
    with queue.engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE reqrunner_leases SET holder = 'elsewhere/pid:[1]/1' "
            "WHERE name = 'reqrunner.run.0'"
        )
    queue.dispatch("anything")
    assert _core(queue, 600).run_bounded(via="sync") is None
