"""PostgreSQL without a pre-ping: a connection the server dropped costs no failure, whether it
is reqrunner's own (a queue given a URL) or the app's engine's (a queue given the engine)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

import reqrunner
from reqrunner.store.database import Cursor, resolve_engine
from tests.conftest import drop_tables


@pytest.fixture(params=["url", "engine"])
def pg_queue(request: pytest.FixtureRequest, postgresql_url: str) -> Iterator[reqrunner.JobQueue]:
    drop_tables(postgresql_url)
    given = postgresql_url if request.param == "url" else resolve_engine(postgresql_url)
    queue = reqrunner.JobQueue(given)
    assert (queue.dialect.pool is None) == (request.param == "engine")

    @queue.job(name="t.noop")
    def noop() -> None:
        pass

    yield queue
    queue.close()


def terminate(url: str, pid: int) -> None:
    """End backend ``pid`` from a connection of our own, and wait until it is gone."""
    admin = resolve_engine(url)
    with admin.connect() as conn:
        conn.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
        for _ in range(200):
            gone = conn.exec_driver_sql(
                f"SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}"
            ).scalar()
            if not gone:
                break
            time.sleep(0.01)
    admin.dispose()


def backend_pid(queue: reqrunner.JobQueue) -> int:
    with queue.store.db.read() as cur:
        cur.execute("SELECT pg_backend_pid()")
        return int(cur.fetchone()[0])


def test_a_terminated_backend_costs_no_dispatch_and_no_pings(
    pg_queue: reqrunner.JobQueue, postgresql_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pings: list[Any] = []
    if pg_queue.target.has_engine:  # the engine's pool could ping; reqrunner's own cannot
        dialect = pg_queue.engine.dialect
        real_ping = dialect.do_ping
        monkeypatch.setattr(dialect, "do_ping", lambda conn: pings.append(conn) or real_ping(conn))
    noop = pg_queue.jobs["t.noop"]
    noop.dispatch()
    pid = backend_pid(pg_queue)
    terminate(postgresql_url, pid)

    noop.dispatch()  # on the pooled connection the server has closed
    assert pg_queue.run().ran == 2
    assert backend_pid(pg_queue) != pid
    assert pings == []
    if pg_queue.dialect.pool is not None:
        assert pg_queue.dialect.pool.open == 1  # the dead connection was let go


@pytest.mark.parametrize("tries", [5, 1])
def test_a_connection_lost_inside_a_cycle_runs_it_again(
    pg_queue: reqrunner.JobQueue, postgresql_url: str, tries: int
) -> None:
    # Even with one try for deadlocks, a lost connection gets another on a new one.
    db = pg_queue.store.db
    attempts: list[int] = []

    def work(cur: Cursor) -> int:
        cur.execute("SELECT pg_backend_pid()")
        pid = int(cur.fetchone()[0])
        attempts.append(pid)
        if len(attempts) == 1:
            terminate(postgresql_url, pid)
        cur.execute("SELECT 42")
        return int(cur.fetchone()[0])

    assert db.write_retrying(work, tries) == 42
    assert len(attempts) == 2 and attempts[0] != attempts[1]


def test_write_retrying_wants_at_least_one_try(pg_queue: reqrunner.JobQueue) -> None:
    with pytest.raises(ValueError, match="attempts >= 1"):
        pg_queue.store.db.write_retrying(lambda cur: None, 0)
