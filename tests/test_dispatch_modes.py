"""The dispatch options of ``using()``: ``after_response`` and the async ``adispatch``; and
``JobQueue.run_dispatched``, which runs given jobs. (``connection=`` is in
tests/store/test_transactional.py, the middleware's side in tests/middleware/.)"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import threading
import time
from collections.abc import Iterator

import pytest

import reqrunner
from reqrunner import deferred


@pytest.fixture
def q(sqlite_url: str) -> Iterator[reqrunner.JobQueue]:
    queue = reqrunner.JobQueue(sqlite_url)
    yield queue
    queue.close()


def recorder(q: reqrunner.JobQueue) -> tuple[reqrunner.Job[[str], None], list[str]]:
    ran: list[str] = []

    @q.job(name="record")
    def record(key: str) -> None:
        ran.append(key)

    return record, ran


def test_after_response_is_checked(q: reqrunner.JobQueue) -> None:
    record, _ = recorder(q)
    with pytest.raises(ValueError, match="delay"):
        record.using(after_response=True, delay=5)
    with pytest.raises(TypeError, match="True or False"):
        record.using(after_response="yes")  # type: ignore[arg-type]


def test_a_request_collects_its_after_response_jobs(q: reqrunner.JobQueue) -> None:
    record, ran = recorder(q)
    collected = deferred.Deferred()
    token = deferred.CURRENT.set(collected)
    try:
        first = record.using(after_response=True).dispatch("a")
        record.dispatch("ordinary")
        more = q.using("record", after_response=True).dispatch_many([["b"], ["c"]])
    finally:
        deferred.CURRENT.reset(token)
    assert deferred.CURRENT.get() is None
    assert len(collected) == 3
    assert q.count_jobs() == 4  # all stored at once
    assert collected.run() == 3
    assert ran == ["a", "b", "c"]
    assert q.get(first) is None and all(q.get(i) is None for i in more)
    assert q.count_jobs() == 1  # the ordinary job waits for a run


def test_run_dispatched_runs_what_is_still_due_in_the_order_given(q: reqrunner.JobQueue) -> None:
    record, ran = recorder(q)
    ids = record.dispatch_many([["1"], ["2"], ["3"], ["4"]])
    later = record.using(delay=60).dispatch("later")
    q.run(max_jobs=1)  # another runner took job 1 (and finished it)
    report = q.run_dispatched([ids[3], later, ids[0], ids[2], ids[1]])
    assert ran == ["1", "4", "3", "2"]
    assert report.ran == 3
    assert q.get(later) is not None
    with pytest.raises(TypeError):
        q.run_dispatched(ids[0])  # type: ignore[arg-type]


def test_adispatch_and_adispatch_many(q: reqrunner.JobQueue) -> None:
    record, _ = recorder(q)

    async def view() -> tuple[int, list[int], int]:
        collected = deferred.Deferred()
        token = deferred.CURRENT.set(collected)
        try:
            one = await record.adispatch("a")
            many = await record.adispatch_many([["b"], {"key": "c"}])
            deferred_id = await record.using(after_response=True).adispatch("d")
        finally:
            deferred.CURRENT.reset(token)
        # The worker thread saw the request's collection.
        assert len(collected) == 1
        return one, many, deferred_id

    one, many, deferred_id = asyncio.run(view())
    infos = [q.get(i) for i in (one, *many, deferred_id)]
    assert [(i.args, i.kwargs) for i in infos if i] == [
        (("a",), {}), (("b",), {}), ((), {"key": "c"}), (("d",), {})
    ]  # fmt: skip
    with pytest.raises(TypeError):
        asyncio.run(record.adispatch(1, 2, 3))  # type: ignore[call-arg]


def test_adispatch_leaves_the_loop_free_while_the_database_makes_it_wait(
    q: reqrunner.JobQueue, sqlite_url: str
) -> None:
    record, _ = recorder(q)
    q.stats()
    holder = sqlite3.connect(
        sqlite_url.removeprefix("sqlite:///"), isolation_level=None, check_same_thread=False
    )
    holder.execute("BEGIN IMMEDIATE")
    threading.Timer(1.0, lambda: holder.execute("COMMIT")).start()

    async def measure() -> tuple[float, float]:
        ticks: list[float] = []

        async def tick() -> None:
            while True:
                ticks.append(time.perf_counter())
                await asyncio.sleep(0.01)

        ticker = asyncio.create_task(tick())
        start = time.perf_counter()
        await record.adispatch("waited")
        took = time.perf_counter() - start
        ticker.cancel()
        return took, max(b - a for a, b in itertools.pairwise(ticks))

    took, longest_gap = asyncio.run(measure())
    holder.close()
    assert took > 0.8  # it did wait for the lock
    assert longest_gap < 0.1  # and the loop went on meanwhile
