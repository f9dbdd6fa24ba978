"""``adispatch`` keeps uvicorn's event loop free while the job database makes it wait.

Another process holds the SQLite write lock for 3 s. During that time one visitor's page
dispatches a job from an ``async def`` view (it waits for the lock), and another visitor keeps
asking for a second page of the same server. With ``adispatch`` the second visitor notices
nothing; with the blocking ``dispatch`` called on the loop (measured for comparison) every
request waits for the lock.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

import reqrunner

from .servers import Server, baseline, serve, ttlb
from .sites import read_stamps

HOLD = 3.0
"""Seconds the other process holds the write lock."""
FEW_MS = 0.05
"""What "not delayed" allows a request over its median when nothing holds the lock (on a
small shared machine)."""

_HOLDER = """
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
con.execute("COMMIT")
"""


def while_locked(server: Server, db: Path, path: str) -> tuple[float, list[float]]:
    """Hold the write lock in another process, GET ``path`` (which dispatches), and meanwhile
    time requests to ``/page``: how long ``path`` took and each ``/page``'s time to last byte."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(db), str(HOLD)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        locked_at = time.monotonic()
        with (
            ThreadPoolExecutor(1) as pool,
            httpx.Client(timeout=30) as visitor,
            httpx.Client(timeout=30) as other,
        ):
            dispatching = pool.submit(ttlb, visitor, f"{server.url}{path}")
            time.sleep(0.2)  # the dispatching request is waiting for the lock now
            pages = []
            while time.monotonic() - locked_at < HOLD - 0.5:
                pages.append(ttlb(other, f"{server.url}/page")[0])
                time.sleep(0.02)
            took, response = dispatching.result(timeout=30)
        assert response.status_code == 200
    finally:
        holder.communicate(timeout=10)
    return took, pages


def test_adispatch_does_not_hold_the_event_loop(tmp_path: Path, figures: list[str]) -> None:
    db = tmp_path / "jobs.sqlite3"
    stamps = tmp_path / "stamps.jsonl"
    env = {"RR_DB": f"sqlite:///{db}", "RR_STAMPS": str(stamps), "RR_RATE": "0"}
    with serve("uvicorn", tmp_path, **env) as server, httpx.Client() as client:
        # The tables exist and the site's connections are open before anything is measured.
        assert client.get(f"{server.url}/adispatch?key=warm").status_code == 200
        quiet = baseline(client, f"{server.url}/page", n=15)

        took, pages = while_locked(server, db, "/adispatch?key=locked")
        worst = max(pages) - quiet
        figures.append(
            f"event loop, adispatch: the dispatching page took {took * 1000:.0f} ms; "
            f"{len(pages)} requests to /page meanwhile: median "
            f"{statistics.median(pages) * 1000:.1f} ms, worst {max(pages) * 1000:.1f} ms "
            f"(nothing locked: median {quiet * 1000:.1f} ms)"
        )
        assert took > HOLD - 1.0, "the dispatch must have waited for the lock"
        assert len(pages) >= 10
        assert worst < FEW_MS, pages

        blocked_took, blocked = while_locked(server, db, "/blocking-dispatch?key=blocked")
        figures.append(
            f"event loop, dispatch on the loop (for comparison): the page took "
            f"{blocked_took * 1000:.0f} ms; {len(blocked)} requests to /page meanwhile, "
            f"worst {max(blocked) * 1000:.0f} ms"
        )
        # The comparison shows what the test would see without adispatch.
        assert max(blocked) > 1.0

    # All three jobs were stored, none run (run_rate=0).
    assert read_stamps(stamps) == []
    queue = reqrunner.JobQueue(env["RR_DB"])
    try:
        keys = sorted(job.args[0] for job in queue.list_jobs())
        assert keys == ["blocked0", "locked0", "warm0"]
    finally:
        queue.close()
