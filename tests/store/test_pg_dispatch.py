"""PostgreSQL's dispatch paths: one job in one autocommit statement, many by binary COPY.

Each test checks what the fast path could break: the round trips it saves, the pool
connection it hands back (shared with the app under ``JobQueue(engine)``), the text it copies,
the ids it draws, the listeners it must still wake, the unique keys it must still honour.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest

import reqrunner
from reqrunner.errors import StoreError
from reqrunner.store.database import Database, resolve_engine
from reqrunner.store.dialects import JOBS, fetch_records
from tests.conftest import drop_tables
from tests.store.test_dialects import heard, new_job
from tests.store.test_reconnect import terminate


@pytest.fixture
def pg_queue(postgresql_url: str) -> Iterator[reqrunner.JobQueue]:
    drop_tables(postgresql_url)
    queue = reqrunner.JobQueue(postgresql_url)

    @queue.job(name="t.echo")
    def echo(text: str = "") -> None:
        pass

    queue.stats()  # the schema, before anything is traced
    yield queue
    queue.close()


def traced(queue: reqrunner.JobQueue, action: Any) -> list[str]:
    """The frontend messages (type and text) libpq sends while ``action()`` runs on the
    queue's one pooled connection (of reqrunner's own pool: the queue was given a URL)."""
    pool = queue.dialect.pool
    assert pool is not None
    raw = pool.checkout()  # the pool's only connection, after stats()
    pgconn = raw.driver_connection.pgconn
    raw.close()
    assert (pool.idle, pool.open) == (1, 1)
    with tempfile.TemporaryFile("w+") as trace:
        pgconn.trace(trace.fileno())
        try:
            action()
        finally:
            pgconn.untrace()
        trace.seek(0)
        rows = [line.split("\t") for line in trace.read().splitlines()]
    return [" ".join(row[3:5]) for row in rows if len(row) > 3 and row[1] == "F"]


def test_one_dispatch_is_one_statement_without_begin_or_commit(
    pg_queue: reqrunner.JobQueue,
) -> None:
    sent = traced(pg_queue, lambda: pg_queue.jobs["t.echo"].dispatch(text="x"))
    assert not [m for m in sent if "BEGIN" in m or "COMMIT" in m], sent
    assert sum(m.startswith("Sync") for m in sent) == 1  # one extended-protocol round trip


def test_a_unique_dispatch_is_one_statement_and_a_duplicate_one_more(
    pg_queue: reqrunner.JobQueue,
) -> None:
    job = pg_queue.jobs["t.echo"].using(unique_key="k")
    first: list[int] = []
    sent = traced(pg_queue, lambda: first.append(job.dispatch(text="a")))
    assert not [m for m in sent if "BEGIN" in m or "COMMIT" in m], sent
    assert sum(m.startswith("Sync") for m in sent) == 1
    again: list[int] = []
    sent = traced(pg_queue, lambda: again.append(job.dispatch(text="b")))
    assert sum(m.startswith("Sync") for m in sent) == 2  # the insert, then the holder's id
    assert again == first
    assert pg_queue.stats().waiting == 1


def test_the_pooled_connection_goes_back_in_transactions(postgresql_url: str) -> None:
    # The app's own engine: after a dispatch its connections must still roll back.
    drop_tables(postgresql_url)
    engine = resolve_engine(postgresql_url)
    queue = reqrunner.JobQueue(engine)

    @queue.job(name="t.noop")
    def noop() -> None:
        pass

    try:
        noop.dispatch()
        with engine.connect() as conn:
            conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS executions (n int)")
            conn.commit()
            conn.exec_driver_sql("INSERT INTO executions VALUES (1)")
            conn.rollback()
            assert conn.exec_driver_sql("SELECT count(*) FROM executions").scalar() == 0
        assert queue.stats().waiting == 1
    finally:
        queue.close()


def test_a_failing_dispatch_is_a_store_error_and_the_next_one_works(
    pg_queue: reqrunner.JobQueue,
) -> None:
    with pytest.raises(StoreError, match="too long"):
        pg_queue.store.enqueue(new_job("n" * 300))
    pg_queue.jobs["t.echo"].dispatch(text="after")
    assert pg_queue.stats().waiting == 1


def test_a_backend_lost_under_an_autocommit_statement_leaves_the_pool_whole(
    pg_queue: reqrunner.JobQueue, postgresql_url: str
) -> None:
    def lose_the_backend() -> None:
        with pg_queue.store.db.write(single=True) as cur:
            cur.execute("SELECT pg_backend_pid()")
            terminate(postgresql_url, int(cur.fetchone()[0]))
            cur.execute("SELECT 1")

    with pytest.raises(StoreError):
        lose_the_backend()
    pg_queue.jobs["t.echo"].dispatch(text="after")
    assert pg_queue.stats().waiting == 1


ODD = [
    "",
    'it\'s "quoted"',
    "back\\slash \\N \\. and \\\\",
    "tab\there\nnewline\r\nreturn",
    "ünïcødé ☃ 日本語 🎉",
    "x" * 1_000_000,
    "comma, {brace} [bracket] NULL null",
]


def test_many_jobs_keep_odd_text_exactly(db_url: str) -> None:
    # Every dialect, so that PostgreSQL's COPY is held to what the others store.
    db = Database(resolve_engine(db_url))
    db.ensure_schema()
    now = time.time()
    jobs = [
        # Whole-number ttr and backoff, as a caller may give them to float columns.
        new_job(
            f"name {text[:100]}",
            "q",
            priority=-i,
            payload=json.dumps([[text], {}]),
            available_at=now + 0.25,
            ttr=60,
            backoff=1,
            unique_key=None if i % 2 else text[:200],
        )
        for i, text in enumerate(ODD)
    ]
    try:
        with db.write() as cur:
            ids = db.dialect.insert_many(cur, jobs)
        with db.read() as cur:
            cur.execute(f"SELECT * FROM {JOBS}")
            stored = {row["id"]: row for row in fetch_records(cur)}
    finally:
        db.close()
    assert list(stored) == sorted(stored) and sorted(stored) == ids
    for job_id, job in zip(ids, jobs, strict=True):
        row = stored[job_id]
        assert json.loads(row["payload"]) == json.loads(job.payload)
        assert (row["name"], row["unique_key"], row["unique_slot"]) == (
            job.name,
            job.unique_key,
            None,
        )
        assert (row["priority"], row["ttr"], row["backoff"]) == (job.priority, 60.0, 1.0)
        assert row["available_at"] == pytest.approx(now + 0.25)


def test_a_bulk_dispatch_wakes_a_listener_and_dedups_unique_keys(
    pg_queue: reqrunner.JobQueue,
) -> None:
    listener = pg_queue.store.dialect.listener(["default"])
    echo = pg_queue.jobs["t.echo"]
    try:
        ids = echo.dispatch_many([{"text": str(i)} for i in range(300)])
        assert heard(listener, 5)
        assert len(set(ids)) == 300 and ids == sorted(ids)
        unique = echo.using(unique_key="same")
        mixed = unique.dispatch_many([{"text": "a"}, {"text": "b"}])
        assert mixed[0] == mixed[1]
        assert heard(listener, 5)
        assert unique.dispatch_many([{"text": "c"}, {"text": "d"}]) == mixed
        assert pg_queue.stats().waiting == 301
    finally:
        listener.close()
