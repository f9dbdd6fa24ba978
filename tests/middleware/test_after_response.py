"""``after_response=True`` on real servers (uvicorn, gunicorn sync, waitress), with
``run_rate=0``: no page view ever triggers a run, so whatever runs a job here is the request
that dispatched it.

Timing checks compare a page that dispatches a 1 s job with one that dispatches nothing, with
the margin the other server tests use: what is tested is "the visitor does not wait for the
job", a difference of about 1000 ms.
"""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
import pytest

import reqrunner

from .servers import KINDS, Server, baseline, serve, ttlb, wait_for
from .sites import read_stamps

MARGIN = 0.25
JOB = 1.0


def settings(tmp_path: Path) -> dict[str, str]:
    return {
        "RR_DB": f"sqlite:///{tmp_path}/jobs.sqlite3",
        "RR_STAMPS": str(tmp_path / "stamps.jsonl"),
        "RR_RATE": "0",
    }


def site_queue(env: dict[str, str]) -> reqrunner.JobQueue:
    """The site's queue, in this process, with its jobs registered."""
    from .sites import register  # noqa: PLC0415

    queue = reqrunner.JobQueue(env["RR_DB"])
    register(queue, env["RR_STAMPS"])
    return queue


def served_by(server: Server, pid: int) -> bool:
    """Whether ``pid`` is the server's process or one of its workers."""
    return pid == server.process.pid or psutil.Process(pid).ppid() == server.process.pid


@pytest.mark.parametrize("kind", KINDS)
def test_the_job_runs_right_after_the_response_in_the_servers_process(
    kind: str, tmp_path: Path, figures: list[str]
) -> None:
    env = settings(tmp_path)
    with serve(kind, tmp_path, **env) as server, httpx.Client() as visitor:
        url = server.url
        # A first job, so that what is measured is not the queue's first use in the process.
        visitor.get(f"{url}/defer?n=1&key=warm")
        wait_for(lambda: read_stamps(env["RR_STAMPS"]), 10, "the warm-up job")
        quiet = baseline(visitor, f"{url}/defer?n=0")
        started = time.time()
        took, response = ttlb(visitor, f"{url}/defer?n=1&seconds={JOB}&key=slow")
        received = time.time()
        assert response.status_code == 200
        # The same visitor's next requests, on the same connection, while the job runs.
        following = baseline(visitor, f"{url}/defer?n=0", n=3)
        assert time.time() < started + JOB, "the checks above must happen during the job"
        wait_for(lambda: len(read_stamps(env["RR_STAMPS"])) == 2, 10, "the job to run")
        stamp = read_stamps(env["RR_STAMPS"])[1]
        figures.append(
            f"after_response {kind:8} nothing dispatched {quiet * 1000:6.1f}  dispatching "
            f"{took * 1000:6.1f}  next request {following * 1000:6.1f}  job started "
            f"{(stamp['start'] - received) * 1000:+6.1f} ms after the last byte"
        )
        assert took < quiet + MARGIN
        assert following < quiet + MARGIN
        assert stamp["key"] == "slow0"
        assert stamp["start"] - received < 1.0
        assert served_by(server, stamp["pid"])
    queue = site_queue(env)
    try:
        assert queue.count_jobs() == 0
    finally:
        queue.close()


@pytest.mark.parametrize("kind", KINDS)
def test_several_run_in_dispatch_order(kind: str, tmp_path: Path) -> None:
    env = settings(tmp_path)
    with serve(kind, tmp_path, **env) as server:
        response = httpx.get(f"{server.url}/defer?n=4&seconds=0.05&key=j")
        assert response.status_code == 200
        wait_for(lambda: len(read_stamps(env["RR_STAMPS"])) == 4, 10, "the four jobs")
    stamps = read_stamps(env["RR_STAMPS"])
    assert [s["key"] for s in sorted(stamps, key=lambda s: s["start"])] == [
        "j0", "j1", "j2", "j3"
    ]  # fmt: skip


def test_an_async_view_with_adispatch_defers_too(tmp_path: Path) -> None:
    env = settings(tmp_path)
    with serve("uvicorn", tmp_path, **env) as server:
        response = httpx.get(f"{server.url}/adefer?n=2&key=a")
        received = time.time()
        assert response.status_code == 200
        wait_for(lambda: len(read_stamps(env["RR_STAMPS"])) == 2, 10, "the two jobs")
        stamps = sorted(read_stamps(env["RR_STAMPS"]), key=lambda s: s["start"])
        assert [s["key"] for s in stamps] == ["a0", "a1"]
        assert stamps[0]["start"] - received < 1.0
        assert served_by(server, stamps[0]["pid"])


@pytest.mark.parametrize("kind", ["uvicorn", "waitress", "gthread"])
def test_concurrent_requests_each_run_their_own_jobs_once_their_view_is_done(
    kind: str, tmp_path: Path
) -> None:
    # Eight requests at once on a server that serves several together (threads, or sync views
    # in a loop's worker threads): each view dispatches, then goes on for a time of its own
    # while others finish. A request that ran another's job would start it before that view
    # was done.
    env = settings(tmp_path)
    holds = [0.1 + 0.1 * i for i in range(8)]
    with serve(kind, tmp_path, **env) as server, httpx.Client(timeout=30) as client:

        def visit(i: int) -> float:
            started = time.time()
            response = client.get(f"{server.url}/defer?key=r{i}-&hold={holds[i]}")
            assert response.status_code == 200
            return started

        with ThreadPoolExecutor(8) as pool:
            started = list(pool.map(visit, range(8)))
        wait_for(lambda: len(read_stamps(env["RR_STAMPS"])) >= 8, 15, "the eight jobs")
        time.sleep(0.2)  # time for a job that would run twice
    stamps = read_stamps(env["RR_STAMPS"])
    assert sorted(s["key"] for s in stamps) == sorted(f"r{i}-0" for i in range(8))
    for stamp in stamps:
        i = int(stamp["key"][1:].split("-")[0])
        assert stamp["start"] >= started[i] + holds[i]


@pytest.mark.parametrize("kind", KINDS)
def test_a_job_that_raises_stays_queued_and_a_later_run_finishes_it(
    kind: str, tmp_path: Path
) -> None:
    env = settings(tmp_path)
    marker = Path(f"{env['RR_STAMPS']}.failed-f0")
    with serve(kind, tmp_path, **env) as server:
        assert httpx.get(f"{server.url}/defer?job=flaky&key=f").status_code == 200
        wait_for(marker.exists, 10, "the first attempt")
        assert served_by(server, int(marker.read_text()))
    queue = site_queue(env)
    try:
        # The server has stopped: what happened to the job is all in the queue.
        (job,) = queue.list_jobs()
        assert job.state is reqrunner.JobState.WAITING
        assert job.attempts == 1
        assert read_stamps(env["RR_STAMPS"]) == []
        time.sleep(0.3)  # its backoff
        assert queue.run().succeeded == 1
        assert [s["key"] for s in read_stamps(env["RR_STAMPS"])] == ["f0"]
        assert queue.count_jobs() == 0
    finally:
        queue.close()


@pytest.mark.parametrize("kind", KINDS)
def test_a_server_killed_right_after_the_response_leaves_the_job_queued(
    kind: str, tmp_path: Path
) -> None:
    env = settings(tmp_path)
    with serve(kind, tmp_path, **env) as server:
        response = httpx.get(f"{server.url}/defer?job=leased&seconds=2&key=lost")
        assert response.status_code == 200
        for process in [*psutil.Process(server.process.pid).children(), server.process]:
            os.kill(process.pid, signal.SIGKILL)
        server.process.wait(10)
    queue = site_queue(env)
    try:
        (job,) = queue.list_jobs()
        assert job.name == "leased"
        assert read_stamps(env["RR_STAMPS"]) == []
        # Claimed or not when its process died, the next run takes it (after its 1 s lease).
        wait_for(lambda: queue.run().succeeded == 1, 10, "a later run to finish the job")
        assert [s["key"] for s in read_stamps(env["RR_STAMPS"])] == ["lost0"]
    finally:
        queue.close()
