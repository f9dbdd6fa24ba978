"""``max_concurrent_runs=1`` holds under 20 clients across 3 gunicorn workers, also when every
job outlives the run lease (2 × ``max_time``)."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import httpx
import pytest

import reqrunner

from ..conftest import drop_tables
from ..middleware.servers import serve
from ..middleware.sites import read_stamps, register

JOB_SECONDS = 0.6


@pytest.mark.slow
@pytest.mark.parametrize(("database", "max_time"), [("sqlite", "20"), ("sqlite", "0.2"),
                                                    ("postgresql", "0.2")])  # fmt: skip
def test_runs_never_overlap(
    database: str, max_time: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if database == "sqlite":
        db = f"sqlite:///{tmp_path}/jobs.sqlite3"
    else:
        db = request.getfixturevalue("postgresql_url")
        drop_tables(db)
    stamps = str(tmp_path / "stamps.jsonl")
    queue = reqrunner.JobQueue(db)
    register(queue, stamps)
    jobs = 8
    for i in range(jobs):
        queue.dispatch("stamp", f"j{i}", JOB_SECONDS)
    env = {"RR_DB": db, "RR_STAMPS": stamps, "RR_MODE": "sync", "RR_CONC": "1",
           "RR_MAX_TIME": max_time}  # fmt: skip
    done = threading.Event()
    fired = [0]

    with serve("gunicorn", tmp_path, workers=3, **env) as server:

        def visitor() -> None:
            with httpx.Client(timeout=10) as client:
                while not done.is_set():
                    client.get(f"{server.url}/page")
                    fired[0] += 1

        visitors = [threading.Thread(target=visitor) for _ in range(20)]
        for thread in visitors:
            thread.start()
        deadline = time.monotonic() + 60
        while len(read_stamps(stamps)) < jobs and time.monotonic() < deadline:
            time.sleep(0.2)
        done.set()
        for thread in visitors:
            thread.join(20)
    queue.close()

    runs = sorted(read_stamps(stamps), key=lambda s: s["start"])
    assert sorted(s["key"] for s in runs) == sorted(f"j{i}" for i in range(jobs))
    overlaps = [(a["key"], b["key"]) for a, b in itertools.pairwise(runs) if b["start"] < a["end"]]
    print(
        f"\n{database} max_time={max_time}: {jobs} jobs of {JOB_SECONDS} s, {fired[0]} page "
        f"views from 20 clients, {len({s['pid'] for s in runs})} processes ran them, "
        f"overlaps {len(overlaps)}"
    )
    assert overlaps == []
