"""``reqrunner work`` and ``reqrunner restart`` as real processes.

Latency is measured from the moment ``dispatch()`` returns, its transaction committed, to the
``time.time()`` the job itself writes when it starts.
"""

from __future__ import annotations

import json
import signal
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import reqrunner
from tests.cli.app_for_cli import build_queue
from tests.cli.conftest import CLI

Track = Callable[[subprocess.Popen[str]], subprocess.Popen[str]]


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def start_idle_worker(cli: CLI, q: reqrunner.JobQueue, track: Track, *args: str):
    """Start ``work`` and return once it is idle, waiting for jobs.

    A first job proves the worker runs; the pause after it lets the worker finish that run and
    settle into its wait, so what follows measures the wake-up and not the start-up.
    """
    proc = track(cli.start("work", *args))
    warm = q.jobs["cli.stamp"].dispatch(str(Path(f"/tmp/warm-{proc.pid}")))
    wait_for(lambda: q.get(warm).state is reqrunner.JobState.DONE)  # type: ignore[union-attr]
    time.sleep(0.5)
    return proc


def latencies(q: reqrunner.JobQueue, path: Path, count: int, pause: float) -> list[float]:
    """Seconds from each dispatch to its job's start, timed from when ``dispatch()`` returned:
    its commit is the moment the job exists for a worker (NOTIFY is delivered on commit)."""
    committed, calls = [], []
    for i in range(count):
        before = time.time()
        q.jobs["cli.stamp"].dispatch(str(path), str(i))
        committed.append(time.time())
        calls.append(committed[-1] - before)
        wait_for(lambda n=i + 1: len(lines(path)) >= n)
        time.sleep(pause)
    print("dispatch() call durations (ms):", [round(x * 1000, 1) for x in calls])
    ran = [float(line.split()[0]) for line in lines(path)]
    # The worker may start the job before dispatch() has even returned here: count that as 0.
    return [max(0.0, r - c) for r, c in zip(ran, committed, strict=True)]


def stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=15)
    return proc.returncode, err


def test_work_wakes_on_notify_on_postgresql(pg_cli_url: str, processes: Track, tmp_path: Path):
    cli, q = CLI(pg_cli_url), build_queue(pg_cli_url)
    # --sleep 30: polling cannot explain anything under 30 s, only NOTIFY can.
    proc = start_idle_worker(cli, q, processes, "--sleep", "30")

    measured = latencies(q, tmp_path / "stamps.txt", count=5, pause=0.3)

    print("PostgreSQL NOTIFY wake-up latencies (ms):", [round(x * 1000, 1) for x in measured])
    assert statistics.median(measured) < 0.1, measured
    assert max(measured) < 1.0, measured
    code, err = stop(proc)
    assert code == 0, err
    q.close()


def test_work_polls_sqlite_within_sleep(sqlite_cli_url: str, processes: Track, tmp_path: Path):
    cli, q = CLI(sqlite_cli_url), build_queue(sqlite_cli_url)
    sleep = 0.5
    proc = start_idle_worker(cli, q, processes, "--sleep", str(sleep))

    measured = latencies(q, tmp_path / "stamps.txt", count=3, pause=0.37)

    print("SQLite poll wake-up latencies (ms):", [round(x * 1000, 1) for x in measured])
    assert max(measured) < sleep + 0.1, measured
    code, err = stop(proc)
    assert code == 0, err
    q.close()


def test_sigterm_lets_the_current_job_finish(cli_url: str, processes: Track, tmp_path: Path):
    cli, q = CLI(cli_url), build_queue(cli_url)
    out = tmp_path / "job.txt"
    job_id = q.jobs["cli.sleeps"].dispatch(str(out), 2.0)
    after = q.jobs["cli.stamp"].dispatch(str(tmp_path / "never.txt"))
    proc = processes(cli.start("work", "--sleep", "0.2"))
    wait_for(lambda: lines(out) == ["start"])
    signalled = time.monotonic()

    code, err = stop(proc)

    assert code == 0, err
    assert lines(out) == ["start", "end"]
    assert time.monotonic() - signalled < 2.0 + 3.0  # the job's rest, plus a shutdown
    assert q.get(job_id).state is reqrunner.JobState.DONE  # type: ignore[union-attr]
    assert q.get(after).state is reqrunner.JobState.WAITING  # type: ignore[union-attr]
    assert "Traceback" not in err
    q.close()


def test_second_signal_exits_at_once(sqlite_cli_url: str, processes: Track, tmp_path: Path):
    cli, q = CLI(sqlite_cli_url), build_queue(sqlite_cli_url)
    out = tmp_path / "job.txt"
    job_id = q.jobs["cli.sleeps"].dispatch(str(out), 30.0)
    proc = processes(cli.start("work"))
    wait_for(lambda: lines(out) == ["start"])
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=5)

    assert proc.returncode == 128 + signal.SIGINT, err
    assert "exiting now" in err
    assert lines(out) == ["start"]
    job = q.get(job_id)
    assert job is not None and job.state is reqrunner.JobState.WAITING
    assert job.history[-1]["outcome"] == "interrupted"
    q.close()


def test_restart_stops_two_workers_after_their_jobs(cli_url: str, processes: Track, tmp_path: Path):
    cli, q = CLI(cli_url), build_queue(cli_url)
    out, gate = tmp_path / "jobs.txt", tmp_path / "gate"
    for _ in range(2):
        q.jobs["cli.gated"].dispatch(str(out), str(gate))
    workers = [processes(cli.start("work", "--sleep", "0.2")) for _ in range(2)]
    wait_for(lambda: lines(out) == ["start", "start"])
    queued = q.jobs["cli.stamp"].dispatch(str(tmp_path / "never.txt"))

    assert cli("restart").returncode == 0
    seen = json.loads(cli("stats", "--json").stdout)["workers"]
    assert sorted(w["pid"] for w in seen) == sorted(w.pid for w in workers)
    assert all(proc.poll() is None for proc in workers)  # still in their jobs
    gate.touch()
    for proc in workers:
        _, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, err
        assert "restart requested" in err

    assert lines(out) == ["start", "start", "end", "end"]
    assert q.get(queued).state is reqrunner.JobState.WAITING  # type: ignore[union-attr]
    assert json.loads(cli("stats", "--json").stdout)["workers"] == []
    q.close()


@pytest.mark.parametrize(
    ("limit", "reason"), [(["--max-jobs", "2"], "max_jobs"), (["--max-time", "1"], "max_time")]
)
def test_limits_make_the_worker_exit_cleanly(
    sqlite_cli_url: str, processes: Track, tmp_path: Path, limit: list[str], reason: str
):
    cli, q = CLI(sqlite_cli_url), build_queue(sqlite_cli_url)
    for seconds in (0.3, 0.3, 30):
        q.jobs["cli.sleeps"].dispatch(str(tmp_path / "x.txt"), seconds)
    proc = processes(cli.start("work", "--sleep", "0.2", *limit))
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert f"{reason} reached" in err
    ran = lines(tmp_path / "x.txt")
    assert ran.count("start") == ran.count("end") >= 1  # it stopped between jobs
    assert q.stats().waiting == 3 - ran.count("end") >= 1  # the 30 s job never started
    q.close()


def test_an_idle_worker_wakes_when_a_delayed_job_comes_due(
    sqlite_cli_url: str, processes: Track, tmp_path: Path
):
    cli, q = CLI(sqlite_cli_url), build_queue(sqlite_cli_url)
    out = tmp_path / "stamps.txt"
    job_id = q.jobs["cli.stamp"].using(delay=2.5).dispatch(str(out))
    due = q.get(job_id).available_at.timestamp()  # type: ignore[union-attr]
    # --sleep 30: only the worker's knowledge of the due time can explain a run near it.
    proc = processes(cli.start("work", "--sleep", "30"))
    wait_for(lambda: lines(out) != [])
    late = float(lines(out)[0].split()[0]) - due
    print(f"delayed job ran {late * 1000:.1f} ms after its due time")
    assert 0 <= late < 0.2
    code, err = stop(proc)
    assert code == 0, err
    q.close()
