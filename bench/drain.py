"""Draining a backlog with nothing but page views: how long, and what it costs the pages.

A test site (Starlette on uvicorn, wrapped in the middleware, ``mode="auto"``, SQLite) gets a
steady stream of page views (20 a second by default). First with no jobs, to measure the pages'
own latency; then 1,000 jobs of 10 ms are dispatched at once and the same stream goes on until
the queue is empty. Printed: seconds to empty, and the p50 / p99 page latency with and without
the backlog.

    python bench/drain.py [--jobs 1000] [--rate 20] [--seconds 10] [--quick]

``--quick``: 50 jobs and 2 seconds of baseline (what CI runs to keep the bench alive).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import reqrunner  # noqa: E402
from tests.middleware.servers import serve  # noqa: E402
from tests.middleware.sites import register  # noqa: E402


def views(client: httpx.Client, url: str, rate: float, until: object) -> list[float]:
    """Page views at ``rate`` a second until ``until()`` is true; their latencies (s)."""
    latencies: list[float] = []
    start = time.perf_counter()
    i = 0
    while not until(len(latencies)):  # type: ignore[operator]
        at = start + i / rate
        pause = at - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        sent = time.perf_counter()
        client.get(url).raise_for_status()
        latencies.append(time.perf_counter() - sent)
        i += 1
    return latencies


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    jobs, seconds = (50, 2.0) if args.quick else (args.jobs, args.seconds)
    print(f"# reqrunner drain under traffic, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        db = f"sqlite:///{tmp}/jobs.sqlite3"
        stamps = str(Path(tmp) / "stamps")
        queue = reqrunner.JobQueue(db)
        register(queue, stamps)
        env = {"RR_DB": db, "RR_STAMPS": stamps, "RR_MODE": "auto"}
        with serve("uvicorn", Path(tmp), **env) as server, httpx.Client() as client:
            page = f"{server.url}/page"
            client.get(page)
            count = int(seconds * args.rate)
            quiet = views(client, page, args.rate, lambda n: n >= count)
            queue.jobs["stamp"].dispatch_many(
                [{"key": f"k{i}", "seconds": 0.01} for i in range(jobs)]
            )
            began = time.perf_counter()
            deadline = began + max(120.0, jobs * 0.2)

            def empty(n: int) -> bool:
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"the backlog did not drain in {deadline - began:.0f} s")
                stats = queue.stats()
                return stats.waiting + stats.reserved + stats.delayed == 0

            loud = views(client, page, args.rate, empty)
            took = time.perf_counter() - began
        queue.close()
    print(f"\n{jobs:,} jobs of 10 ms, {args.rate:g} page views/s on uvicorn (mode auto, SQLite)")
    print(f"seconds to empty: {took:.1f} ({jobs / took:.0f} jobs/s)")
    for label, sample in (("no jobs", quiet), ("draining", loud)):
        print(
            f"page latency, {label:8}: p50 {statistics.median(sample) * 1000:6.1f} ms   "
            f"p99 {percentile(sample, 99) * 1000:6.1f} ms   ({len(sample)} views)"
        )


if __name__ == "__main__":
    main()
