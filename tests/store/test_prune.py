"""Pruning old jobs: in short batches that let dispatches through, and on by default."""

from __future__ import annotations

import os
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

import reqrunner
from reqrunner.store import retention
from reqrunner.store.dialects.sqlite import JOURNAL_SIZE_LIMIT
from tests.store.history import add_rows

DAY = 86400.0


def new_queue(url: str, **options: object) -> reqrunner.JobQueue:
    queue = reqrunner.JobQueue(url, **options)  # type: ignore[arg-type]

    @queue.job(name="t.noop")
    def noop() -> None:
        pass

    return queue


def test_a_dispatcher_is_never_stalled_by_a_big_prune(db_url: str) -> None:
    queue = new_queue(db_url, prune_failed_after=None, prune_done_after=None)
    rows = 100_000 if db_url.startswith("sqlite") else 30_000
    add_rows(queue, "failed", rows, finished_ago=200 * DAY)
    add_rows(queue, "failed", 10, finished_ago=DAY)
    noop = queue.jobs["t.noop"]
    waits: list[tuple[float, float]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def dispatcher() -> None:
        while not stop.is_set():
            start = time.monotonic()
            try:
                noop.dispatch()
            except BaseException as exc:  # every failure counts, whatever it is
                errors.append(exc)
            waits.append((start, time.monotonic()))
            time.sleep(0.01)

    thread = threading.Thread(target=dispatcher)
    thread.start()
    time.sleep(0.05)
    began = time.monotonic()
    removed = queue.prune(failed_older_than=timedelta(days=180), done_older_than=None)
    ended = time.monotonic()
    stop.set()
    thread.join()

    assert errors == []
    assert removed == rows
    assert queue.stats().failed == 10
    # Dispatches went through while the prune ran, not after it: it never held the database
    # for its whole length.
    inside = [(s, e) for s, e in waits if s >= began and e <= ended]
    assert len(inside) >= 3, (len(waits), ended - began)
    worst = max(e - s for s, e in waits)
    load = os.getloadavg()[0]
    print(
        f"\n{queue.dialect.name}: pruned {rows:,} rows in {ended - began:.2f} s; "
        f"{len(waits)} dispatches, longest {worst * 1000:.0f} ms (load {load:.1f})"
    )
    queue.close()


def test_the_sqlite_wal_is_cut_back_after_a_big_prune(sqlite_url: str) -> None:
    queue = new_queue(sqlite_url, prune_failed_after=None, prune_done_after=None)
    add_rows(queue, "failed", 150_000, finished_ago=200 * DAY)
    queue.prune(failed_older_than=timedelta(days=180), done_older_than=None)
    queue.jobs["t.noop"].dispatch()  # the next writer restarts the checkpointed WAL
    wal = Path(sqlite_url.removeprefix("sqlite:///") + "-wal")
    assert wal.stat().st_size <= JOURNAL_SIZE_LIMIT
    queue.close()


def test_runs_prune_old_jobs_by_default_a_bounded_step_at_a_time(db_url: str) -> None:
    queue = new_queue(db_url, keep_done=True)
    add_rows(queue, "failed", retention.STEP_ROWS + 5, finished_ago=181 * DAY)
    add_rows(queue, "failed", 3, finished_ago=179 * DAY)
    add_rows(queue, "done", 4, finished_ago=8 * DAY)
    add_rows(queue, "done", 2, finished_ago=6 * DAY)

    queue.run()
    stats = queue.stats()
    # One step: at most STEP_ROWS failed jobs, all the old done ones; recent ones are kept.
    assert (stats.failed, stats.done) == (5 + 3, 2)
    queue.run()  # within the minute: no second step
    assert queue.stats().failed == 5 + 3
    queue.close()


def test_automatic_pruning_can_be_turned_off_or_set(sqlite_url: str) -> None:
    kept = new_queue(sqlite_url, prune_failed_after=None, prune_done_after=None)
    add_rows(kept, "failed", 3, finished_ago=400 * DAY)
    kept.run()
    assert kept.stats().failed == 3
    kept.close()

    short = new_queue(sqlite_url, prune_failed_after=timedelta(days=1))
    short.run()
    assert short.stats().failed == 0
    short.close()


@pytest.mark.parametrize("bad", [-1, "7d", True])
def test_a_bad_age_says_what_to_give(sqlite_url: str, bad: object) -> None:
    with pytest.raises(ValueError, match="prune_failed_after must be a timedelta or seconds"):
        reqrunner.JobQueue(sqlite_url, prune_failed_after=bad)  # type: ignore[arg-type]
