"""reqrunner's own pool of psycopg connections, on a real PostgreSQL server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest

import reqrunner
from reqrunner.errors import StoreError
from reqrunner.store.database import Cursor
from reqrunner.store.pool import Pool, PoolTimeout
from reqrunner.store.target import resolve
from tests.conftest import drop_tables
from tests.store.test_reconnect import terminate

psycopg = pytest.importorskip("psycopg")


@pytest.fixture
def pool(postgresql_url: str) -> Iterator[Pool[Any]]:
    args = resolve(postgresql_url).connect_args
    assert args is not None
    made = Pool(partial(psycopg.connect, **args), size=2, overflow=1, timeout=0.2)
    yield made
    made.dispose()


def backend(pooled: Any) -> int:
    cur = pooled.cursor()
    cur.execute("SELECT pg_backend_pid()")
    return int(cur.fetchone()[0])


def test_a_returned_connection_is_reused_and_its_transaction_ended(pool: Pool[Any]) -> None:
    first = pool.checkout()
    pid = backend(first)  # leaves a transaction open, as a holder that forgot to end it
    first.info["seen"] = True
    first.close()
    first.close()  # a second close gives back nothing
    again = pool.checkout()
    assert backend(again) == pid and again.info == {"seen": True}
    assert again.driver_connection.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    again.close()
    assert (pool.idle, pool.open) == (1, 1)
    assert again.driver_connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_the_pool_keeps_size_idle_and_opens_at_most_size_plus_overflow(pool: Pool[Any]) -> None:
    held = [pool.checkout() for _ in range(3)]
    assert len({backend(each) for each in held}) == 3 and pool.open == 3
    with pytest.raises(PoolTimeout, match="all 3 connections"):
        pool.checkout()
    # A checkout waiting for a connection gets the one given back.
    got: list[Any] = []
    waiter = threading.Thread(target=lambda: got.append(pool.checkout()))
    waiter.start()
    held[0].close()
    waiter.join()
    assert got == [held[0]]
    for each in (*held[1:], *got):
        each.close()
    # Two are kept; the third is closed.
    assert (pool.idle, pool.open) == (2, 2)
    assert sum(each.driver_connection is None for each in held) == 1


def test_an_invalidated_connection_is_closed_and_replaced(pool: Pool[Any]) -> None:
    pooled = pool.checkout()
    pid = backend(pooled)
    driver = pooled.driver_connection
    pooled.invalidate()
    pooled.close()
    assert driver.closed and (pool.idle, pool.open) == (0, 0)
    fresh = pool.checkout()
    assert backend(fresh) != pid
    fresh.close()


def test_dispose_closes_the_idle_and_later_the_checked_out(pool: Pool[Any]) -> None:
    idle, out = pool.checkout(), pool.checkout()
    idle.close()
    kept, still_out = idle.driver_connection, out.driver_connection
    pool.dispose()
    assert kept.closed and not still_out.closed and pool.open == 1
    out.close()
    assert still_out.closed and (pool.idle, pool.open) == (0, 0)


def test_a_connection_the_server_ended_is_neither_kept_nor_handed_out(
    pool: Pool[Any], postgresql_url: str
) -> None:
    pooled = pool.checkout()
    pid = backend(pooled)
    terminate(postgresql_url, pid)
    with pytest.raises(psycopg.OperationalError):
        backend(pooled)
    pooled.close()  # its rollback fails: the pool lets it go
    assert (pool.idle, pool.open) == (0, 0)


@pytest.fixture
def pg_queue(postgresql_url: str) -> Iterator[reqrunner.JobQueue]:
    drop_tables(postgresql_url)
    creator = reqrunner.JobQueue(postgresql_url)
    creator.stats()  # the tables, made with SQLAlchemy's DDL, by a queue of their own
    creator.close()
    queue = reqrunner.JobQueue(postgresql_url)
    yield queue
    queue.close()


def test_a_dialect_s_transactions_share_one_connection_and_survive_its_loss(
    pg_queue: reqrunner.JobQueue, postgresql_url: str
) -> None:
    db, pool = pg_queue.store.db, pg_queue.dialect.pool
    assert pool is not None and not pg_queue.target.has_engine

    def pid(cur: Cursor) -> int:
        cur.execute("SELECT pg_backend_pid()")
        return int(cur.fetchone()[0])

    first = db.write_retrying(pid)
    assert db.write_retrying(pid) == first and (pool.idle, pool.open) == (1, 1)
    # Ended while idle in the pool: the next transaction takes a new connection.
    terminate(postgresql_url, first)
    second = db.write_retrying(pid)
    assert second != first and (pool.idle, pool.open) == (1, 1)
    # Ended inside a transaction: write_retrying runs it again, on a new connection.
    ran: list[int] = []

    def lose_once(cur: Cursor) -> int:
        ran.append(pid(cur))
        if len(ran) == 1:
            terminate(postgresql_url, ran[0])
        return pid(cur)

    assert db.write_retrying(lose_once) == ran[-1] and len(ran) == 2
    assert (pool.idle, pool.open) == (1, 1)

    # Without the retry, the loss is a StoreError the next transaction does not see.
    def lose(cur: Cursor) -> int:
        terminate(postgresql_url, pid(cur))
        return pid(cur)

    with pytest.raises(StoreError), db.write() as cur:
        lose(cur)
    assert db.write_retrying(pid) not in ran and (pool.idle, pool.open) == (1, 1)


def test_threads_share_the_pool_within_its_bound(pg_queue: reqrunner.JobQueue) -> None:
    pool = pg_queue.dialect.pool
    assert pool is not None
    noop = pg_queue.job(name="t.noop")(lambda: None)
    errors: list[BaseException] = []

    def dispatch() -> None:
        try:
            for _ in range(50):
                noop.dispatch()
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=dispatch) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and pg_queue.stats().waiting == 1000
    assert pool.open <= 15 and pool.idle <= 5
