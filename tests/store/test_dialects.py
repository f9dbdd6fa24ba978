"""The dialect contract, checked on each real database: what a new dialect class must pass.

The rest of the suite runs the store through the job API on every database; these tests talk to
the dialect itself, where a mistake would hide behind the API: claims racing each other, ids
matched to the wrong rows, a deadlock victim not recognised, the schema created twice, a
connection not set up, a dispatch not heard.
"""

from __future__ import annotations

import secrets
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import reqrunner
from reqrunner.errors import StoreError
from reqrunner.store.database import Database, resolve_engine
from reqrunner.store.dialects import (
    DIALECTS,
    JOBS,
    Listener,
    MySQLDialect,
    PostgresDialect,
    SqliteDialect,
    fetch_records,
    for_dialect,
)
from reqrunner.store.dialects.mysql import SCHEMA_LOCK
from reqrunner.store.records import Claimed, NewJob
from tests.conftest import drop_tables

TABLES = {"reqrunner_jobs", "reqrunner_meta", "reqrunner_leases", "reqrunner_counters"}


def new_job(name: str = "t", queue: str = "default", **fields: Any) -> NewJob:
    now = time.time()
    job = NewJob(name, queue, "waiting", 0, "[[], {}]", now - 1, 0, 3, 300.0, 5.0, None, None, now)
    return job._replace(**fields)


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(resolve_engine(db_url))
    database.ensure_schema()
    yield database
    database.close()


@pytest.fixture(params=["postgresql", "mysql"])
def server_db(request: pytest.FixtureRequest) -> Iterator[Database]:
    url: str = request.getfixturevalue(f"{request.param}_url")
    drop_tables(url)
    database = Database(resolve_engine(url))
    database.ensure_schema()
    yield database
    database.close()


def test_an_unknown_database_is_refused_naming_the_supported_ones() -> None:
    with pytest.raises(ValueError, match="supports SQLite, PostgreSQL and MySQL/MariaDB"):
        for_dialect("oracle")
    with pytest.raises(ValueError, match=r"not 'oracle'.*postgresql\+psycopg://"):
        reqrunner.JobQueue("oracle://scott@127.0.0.1/orcl")
    assert for_dialect("mariadb") is for_dialect("mysql") is MySQLDialect
    # what many hosts hand out, and SQLAlchemy itself no longer reads
    assert resolve_engine("postgres://u@127.0.0.1/db").url.drivername == "postgresql+psycopg"
    assert {cls.name for cls in DIALECTS} == {"sqlite", "postgresql", "mysql"}


def test_only_a_listening_dialect_gives_a_listener(sqlite_url: str) -> None:
    assert PostgresDialect.listens and not SqliteDialect.listens and not MySQLDialect.listens
    database = Database(resolve_engine(sqlite_url))
    with pytest.raises(NotImplementedError, match="poll"):
        database.dialect.listener(None)
    database.close()


def test_concurrent_claims_never_share_a_job(db: Database) -> None:
    dialect = db.dialect
    with db.write() as cur:
        ids = dialect.insert_many(cur, [new_job(f"job-{i}") for i in range(120)])
    everyone_ready = threading.Barrier(4)

    def claim_until_empty() -> tuple[str, list[Claimed]]:
        token, mine = secrets.token_hex(16), []
        everyone_ready.wait(timeout=30)
        while batch := db.write_retrying(lambda cur: dialect.claim(cur, token, time.time(), 5, ())):
            mine.extend(batch)
        return token, mine

    with ThreadPoolExecutor(4) as pool:
        results = dict(f.result() for f in [pool.submit(claim_until_empty) for _ in range(4)])
    owner = {job.id: token for token, jobs in results.items() for job in jobs}
    assert sorted(job.id for jobs in results.values() for job in jobs) == sorted(ids)
    assert all(job.token == owner[job.id] and job.attempts == 1 for job in _all(results))
    with db.read() as cur:
        cur.execute(f"SELECT id, state, token, attempts FROM {JOBS}")
        rows = fetch_records(cur)
    assert {(r["id"], r["state"], r["token"], r["attempts"]) for r in rows} == {
        (job_id, "reserved", token, 1) for job_id, token in owner.items()
    }


def _all(results: dict[str, list[Claimed]]) -> list[Claimed]:
    return [job for jobs in results.values() for job in jobs]


def test_a_claim_returns_each_job_s_own_fields_in_claim_order(db: Database) -> None:
    dialect = db.dialect
    now = time.time()
    with db.write() as cur:
        low = dialect.insert_one(cur, new_job("low", "q", priority=1, ttr=12.5, backoff=2.0))
        high = dialect.insert_one(cur, new_job("high", "q", priority=9, available_at=now - 5))
        dialect.insert_one(cur, new_job("elsewhere", "other", priority=99))
    with db.write() as cur:
        got = dialect.claim(cur, "t" * 32, now, 10, ("q",))
    assert [job.id for job in got] == [high, low]
    assert (got[1].name, got[1].queue, got[1].priority) == ("low", "q", 1)
    assert (got[1].ttr, got[1].backoff, got[1].attempts, got[1].max_attempts) == (12.5, 2.0, 1, 3)
    assert (got[1].payload, got[1].history, got[1].token) == ("[[], {}]", None, "t" * 32)
    assert got[0].available_at == pytest.approx(now - 5)


def test_insert_many_gives_each_row_its_own_id_across_chunks(db: Database) -> None:
    names = [f"job-{i}" for i in range(1201)]  # three chunks where the dialect chunks
    with db.write() as cur:
        ids = db.dialect.insert_many(cur, [new_job(name) for name in names])
        assert db.dialect.insert_many(cur, []) == []
    with db.read() as cur:
        cur.execute(f"SELECT id, name FROM {JOBS}")
        stored = {r["id"]: r["name"] for r in fetch_records(cur)}
    assert stored == dict(zip(ids, names, strict=True))


def test_insert_unique_yields_to_an_unclaimed_holder(db: Database) -> None:
    dialect = db.dialect
    with db.write() as cur:
        first = dialect.insert_unique(cur, new_job(unique_slot="k", unique_key="k"))
        assert dialect.insert_unique(cur, new_job(unique_slot="k", unique_key="k")) is None
    with db.write() as cur:
        assert [job.id for job in dialect.claim(cur, "t" * 32, time.time(), 1, ())] == [first]
    with db.write() as cur:  # a claimed job frees its slot
        again = dialect.insert_unique(cur, new_job(unique_slot="k", unique_key="k"))
    assert again is not None and again != first


def test_a_deadlock_victim_is_told_apart_from_other_errors(server_db: Database) -> None:
    db = server_db
    with db.write() as cur:
        for name in ("a", "b"):
            cur.execute(db.dialect.upsert_meta(), (name, "0"))
    update = db.dialect.q("UPDATE reqrunner_meta SET value = ? WHERE name = ?")
    both_hold_one = threading.Barrier(2)

    def cross(first: str, second: str) -> None:
        with db.write() as cur:
            cur.execute(update, ("1", first))
            both_hold_one.wait(timeout=30)
            cur.execute(update, ("1", second))

    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(cross, "a", "b"), pool.submit(cross, "b", "a")]
        victims = [e for e in (f.exception(timeout=120) for f in futures) if e is not None]
    assert len(victims) == 1 and isinstance(victims[0], StoreError), victims
    assert db.dialect.is_deadlock(victims[0].__cause__)
    with pytest.raises(StoreError) as wrong, db.write() as cur:
        cur.execute("SELEC 1")
    assert not db.dialect.is_deadlock(wrong.value.__cause__)


def test_sqlite_connections_use_wal_and_wait_for_the_write_lock(sqlite_url: str) -> None:
    holder = Database(resolve_engine(sqlite_url))
    waiter = Database(resolve_engine(sqlite_url), busy_timeout=0.25)
    with waiter.read() as cur:
        cur.execute("PRAGMA journal_mode")
        assert cur.fetchone()[0] == "wal"
        cur.execute("PRAGMA synchronous")
        assert cur.fetchone()[0] == 1  # NORMAL
        cur.execute("PRAGMA busy_timeout")
        assert cur.fetchone()[0] == 250
    with holder.write():
        started = time.monotonic()
        with pytest.raises(StoreError, match="locked") as busy, waiter.write():
            pass
        assert 0.2 < time.monotonic() - started < 5
    # the busy timeout already waited: running the transaction again would only wait more
    assert not waiter.dialect.is_deadlock(busy.value.__cause__)
    holder.close()
    waiter.close()


def test_mysql_sessions_read_committed(mysql_url: str) -> None:
    drop_tables(mysql_url)
    database = Database(resolve_engine(mysql_url))
    for _ in range(2):  # a fresh connection, then the same one back from the pool
        with database.read() as cur:
            cur.execute("SELECT @@SESSION.tx_isolation")
            assert cur.fetchone()[0] == "READ-COMMITTED"
    database.close()


def test_processes_creating_the_schema_at_once_create_it_once(db_url: str) -> None:
    databases = [Database(resolve_engine(db_url)) for _ in range(4)]
    everyone_ready = threading.Barrier(4)

    def create(database: Database) -> None:
        everyone_ready.wait(timeout=30)
        database.ensure_schema()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(create, databases))
    with databases[0].read() as cur:
        assert databases[0].dialect.existing_tables(cur) >= TABLES
        cur.execute("SELECT COUNT(*) FROM reqrunner_meta WHERE name = 'schema_version'")
        assert cur.fetchone()[0] == 1
    for database in databases:
        database.close()


def heard(listener: Listener, within: float) -> bool:
    """Whether ``listener`` is woken within ``within`` seconds."""
    deadline = time.monotonic() + within
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([listener], [], [], left)
        if ready and listener.drain():
            return True
    return False


def test_a_listener_hears_dispatches_to_its_queues_once_they_commit(postgresql_url: str) -> None:
    drop_tables(postgresql_url)
    db = Database(resolve_engine(postgresql_url))
    db.ensure_schema()
    dialect = db.dialect
    listener = dialect.listener(["mail"])
    try:
        with db.write() as cur:
            dialect.insert_one(cur, new_job(queue="mail"))
            assert not heard(listener, 0.3)
        assert heard(listener, 5)
        with db.write() as cur:
            dialect.insert_many(cur, [new_job(queue="other")])
            dialect.notify(cur, {"other"})
        assert not heard(listener, 0.5)
        with db.write() as cur:  # an inserted unique job notifies by itself
            dialect.insert_unique(cur, new_job(queue="mail", unique_slot="k"))
        assert heard(listener, 5)
        with db.write() as cur:  # one that yields to the holder inserts nothing to hear of
            assert dialect.insert_unique(cur, new_job(queue="mail", unique_slot="k")) is None
        assert not heard(listener, 0.5)
    finally:
        listener.close()
        db.close()


def test_mysql_refuses_to_create_tables_without_the_schema_lock(mysql_url: str) -> None:
    drop_tables(mysql_url)
    holder = resolve_engine(mysql_url)
    db = Database(resolve_engine(mysql_url))
    db.dialect.schema_lock_wait = 0.5  # type: ignore[attr-defined]
    with holder.connect() as conn:
        assert conn.exec_driver_sql(f"SELECT GET_LOCK({SCHEMA_LOCK}, 0)").scalar() == 1
        with pytest.raises(StoreError, match="schema lock"):
            db.ensure_schema()
        assert not db._schema_ready
        conn.exec_driver_sql(f"SELECT RELEASE_LOCK({SCHEMA_LOCK})")
    db.ensure_schema()  # free again: taken, and released after
    with holder.connect() as conn:
        assert conn.exec_driver_sql(f"SELECT GET_LOCK({SCHEMA_LOCK}, 0)").scalar() == 1
        # Another database on the same server has a lock of its own: free while this is held.
        conn.exec_driver_sql("USE test")
        assert conn.exec_driver_sql(f"SELECT IS_FREE_LOCK({SCHEMA_LOCK})").scalar() == 1
        assert conn.exec_driver_sql("SELECT RELEASE_ALL_LOCKS()").scalar() == 1
    db.close()
    holder.dispose()


@pytest.mark.parametrize(
    ("module", "url", "extra"),
    [("psycopg", "postgres://u@127.0.0.1/db", "postgres"), ("pymysql", "mysql://u@h/db", "mysql")],
)
def test_a_missing_driver_says_which_extra_to_install(module: str, url: str, extra: str) -> None:
    # A fresh interpreter in which the driver cannot be imported, as where it is not installed.
    code = (
        f"import sys; sys.modules[{module!r}] = None\n"
        "import reqrunner\n"
        f"reqrunner.JobQueue({url!r})\n"
    )
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ModuleNotFoundError: ")
    assert f"pip install 'reqrunner[{extra}]'" in last
