"""``using(connection=...)``: a job inserted in the app's own transaction, on all three
databases, through a SQLAlchemy ``Connection`` and a ``Session``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session

import reqrunner
from reqrunner import deferred
from reqrunner.store.database import resolve_engine
from tests.conftest import kind_of


@pytest.fixture
def app_engine(db_url: str) -> Iterator[Engine]:
    """The app's own engine on the job database, with an ``orders`` table of its own."""
    engine = resolve_engine(db_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS orders")
        conn.exec_driver_sql("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
    yield engine
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS orders")
    engine.dispose()


@pytest.fixture
def told(queue: reqrunner.JobQueue) -> list[int]:
    """One entry per time this process's dispatch listeners (the due cache) were told."""
    calls: list[int] = []
    queue.on_dispatch(lambda: calls.append(1))
    return calls


def mailer(queue: reqrunner.JobQueue) -> reqrunner.Job[[int], None]:
    @queue.job(name="mail")
    def mail(order: int) -> None:
        pass

    return mail


def orders(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return [row[0] for row in conn.exec_driver_sql("SELECT id FROM orders")]


def test_a_rollback_leaves_no_job(
    queue: reqrunner.JobQueue, app_engine: Engine, told: list[int]
) -> None:
    mail = mailer(queue)
    with app_engine.connect() as conn:
        conn.exec_driver_sql("INSERT INTO orders (id) VALUES (1)")
        job_id = mail.using(connection=conn).dispatch(1)
        conn.rollback()
    assert orders(app_engine) == []
    assert queue.get(job_id) is None
    assert queue.count_jobs() == 0
    assert told == []


def test_a_commit_keeps_it_and_the_process_learns_of_it_then(
    queue: reqrunner.JobQueue, app_engine: Engine, told: list[int]
) -> None:
    mail = mailer(queue)
    queue.stats()  # the tables exist: looking from outside the transaction must not wait
    with app_engine.connect() as conn:
        conn.exec_driver_sql("INSERT INTO orders (id) VALUES (7)")
        job_id = mail.using(connection=conn).dispatch(7)
        # Not yet visible to anyone else, and nothing is due as far as this process knows.
        assert queue.get(job_id) is None
        assert told == []
        conn.commit()
        assert told == [1]
    assert orders(app_engine) == [7]
    info = queue.get(job_id)
    assert info is not None and info.state is reqrunner.JobState.WAITING
    assert info.args == (7,)
    assert queue.run().succeeded == 1


def test_a_session_works_and_dispatch_many_too(
    queue: reqrunner.JobQueue, app_engine: Engine, told: list[int]
) -> None:
    mail = mailer(queue)
    with Session(app_engine) as session:
        session.execute(sa.text("INSERT INTO orders (id) VALUES (1)"))
        first = mail.using(connection=session).dispatch(1)
        more = mail.using(connection=session, priority=5).dispatch_many([[2], {"order": 3}])
        session.rollback()
        assert queue.count_jobs() == 0
        session.execute(sa.text("INSERT INTO orders (id) VALUES (4)"))
        kept = mail.using(connection=session).dispatch_many([[4], [5]])
        assert told == []
        session.commit()
    assert told == [1]
    assert len({first, *more}) == 3
    assert [queue.get(i).args for i in kept] == [(4,), (5,)]  # type: ignore[union-attr]
    assert queue.count_jobs() == 2


def test_unique_jobs_in_the_transaction(queue: reqrunner.JobQueue, app_engine: Engine) -> None:
    @queue.job(name="reindex", unique=True)
    def reindex(page: str) -> None:
        pass

    with app_engine.begin() as conn:
        first = reindex.using(connection=conn).dispatch("home")
        again = reindex.using(connection=conn).dispatch("home")
    assert first == again
    assert queue.count_jobs() == 1


def test_the_first_dispatch_of_a_fresh_database_inside_a_writing_transaction(
    db_url: str, app_engine: Engine
) -> None:
    # The app has written (on SQLite it holds the file's write lock) before the queue was ever
    # used: the job tables do not exist yet. Creating them must not wait for the app.
    queue = reqrunner.JobQueue(db_url, busy_timeout=1.0)
    mail = mailer(queue)
    try:
        with app_engine.connect() as conn:
            conn.exec_driver_sql("INSERT INTO orders (id) VALUES (1)")
            job_id = mail.using(connection=conn).dispatch(1)
            conn.commit()
        assert queue.get(job_id) is not None
    finally:
        queue.close()


def test_a_connection_to_another_database_is_refused(
    queue: reqrunner.JobQueue, db_url: str, tmp_path: Path
) -> None:
    mail = mailer(queue)
    queue.stats()
    url = make_url(db_url)
    other = {
        "sqlite": f"sqlite:///{tmp_path}/other.sqlite3",
        "postgresql": url.set(database="postgres").render_as_string(hide_password=False),
        "mysql": url.set(database="mysql").render_as_string(hide_password=False),
    }[kind_of(db_url)]
    for elsewhere in (other, f"sqlite:///{tmp_path}/another.sqlite3"):
        engine = resolve_engine(elsewhere)
        try:
            with engine.connect() as conn, pytest.raises(ValueError, match="job database"):
                mail.using(connection=conn).dispatch(1)
        finally:
            engine.dispose()
    assert queue.count_jobs() == 0


def test_what_is_not_a_connection(queue: reqrunner.JobQueue) -> None:
    mail = mailer(queue)
    with pytest.raises(TypeError, match="Connection or Session"):
        mail.using(connection="sqlite:///x").dispatch(1)


def test_with_after_response_it_runs_after_the_response_once_committed(
    queue: reqrunner.JobQueue, app_engine: Engine
) -> None:
    ran: list[int] = []

    @queue.job(name="mail")
    def mail(order: int) -> None:
        ran.append(order)

    collected = deferred.Deferred()
    token = deferred.CURRENT.set(collected)
    try:
        with app_engine.connect() as conn:
            mail.using(connection=conn, after_response=True).dispatch(1)
            conn.rollback()
            mail.using(connection=conn, after_response=True).dispatch(2)
            conn.commit()
    finally:
        deferred.CURRENT.reset(token)
    assert collected.run() == 1
    assert ran == [2]
    assert queue.count_jobs() == 0
