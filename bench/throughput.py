"""Throughput of reqrunner against its peers, measured side by side in one run.

For SQLite and PostgreSQL: dispatch N no-op jobs (payload ``{"n": i}``) one by one, dispatch N
in bulk (``dispatch_many``), then drain them with one runner. "drain" is timed like the peers'
(bench/peers.py): from spawning a fresh worker process (interpreter start and imports included)
until it exits on an empty queue; "drain steady" is the same drain timed inside the worker, from
its first claim to the empty queue. Every figure is the median of 3 runs (min–max beside it).
The peers are huey's SqliteHuey at synchronous=NORMAL (our durability level) and pgqueuer
on PostgreSQL, measured in the same run.

    python bench/throughput.py [N] [--pg URL] [--no-peers]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import reqrunner  # noqa: E402
from reqrunner.store.database import resolve_engine  # noqa: E402

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BENCH_PG_DB = "reqrunner_bench"


def make_queue(url: str) -> tuple[reqrunner.JobQueue, reqrunner.Job[..., None]]:
    queue = reqrunner.JobQueue(url)

    @queue.job(name="bench.noop")
    def noop(n: int) -> None:
        """The benchmark's job: nothing."""

    return queue, noop


def worker(url: str) -> None:
    """Drain the queue in this (fresh) process; print jobs run and the steady-state seconds."""
    queue, _noop = make_queue(url)
    started = time.perf_counter()
    report = queue.run(reqrunner.Limits(max_jobs=None, max_time=None, max_memory=None))
    print(json.dumps({"ran": report.ran, "seconds": time.perf_counter() - started}))


def _reset(url: str) -> None:
    engine = resolve_engine(url)
    if engine.dialect.name == "sqlite":
        engine.dispose()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{engine.url.database}{suffix}").unlink(missing_ok=True)
        return
    with engine.begin() as conn:
        for table in ("reqrunner_jobs", "reqrunner_meta", "reqrunner_leases", "reqrunner_counters"):
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
    engine.dispose()


def one_run(url: str, n: int) -> dict[str, float]:
    _reset(url)
    queue, noop = make_queue(url)
    queue.stats()  # create the tables outside the timings
    t0 = time.perf_counter()
    for i in range(n):
        noop.dispatch(n=i)
    single = n / (time.perf_counter() - t0)
    queue.close()
    _reset(url)  # a fresh store for the bulk phase, as the peers get (no dead rows, no big WAL)
    queue, noop = make_queue(url)
    queue.stats()
    t0 = time.perf_counter()
    noop.dispatch_many([{"n": i} for i in range(n)])
    bulk = n / (time.perf_counter() - t0)
    queue.close()
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, __file__, "--worker", url], capture_output=True, text=True, check=True
    )
    spawn_to_exit = time.perf_counter() - t0
    result = json.loads(out.stdout)
    if result["ran"] != n:
        raise RuntimeError(f"the worker ran {result['ran']} jobs, expected {n}")
    return {
        "dispatch_single": single,
        "dispatch_bulk": bulk,
        "drain": n / spawn_to_exit,
        "drain_steady": n / result["seconds"],
    }


def median_runs(
    measure: Callable[[], dict[str, float] | None], runs: int = 3
) -> dict[str, list[float]]:
    collected: dict[str, list[float]] = {}
    for _ in range(runs):
        figures = measure()
        if figures is None:
            return {}
        for key, value in figures.items():
            collected.setdefault(key, []).append(value)
    return collected


def fmt(values: list[float] | None) -> str:
    if not values:
        return "–"
    return f"{statistics.median(values):>9,.0f} ({min(values):,.0f}–{max(values):,.0f})"


def pg_bench_url(base: str) -> str:
    admin = resolve_engine(base)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {BENCH_PG_DB} WITH (FORCE)")
        conn.exec_driver_sql(f"CREATE DATABASE {BENCH_PG_DB}")
    admin.dispose()
    return admin.url.set(database=BENCH_PG_DB).render_as_string(hide_password=False)


def drop_pg_bench(base: str) -> None:
    admin = resolve_engine(base)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {BENCH_PG_DB} WITH (FORCE)")
    admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("n", nargs="?", type=int, default=10_000)
    parser.add_argument("--pg", default=os.environ.get("REQRUNNER_TEST_POSTGRES_URL", DEFAULT_PG))
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return
    n = args.n
    rows: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        sqlite_url = f"sqlite:///{tmp}/bench.sqlite3"
        rows["reqrunner, SQLite"] = median_runs(lambda: one_run(sqlite_url, n))
        if not args.no_peers:
            import peers  # noqa: PLC0415 (its imports are heavy; only when asked)

            rows["huey SqliteHuey, SQLite (sync=NORMAL)"] = median_runs(
                lambda: peers.huey_sqlite(n, Path(tmp))
            )
    try:
        pg_url = pg_bench_url(args.pg)
    except sa.exc.OperationalError as exc:
        print(f"PostgreSQL not reachable, skipped: {exc}", file=sys.stderr)
    else:
        try:
            rows["reqrunner, PostgreSQL"] = median_runs(lambda: one_run(pg_url, n))
        finally:
            drop_pg_bench(args.pg)
        if not args.no_peers:
            import peers  # noqa: PLC0415 (its imports are heavy; only when asked)

            rows["pgqueuer, PostgreSQL"] = median_runs(lambda: peers.pgqueuer_pg(n, args.pg))
    columns = ("dispatch_single", "dispatch_bulk", "drain", "drain_steady")
    print(f"\n{n:,} no-op jobs, jobs/s, median of 3 (min–max)\n")
    print(f"{'':40} " + " ".join(f"{c:>26}" for c in columns))
    for name, figures in rows.items():
        print(f"{name:40} " + " ".join(f"{fmt(figures.get(c)):>26}" for c in columns))
    ratios = [
        (
            "SQLite drain, reqrunner / huey",
            "reqrunner, SQLite",
            "huey SqliteHuey, SQLite (sync=NORMAL)",
            "drain",
        ),
        (
            "SQLite dispatch one by one, reqrunner / huey",
            "reqrunner, SQLite",
            "huey SqliteHuey, SQLite (sync=NORMAL)",
            "dispatch_single",
        ),
        (
            "PostgreSQL drain, reqrunner / pgqueuer",
            "reqrunner, PostgreSQL",
            "pgqueuer, PostgreSQL",
            "drain",
        ),
        (
            "PostgreSQL bulk dispatch, reqrunner / pgqueuer",
            "reqrunner, PostgreSQL",
            "pgqueuer, PostgreSQL",
            "dispatch_bulk",
        ),
    ]
    print()
    for label, ours, theirs, column in ratios:
        a, b = rows.get(ours, {}).get(column), rows.get(theirs, {}).get(column)
        if a and b:
            print(f"{label:48} {statistics.median(a) / statistics.median(b):5.2f}×")


if __name__ == "__main__":
    main()
