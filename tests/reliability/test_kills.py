"""gunicorn workers SIGKILLed at random under traffic that dispatches and runs jobs in-request.

Every job a page view confirmed is executed (none lost), nothing is left waiting or reserved
(none stuck), and a job executed twice was first executed by a worker that was killed.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import psutil
import pytest

import reqrunner

from ..conftest import drop_tables
from ..middleware.servers import serve
from ..middleware.sites import read_stamps

JOBS = 2000
KILLS = 20
"""The traffic goes on until both counts are reached."""
PER_PAGE = 5
SECRET = "kill-test-secret-5c4b3a"


def _settle(queue: reqrunner.JobQueue, url: str, seconds: float) -> None:
    """Keep page views coming until nothing waits or is reserved (expired leases recovered)."""
    deadline = time.monotonic() + seconds
    with httpx.Client(timeout=10) as client:
        while time.monotonic() < deadline:
            stats = queue.stats()
            if stats.waiting == 0 and stats.reserved == 0:
                return
            with contextlib.suppress(httpx.HTTPError):
                client.get(f"{url}/page")
            time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_random_worker_kills_lose_nothing(
    database: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if database == "sqlite":
        db = f"sqlite:///{tmp_path}/jobs.sqlite3"
    else:
        db = request.getfixturevalue("postgresql_url")
        drop_tables(db)
    stamps = str(tmp_path / "stamps.jsonl")
    env = {"RR_DB": db, "RR_STAMPS": stamps, "RR_MODE": "sync", "RR_TTR": "2",
           "RR_SECRET": SECRET, "RR_MAX_TIME": "5"}  # fmt: skip
    confirmed: set[str] = set()
    unsure: set[str] = set()
    statuses: Counter[str] = Counter()
    killed: set[int] = set()
    lock = threading.Lock()
    done = threading.Event()
    fired = [0]

    with serve("gunicorn", tmp_path, workers=3, **env) as server:
        master = psutil.Process(server.process.pid)

        def traffic(client_no: int) -> None:
            with httpx.Client(timeout=10) as client:
                page = 0
                while not done.is_set():
                    prefix = f"c{client_no}p{page}k"
                    keys = {f"{prefix}{i}" for i in range(PER_PAGE)}
                    page += 1
                    with lock:
                        enough = len(confirmed) >= JOBS
                    # Past the count, page views go on (running jobs, under kills) without
                    # adding more: the backlog stays what the settling can drain.
                    path, params = (
                        ("/page", {}) if enough else ("/dispatch", {"n": PER_PAGE, "key": prefix})
                    )
                    try:
                        response = client.get(f"{server.url}{path}", params=params)
                        status = str(response.status_code)
                    except httpx.HTTPError as exc:
                        status = type(exc).__name__
                    with lock:
                        fired[0] += 1
                        statuses[status] += 1
                        if not enough:
                            (confirmed if status == "200" else unsure).update(keys)
                        if len(confirmed) >= JOBS and len(killed) >= KILLS:
                            done.set()

        def killer() -> None:
            rng = random.Random(10)
            while not done.wait(0.5):
                workers = master.children()
                if not workers:
                    continue
                victim = rng.choice(workers)
                try:
                    os.kill(victim.pid, signal.SIGKILL)
                    killed.add(victim.pid)
                except ProcessLookupError:
                    pass

        threads = [threading.Thread(target=traffic, args=(n,)) for n in range(4)]
        threads.append(threading.Thread(target=killer))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(240)
        assert done.is_set(), "the traffic did not reach its count in time"
        queue = reqrunner.JobQueue(db)
        try:
            _settle(queue, server.url, 120)
            stats = queue.stats()
            failed = queue.count_jobs(state="failed")
        finally:
            queue.close()
        log = server.log.read_text(errors="replace")

    executions = read_stamps(stamps)
    by_key: dict[str, list[dict[str, object]]] = {}
    for stamp in executions:
        by_key.setdefault(str(stamp["key"]), []).append(stamp)
    lost = sorted(confirmed - by_key.keys())
    duplicates = {key: runs for key, runs in by_key.items() if len(runs) > 1}
    # Every execution but the last of a key was cut short by a kill.
    innocent = [
        key for key, runs in duplicates.items()
        if any(run["pid"] not in killed for run in sorted(runs, key=lambda r: r["end"])[:-1])
    ]  # fmt: skip
    print(
        f"\n{database}: {len(confirmed)} jobs confirmed (+{len(unsure)} unsure), "
        f"{len(executions)} executions, {len(killed)} kills, {len(duplicates)} duplicates, "
        f"{fired[0]} requests fired, statuses {dict(statuses)}, lost {len(lost)}, "
        f"left waiting {stats.waiting} reserved {stats.reserved} failed {failed}"
    )
    assert len(killed) >= KILLS
    assert lost == []
    assert (stats.waiting, stats.reserved, failed) == (0, 0, 0)
    assert innocent == []
    assert SECRET not in log
