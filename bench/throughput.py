"""Throughput of reqrunner against its peers, measured side by side in one run.

For SQLite and PostgreSQL: dispatch N no-op jobs (payload ``{"n": i}``) one by one, dispatch N
in bulk (``dispatch_many``), then drain them with one runner. "drain" is timed like the peers'
(bench/peers.py): from spawning a fresh worker process (interpreter start and imports included)
until it exits on an empty queue; "drain steady" is the same drain timed inside the worker, from
its first claim to the empty queue. Every figure is the median of the rounds (3 unless
--rounds says; min–max beside it). The peers are huey's SqliteHuey at synchronous=NORMAL (our
durability level) and pgqueuer on PostgreSQL, measured in the same run: each round runs
reqrunner, then its peer, so that both see the same load, and each ratio is the median of the
rounds' own ratios (min–max beside it). --no-drain measures dispatch only.

    python bench/throughput.py [N] [--pg URL] [--no-peers] [--rounds R] [--no-drain]
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
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

# Only reqrunner at the top: the drain's worker is this file run afresh, and what it imports
# is part of what it is timed for. SQLAlchemy (the bench's own set-up) comes where it is used.
import reqrunner  # noqa: E402
from reqrunner.store.layout import TABLES  # noqa: E402

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


def resolve_engine(url: str) -> Any:
    from reqrunner.store.database import resolve_engine  # noqa: PLC0415 (SQLAlchemy)

    return resolve_engine(url)


def _reset(url: str) -> None:
    engine = resolve_engine(url)
    if engine.dialect.name == "sqlite":
        engine.dispose()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{engine.url.database}{suffix}").unlink(missing_ok=True)
        return
    with engine.begin() as conn:
        for table in TABLES:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
    engine.dispose()


def one_run(url: str, n: int, *, drain: bool = True) -> dict[str, float]:
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
    if not drain:
        return {"dispatch_single": single, "dispatch_bulk": bulk}
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


Measure = Callable[[], dict[str, float] | None]


def alternate(
    ours: Callable[[], dict[str, float]], theirs: Measure | None, rounds: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """``rounds`` rounds of ``ours`` then ``theirs``: each one's figures, by column, in round
    order (``theirs`` is dropped once it returns None: the peer is not installed)."""
    mine: dict[str, list[float]] = {}
    peer: dict[str, list[float]] = {}
    for _ in range(rounds):
        for key, value in ours().items():
            mine.setdefault(key, []).append(value)
        figures = theirs() if theirs is not None else None
        if figures is None:
            theirs = None
            continue
        for key, value in figures.items():
            peer.setdefault(key, []).append(value)
    return mine, peer


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
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-drain", action="store_true", help="measure dispatch only")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return
    n, rounds, drain = args.n, args.rounds, not args.no_drain
    peers: Any = None
    if not args.no_peers:
        import peers  # noqa: PLC0415 (its imports are heavy; only when asked)
    # (label, reqrunner's figures, the peer's label, the peer's figures)
    pairs: list[tuple[str, dict[str, list[float]], str, dict[str, list[float]]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        sqlite_url = f"sqlite:///{tmp}/bench.sqlite3"
        huey: Measure | None = None
        if peers is not None:
            huey = lambda: peers.huey_sqlite(n, Path(tmp))  # noqa: E731
        ours, theirs = alternate(lambda: one_run(sqlite_url, n, drain=drain), huey, rounds)
        pairs.append(("SQLite", ours, "huey SqliteHuey (sync=NORMAL)", theirs))
    import sqlalchemy as sa  # noqa: PLC0415 (see the imports above)

    try:
        pg_url = pg_bench_url(args.pg)
    except sa.exc.OperationalError as exc:
        print(f"PostgreSQL not reachable, skipped: {exc}", file=sys.stderr)
    else:
        pgq: Measure | None = None
        if peers is not None:
            pgq = lambda: peers.pgqueuer_pg(n, args.pg, drain=drain)  # noqa: E731
        try:
            ours, theirs = alternate(lambda: one_run(pg_url, n, drain=drain), pgq, rounds)
        finally:
            drop_pg_bench(args.pg)
        pairs.append(("PostgreSQL", ours, "pgqueuer", theirs))
    columns = ("dispatch_single", "dispatch_bulk", "drain", "drain_steady")
    columns = columns if drain else columns[:2]
    print(f"\n{n:,} no-op jobs, jobs/s, median of {rounds} (min–max)\n")
    print(f"{'':40} " + " ".join(f"{c:>26}" for c in columns))
    for database, ours, peer, theirs in pairs:
        for name, figures in ((f"reqrunner, {database}", ours), (f"{peer}, {database}", theirs)):
            if figures:
                print(f"{name:40} " + " ".join(f"{fmt(figures.get(c)):>26}" for c in columns))
    print(f"\nreqrunner / peer, median of the {rounds} rounds' ratios (min–max)\n")
    for database, ours, peer, theirs in pairs:
        for column in columns:
            a, b = ours.get(column), theirs.get(column)
            if a and b:
                ratios = [x / y for x, y in zip(a, b, strict=True)]
                print(
                    f"{database + ' ' + column + ', reqrunner / ' + peer:64} "
                    f"{statistics.median(ratios):5.2f}× ({min(ratios):.2f}–{max(ratios):.2f})"
                )


if __name__ == "__main__":
    main()
