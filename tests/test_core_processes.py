"""Real processes: a runner killed mid-job, four runners draining one queue, a live long job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

import reqrunner
from reqrunner import JobState
from tests import catalogue
from tests.live import wait_for

ROOT = Path(__file__).resolve().parent.parent


def _runner(
    url: str, mode: str = "drain", *, stderr: int = subprocess.PIPE
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.catalogue", url, mode], cwd=ROOT, stderr=stderr
    )


def test_runner_killed_mid_job_the_job_runs_again_after_its_lease(
    db_url: str, tmp_path: Path
) -> None:
    queue = reqrunner.JobQueue(db_url)
    jobs = catalogue.register(queue)
    marker = tmp_path / "attempts.txt"
    hung = jobs.hangs.dispatch(str(marker))
    others = jobs.add.dispatch_many([[i, i] for i in range(5)])
    proc = _runner(db_url, "once", stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: marker.exists() and marker.read_text() == "1\n", 20, "the job to start")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)
    info = queue.get(hung)
    assert info is not None and info.state is JobState.RESERVED and info.attempts == 1
    # Its lease (ttr 1 s) has not expired yet: nobody may take it.
    report = queue.run()
    assert report.interrupted == 0 and queue.get(hung).state is JobState.RESERVED  # type: ignore[union-attr]
    time.sleep(1.2)
    queue.store._last_recover = 0.0
    report = queue.run()
    assert report.interrupted == 1
    assert marker.read_text() == "1\n2\n"
    assert queue.get(hung) is None  # succeeded on attempt 2, then deleted
    assert all(queue.get(job_id) is None for job_id in others)
    assert report.failed == 0
    queue.close()


def _recreate_executions(url: str) -> None:
    engine = catalogue.executions_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM executions")


@pytest.mark.slow
def test_four_runners_execute_every_job_exactly_once(db_url: str) -> None:
    total = 5000
    queue = reqrunner.JobQueue(db_url)
    jobs = catalogue.register(queue, db_url)
    _recreate_executions(db_url)
    jobs.record.dispatch_many([{"key": f"job-{i}"} for i in range(total)])
    procs = [_runner(db_url) for _ in range(4)]
    errors = []
    for proc in procs:
        _out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err.decode()
        errors.append(err.decode())
    engine = catalogue.executions_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT job_key, pid FROM executions")).all()
    assert len(rows) == total
    assert {key for key, _pid in rows} == {f"job-{i}" for i in range(total)}
    # every process did a share of the work, and nothing failed or was retried
    assert len({pid for _key, pid in rows}) >= 2
    assert queue.stats().total == 0
    assert not any("failed" in e for e in errors), errors
    queue.close()


def test_a_live_job_running_three_times_its_ttr_is_not_claimed_again(
    db_url: str, tmp_path: Path
) -> None:
    queue = reqrunner.JobQueue(db_url)
    jobs = catalogue.register(queue)
    marker = tmp_path / "runs.txt"
    job_id = jobs.long_lease.dispatch(3.0, str(marker))  # ttr is 1 s
    proc = _runner(db_url, "once")
    try:
        wait_for(marker.exists, 20, "the job to start")
        started = time.monotonic()
        # A second runner keeps trying for the whole 3 s, well past the 1 s ttr.
        while time.monotonic() - started < 3.2 and proc.poll() is None:
            queue.store._last_recover = 0.0
            report = queue.run()
            assert report.ran == 0 and report.interrupted == 0
            time.sleep(0.1)
        _out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()
    assert len(marker.read_text().splitlines()) == 1
    assert queue.get(job_id) is None
    queue.close()
