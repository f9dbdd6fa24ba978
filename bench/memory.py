"""Idle memory of a worker: reqrunner's on PostgreSQL and on SQLite, pgqueuer's on PostgreSQL.

Each worker is started afresh, left idle (an empty queue, its tables there) for --idle seconds,
then its resident set size is read with psutil and it is stopped. Each round starts the three
in turn; the table gives the median of the rounds (3, or 1 with --quick) with their range.

    python bench/memory.py [--pg URL] [--rounds R] [--idle S] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BENCH_DB = "reqrunner_bench_memory"


#: The worker's app: one job, as a site has; the database comes from ``--db``.
SITE = """
import reqrunner

queue = reqrunner.JobQueue()

@queue.job(name="bench.noop")
def noop() -> None:
    pass
"""


def rss_when_idle(command: list[str], idle: float, path: str) -> float:
    """MB resident in a fresh process running ``command`` after ``idle`` seconds (``path``
    first on its import path)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([path, str(ROOT), *sys.path])}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(idle)
        if proc.poll() is not None:
            raise RuntimeError(f"{command} exited early:\n{proc.stderr.read().decode()}")  # type: ignore[union-attr]
        return psutil.Process(proc.pid).memory_info().rss / 2**20
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def reqrunner_worker(url: str) -> list[str]:
    return [sys.executable, "-m", "reqrunner", "work", "--app", "memory_site:queue", "--db", url]


def pgqueuer_worker(dsn: str) -> list[str]:
    return [sys.executable, __file__, "--pgqueuer-worker", dsn]


async def _pgqueuer_idle(dsn: str) -> None:
    import asyncpg  # type: ignore[import-untyped]  # noqa: PLC0415
    from pgqueuer import Job, Queries, QueueManager  # noqa: PLC0415

    conn = await asyncpg.connect(dsn)
    manager = QueueManager(Queries.from_asyncpg_connection(conn))

    @manager.entrypoint("noop")
    async def noop(job: Job) -> None:
        """The benchmark's job: nothing."""

    await manager.run()


async def _pgqueuer_install(dsn: str) -> None:
    import asyncpg  # noqa: PLC0415
    from pgqueuer import Queries  # noqa: PLC0415

    conn = await asyncpg.connect(dsn)
    try:
        await Queries.from_asyncpg_connection(conn).install()
    finally:
        await conn.close()


def server_database(base: str, *, drop: bool = False) -> str:
    """A throw-away database ``reqrunner_bench_memory`` on the server of ``base`` (made afresh;
    dropped with ``drop``); its URL."""
    import sqlalchemy as sa  # noqa: PLC0415 (the bench's own set-up, in this process only)

    admin = sa.create_engine(base.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        if not drop:
            conn.exec_driver_sql(f"CREATE DATABASE {BENCH_DB}")
    url = admin.url.set(database=BENCH_DB).render_as_string(hide_password=False)
    admin.dispose()
    return url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg", default=os.environ.get("REQRUNNER_TEST_POSTGRES_URL", DEFAULT_PG))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--idle", type=float, default=2.0, help="seconds idle before the read")
    parser.add_argument("--quick", action="store_true", help="one round, one second idle")
    parser.add_argument("--pgqueuer-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pgqueuer_worker:
        asyncio.run(_pgqueuer_idle(args.pgqueuer_worker))
        return
    rounds, idle = (1, 1.0) if args.quick else (args.rounds, args.idle)

    import reqrunner  # noqa: PLC0415

    pg_url = server_database(args.pg)
    dsn = "postgresql://" + pg_url.split("://", 1)[1]
    workers: dict[str, Callable[[], list[str]]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            Path(tmp, "memory_site.py").write_text(SITE)
            sqlite_url = f"sqlite:///{tmp}/bench.sqlite3"
            for url in (pg_url, sqlite_url):
                reqrunner.JobQueue(url).stats()  # the tables, before any worker starts
            workers["reqrunner work, PostgreSQL"] = lambda: reqrunner_worker(pg_url)
            workers["reqrunner work, SQLite"] = lambda: reqrunner_worker(sqlite_url)
            try:
                asyncio.run(_pgqueuer_install(dsn))
                workers["pgqueuer worker, PostgreSQL"] = lambda: pgqueuer_worker(dsn)
            except ImportError as exc:
                print(f"pgqueuer skipped ({exc}): pip install -e '.[bench]'", file=sys.stderr)
            found: dict[str, list[float]] = {name: [] for name in workers}
            for _ in range(rounds):
                for name, command in workers.items():
                    found[name].append(rss_when_idle(command(), idle, tmp))
    finally:
        server_database(args.pg, drop=True)
    print(f"\nidle worker RSS, MB, after {idle:g} s idle; median of {rounds} (min–max)\n")
    width = max(len(name) for name in found)
    for name, values in found.items():
        print(
            f"{name:<{width}}  {statistics.median(values):6.1f}  "
            f"({min(values):.1f}–{max(values):.1f})"
        )


if __name__ == "__main__":
    main()
