"""A catalogue of named test jobs, registered on any queue, importable by subprocesses."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import sqlalchemy as sa

import reqrunner
from reqrunner.store.database import resolve_engine

#: Calls made in this process, for in-process tests: (job name, args...).
CALLS: list[tuple[object, ...]] = []

_engines: dict[str, sa.Engine] = {}


def executions_engine(url: str) -> sa.Engine:
    """The engine on which ``record`` writes one row per execution (unique per key)."""
    if url not in _engines:
        engine = resolve_engine(url)
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "CREATE TABLE IF NOT EXISTS executions "
                "(job_key VARCHAR(64) PRIMARY KEY, pid INTEGER NOT NULL)"
            )
        _engines[url] = engine
    return _engines[url]


def register(queue: reqrunner.JobQueue, url: str | None = None) -> SimpleNamespace:
    """Register the catalogue's jobs on ``queue``; ``url`` is where ``record`` writes."""

    @queue.job(name="noop")
    def noop() -> None:
        """Does nothing (benchmarks, batch tests)."""

    @queue.job(name="add")
    def add(a: int, b: int) -> None:
        CALLS.append(("add", a, b))

    @queue.job(name="record")
    def record(key: str) -> None:
        """One row per execution; a second execution of the same key raises IntegrityError."""
        assert url is not None
        with executions_engine(url).begin() as conn:
            conn.execute(
                sa.text("INSERT INTO executions (job_key, pid) VALUES (:k, :p)"),
                {"k": key, "p": os.getpid()},
            )

    @queue.job(name="fails_twice", attempts=3, backoff=0)
    def fails_twice(ctx: reqrunner.JobContext) -> None:
        CALLS.append(("fails_twice", ctx.attempt))
        if ctx.attempt <= 2:
            raise RuntimeError(f"failure on attempt {ctx.attempt}")

    @queue.job(name="always_fails", attempts=2, backoff=0)
    def always_fails(message: str = "boom") -> None:
        raise ValueError(message)

    @queue.job(name="sleeps")
    def sleeps(seconds: float) -> None:
        time.sleep(seconds)
        CALLS.append(("sleeps", seconds))

    @queue.job(name="long_lease", ttr=1)
    def long_lease(seconds: float, marker: str) -> None:
        """Runs far past its 1 s ttr; appends a line to ``marker`` per execution."""
        with Path(marker).open("a") as fh:
            fh.write(f"{os.getpid()}\n")
        time.sleep(seconds)

    @queue.job(name="hangs", ttr=1)
    def hangs(marker: str, ctx: reqrunner.JobContext) -> None:
        """Announces its attempt in ``marker`` and then sleeps until killed (first attempt)."""
        with Path(marker).open("a") as fh:
            fh.write(f"{ctx.attempt}\n")
        if ctx.attempt == 1:
            time.sleep(60)

    @queue.job(name="progress")
    def progress(ctx: reqrunner.JobContext) -> None:
        ctx.describe("Working through the list")
        ctx.progress(0.5, "half way")
        CALLS.append(("progress", ctx.job_id))

    @queue.job(name="allocates")
    def allocates(megabytes: int) -> None:
        """Keeps ``megabytes`` of memory alive for the rest of the process."""
        HOARD.append(bytearray(megabytes * 1024 * 1024))

    @queue.job(name="async_add")
    async def async_add(a: int, b: int) -> None:
        await _tick()
        CALLS.append(("async_add", a, b))

    @queue.job(name="interrupts")
    def interrupts() -> None:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)

    return SimpleNamespace(**{j.name: j for j in queue.jobs.values()})


HOARD: list[bytearray] = []


async def _tick() -> None:
    await asyncio.sleep(0)


def main() -> None:
    """``python -m tests.catalogue URL MODE``: a runner process for the process tests.

    MODE ``drain``: run until a run finds nothing to claim. MODE ``once``: one run.
    """
    url, mode = sys.argv[1], sys.argv[2]
    queue = reqrunner.JobQueue(url)
    register(queue, url)
    unbounded = reqrunner.Limits(max_jobs=None, max_time=None, max_memory=None)
    while True:
        report = queue.run(unbounded)
        if mode == "once" or report.ran == 0:
            break
    queue.close()


if __name__ == "__main__":
    main()
