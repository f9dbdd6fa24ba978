"""Page views fire periodic jobs, and cost no query for them while no slot is due."""

from __future__ import annotations

import time
from typing import Any

import pytest

import reqrunner
from reqrunner.web.policy import RunPolicy
from tests.middleware.conftest import Driver


class Counting:
    """Counts the statements a queue sends, by wrapping its dialect's transactions' cursors."""

    def __init__(self, queue: reqrunner.JobQueue) -> None:
        self.statements: list[str] = []
        dialect = queue.dialect
        begin = dialect.begin

        def counted_begin(*, write: bool) -> tuple[Any, Any]:
            connection, cursor = begin(write=write)
            return connection, _Cursor(cursor, self.statements)

        dialect.begin = counted_begin  # type: ignore[method-assign]


class _Cursor:
    def __init__(self, cursor: Any, log: list[str]) -> None:
        self._cursor = cursor
        self._log = log

    def execute(self, sql: str, *args: Any) -> Any:
        if sql not in ("BEGIN", "BEGIN IMMEDIATE"):
            self._log.append(sql)
        return self._cursor.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


def _wrap(driver: Driver, queue: reqrunner.JobQueue) -> Driver:
    driver.wrap(queue, mode="sync", run_rate=1.0)
    core = driver.middleware.core  # type: ignore[union-attr]
    # No due cache: every page view asks, so that the queries it makes can be counted.
    core.policy = RunPolicy(queue, cache_seconds=0.0)
    return driver


@pytest.mark.parametrize("protocol", ["asgi", "wsgi"])
def test_page_views_with_nothing_queued_fire_a_due_periodic_job(
    protocol: str, sqlite_url: str
) -> None:
    driver = Driver(protocol)
    queue = reqrunner.JobQueue(sqlite_url)
    ran: list[float] = []

    @queue.periodic(every=1, name="heartbeat")
    def heartbeat() -> None:
        ran.append(time.time())

    _wrap(driver, queue)
    assert driver.request("GET", "/html").status == 200
    assert ran == []  # the first look notes the current slot; nothing queued, nothing ran
    assert queue.stats().total == 0
    time.sleep(1.1)
    assert driver.request("GET", "/html").status == 200
    assert len(ran) == 1
    runs = reqrunner.triggers.last_runs(queue)
    assert runs["sync"].ran == 1


@pytest.mark.parametrize("protocol", ["asgi", "wsgi"])
def test_a_page_view_with_no_slot_due_makes_no_extra_query(
    protocol: str, sqlite_url: str, tmp_path: Any
) -> None:
    def per_view(queue: reqrunner.JobQueue) -> list[str]:
        driver = _wrap(Driver(protocol), queue)
        driver.request("GET", "/html")  # the first look reads (and stores) the schedules' rows
        counting = Counting(queue)
        for _ in range(5):
            driver.request("GET", "/html")
        return counting.statements

    plain = reqrunner.JobQueue(f"sqlite:///{tmp_path}/plain.sqlite3")
    scheduled = reqrunner.JobQueue(sqlite_url)

    @scheduled.periodic("0 0 1 1 *", name="new-year")
    def new_year() -> None: ...

    @scheduled.periodic(every=3600, name="hourly")
    def hourly() -> None: ...

    if time.time() % 3600 > 3590:
        time.sleep(11)  # not across the hour's slot
    baseline = per_view(plain)
    counted = per_view(scheduled)
    # Five page views with nothing due: the queue's own "is a job due" check each time, and not
    # one statement more for the schedules (their next slots are known from memory).
    assert len(baseline) == 10
    assert counted == baseline
    assert not any("reqrunner_periodic" in sql for sql in counted)


@pytest.mark.parametrize("protocol", ["asgi", "wsgi"])
def test_the_tick_url_fires_a_due_slot_and_is_recorded_as_tick(
    protocol: str, sqlite_url: str
) -> None:
    queue = reqrunner.JobQueue(sqlite_url)
    ran: list[float] = []

    @queue.periodic(every=1, name="heartbeat")
    def heartbeat() -> None:
        ran.append(time.time())

    driver = Driver(protocol).wrap(queue, mode="sync", run_rate=0.0)  # page views never run
    tick = driver.middleware.core.tick_url("http://testserver")  # type: ignore[union-attr]
    path = tick.removeprefix("http://testserver")
    assert driver.request("GET", path).status == 202  # the first look notes the current slot
    assert ran == []
    time.sleep(1.1)
    assert driver.request("GET", "/html").status == 200
    assert ran == []  # run_rate=0: page views leave it to the tick
    assert driver.request("GET", path).status == 202
    assert len(ran) == 1
    assert reqrunner.triggers.last_runs(queue)["tick"].ran == 1
