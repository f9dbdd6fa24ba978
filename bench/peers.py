"""The peers' side of the throughput benchmark: huey (SQLite) and pgqueuer (PostgreSQL).

Every job is a no-op taking a payload ``{"n": i}``. "drain" runs from spawning a fresh worker
process (interpreter start and imports included) until that process exits after finding the
queue empty, for reqrunner and its peers alike; the worker reports how many jobs it ran and the
count is checked against ``n``.

Run alone: ``python bench/peers.py [n]`` (default 10,000 jobs, median of 3 runs).
The same file is the worker: ``python bench/peers.py --worker huey|pgqueuer ...``.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import pathlib
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

# Peer libraries are imported inside the functions so that each worker process pays only
# for its own library's imports (huey pulls in psycopg when it is installed).
BENCH_DB = "reqrunner_bench_pgq"  # throw-away database, created and dropped by pgqueuer_pg()
_TASK_MODULE = "reqrunner_bench_peers"  # fixed so producer and worker agree on huey's task name


def _spawn_worker(*args: str) -> tuple[float, int]:
    """Run this file as a worker; return (seconds from spawn to exit, jobs it ran)."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", *args], check=False, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{args[0]} worker failed ({proc.returncode}):\n{proc.stderr}")
    return elapsed, int(proc.stdout.split()[-1])


# --------------------------------------------------------------------------- huey


def _make_huey(db_file: pathlib.Path) -> tuple[Any, Any]:
    """A SqliteHuey on ``db_file`` (WAL, synchronous=NORMAL) and its registered no-op task."""
    from huey import SqliteHuey  # type: ignore[import-untyped]  # noqa: PLC0415
    from huey.storage import SqliteStorage  # type: ignore[import-untyped]  # noqa: PLC0415

    class NormalSyncStorage(SqliteStorage):  # type: ignore[misc]
        # huey's fsync= gives only OFF (0) or FULL (2); set NORMAL (1) on every connection.
        def _create_connection(self) -> sqlite3.Connection:
            conn: sqlite3.Connection = super()._create_connection()
            conn.execute("pragma synchronous=NORMAL")
            return conn

    def noop(payload: dict[str, int]) -> None:
        return None

    noop.__module__ = _TASK_MODULE
    huey = SqliteHuey("bench", filename=str(db_file), storage_class=NormalSyncStorage)
    return huey, huey.task(name="noop")(noop)


def _huey_worker(db_file: str) -> int:
    """One huey consumer Worker, run in this process's main thread until the queue is empty."""
    from huey.consumer import Worker  # type: ignore[import-untyped]  # noqa: PLC0415

    huey, _ = _make_huey(pathlib.Path(db_file))
    stop = threading.Event()
    stop.set()  # an empty dequeue then returns at once instead of sleeping its poll delay
    worker = Worker(huey, stop, default_delay=0.01, max_delay=0.01, backoff=1.0)
    worker.initialize()
    while True:
        before = worker.task_count
        worker.loop()
        if worker.task_count == before:
            break
    worker.shutdown()
    return int(worker.task_count)


def huey_sqlite(n: int, workdir: pathlib.Path) -> dict[str, float]:
    """SqliteHuey (huey 3.x) on a SQLite file in WAL mode at synchronous=NORMAL.

    dispatch_single: ``n`` task calls one by one (one INSERT + commit each) in this process.
    drain: from spawning one worker process (huey's own ``consumer.Worker.loop``, one worker,
    no scheduler thread) until it exits on an empty queue, as every drain here is timed.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    db_file = workdir / "huey-bench.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        pathlib.Path(f"{db_file}{suffix}").unlink(missing_ok=True)
    huey, noop = _make_huey(db_file)
    try:
        started = time.perf_counter()
        for i in range(n):
            noop({"n": i})
        dispatch = n / (time.perf_counter() - started)
        if huey.pending_count() != n:
            raise RuntimeError(f"huey: {huey.pending_count()} pending, expected {n}")
    finally:
        huey.storage.close()
    elapsed, ran = _spawn_worker("huey", str(db_file))
    if ran != n or huey.pending_count() != 0:
        raise RuntimeError(f"huey worker ran {ran} jobs of {n}")
    huey.storage.close()
    return {"dispatch_single": dispatch, "drain": n / elapsed}


# --------------------------------------------------------------------------- pgqueuer


def _asyncpg_dsn(dsn: str) -> str:
    """Accept SQLAlchemy-style URLs (postgresql+psycopg://...) as well as plain libpq ones."""
    scheme, sep, rest = dsn.partition("://")
    return f"{scheme.split('+')[0]}{sep}{rest}" if sep else dsn


async def _pgq_drain(dsn: str) -> int:
    import asyncpg  # type: ignore[import-untyped]  # noqa: PLC0415
    from pgqueuer import Job, Queries, QueueManager  # noqa: PLC0415
    from pgqueuer.types import QueueExecutionMode  # noqa: PLC0415

    conn = await asyncpg.connect(dsn, database=BENCH_DB)
    ran = 0
    qm = QueueManager(Queries.from_asyncpg_connection(conn))

    @qm.entrypoint("noop")
    async def noop(job: Job) -> None:
        nonlocal ran
        ran += 1

    try:
        await qm.run(mode=QueueExecutionMode.drain)  # defaults: batch_size=10, one process
    finally:
        await conn.close()
    return ran


async def _pgq_bench(n: int, dsn: str, drain: bool) -> dict[str, float]:
    import asyncpg  # noqa: PLC0415
    from pgqueuer import Queries  # noqa: PLC0415

    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {BENCH_DB}")
        conn = await asyncpg.connect(dsn, database=BENCH_DB)
        try:
            queries = Queries.from_asyncpg_connection(conn)
            await queries.install()
            payloads = [json.dumps({"n": i}).encode() for i in range(n)]

            started = time.perf_counter()
            for payload in payloads:
                await queries.enqueue("noop", payload)
            single = n / (time.perf_counter() - started)
            await queries.clear_queue()  # TRUNCATE: no dead tuples left for the drain

            started = time.perf_counter()
            await queries.enqueue(["noop"] * n, list(payloads), [0] * n)
            bulk = n / (time.perf_counter() - started)
            queued = await conn.fetchval("SELECT count(*) FROM pgqueuer")
            if not drain:
                return {"dispatch_single": single, "dispatch_bulk": bulk}

            elapsed, ran = _spawn_worker("pgqueuer", dsn)
            left = await conn.fetchval("SELECT count(*) FROM pgqueuer")
            if queued != n or ran != n or left != 0:
                raise RuntimeError(f"pgqueuer: queued {queued}, ran {ran}, left {left} of {n}")
        finally:
            await conn.close()
        return {"dispatch_single": single, "dispatch_bulk": bulk, "drain": n / elapsed}
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        await admin.close()


def pgqueuer_pg(n: int, dsn: str, *, drain: bool = True) -> dict[str, float] | None:
    """pgqueuer (asyncpg driver) on a throw-away database ``reqrunner_bench_pgq``.

    ``dsn`` is any database on the server (used to create and drop the bench database).
    dispatch_single: ``Queries.enqueue`` once per job (one autocommit INSERT each);
    dispatch_bulk: one ``Queries.enqueue`` call with lists (one array INSERT);
    drain: spawn one worker process running ``QueueManager.run(mode=drain)`` with its default
    batch_size=10 (the CLI ``pgq run`` is broken with typer 0.29) until it exits.
    drain=False: the dispatch figures only.
    Returns None, with the reason on stderr, if pgqueuer or asyncpg cannot be imported.
    """
    try:
        for module in ("asyncpg", "pgqueuer"):
            importlib.import_module(module)
    except ImportError as exc:
        print(
            f"pgqueuer benchmark skipped ({type(exc).__name__}: {exc}); "
            "pip install pgqueuer asyncpg",
            file=sys.stderr,
        )
        return None
    return asyncio.run(_pgq_bench(n, _asyncpg_dsn(dsn), drain))


# --------------------------------------------------------------------------- main


def _median_of(runs: list[dict[str, float]]) -> dict[str, tuple[float, float, float]]:
    return {
        key: (
            statistics.median(r[key] for r in runs),
            min(r[key] for r in runs),
            max(r[key] for r in runs),
        )
        for key in runs[0]
    }


def _report(name: str, runs: list[dict[str, float]]) -> None:
    for key, (med, lo, hi) in _median_of(runs).items():
        print(f"{name:10} {key:16} {med:10,.0f} jobs/s  ({lo:,.0f}-{hi:,.0f})")


def main(argv: list[str]) -> None:
    n = int(argv[0]) if argv else 10_000
    dsn = "postgresql://postgres@127.0.0.1:5432/test"
    with tempfile.TemporaryDirectory(prefix="reqrunner-bench-") as tmp:
        _report("huey", [huey_sqlite(n, pathlib.Path(tmp)) for _ in range(3)])
    pg_runs: list[dict[str, float]] = []
    while len(pg_runs) < 3 and (run := pgqueuer_pg(n, dsn)) is not None:
        pg_runs.append(run)
    if pg_runs:
        _report("pgqueuer", pg_runs)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        kind, target = sys.argv[2], sys.argv[3]
        count = _huey_worker(target) if kind == "huey" else asyncio.run(_pgq_drain(target))
        print(count)
    else:
        main(sys.argv[1:])
