"""SQLite URLs read without SQLAlchemy mean what SQLAlchemy reads in them, and a SQLite queue's
engine, made only when asked for, is a working engine on the same file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

import reqrunner
from reqrunner.store.dialects.sqlite import SqliteDialect
from reqrunner.store.target import Target, _postgres_server, resolve

PATHS = ["jobs.sqlite3", "/tmp/x/jobs.sqlite3", "a b/c+d.db", "caf%C3%A9.db", "x%3Fy.db", "ü.db"]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("scheme", ["sqlite", "sqlite+pysqlite"])
def test_a_plain_sqlite_url_reads_as_sqlalchemy_reads_it(
    path: str, scheme: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    text = f"{scheme}:///{path}"
    # What JobQueue(text) made of it before: SQLAlchemy's URL, the file made absolute.
    expected = SqliteDialect.resolve_url(make_url(text))
    target = resolve(text)
    assert not target.has_engine
    assert (target.backend, target.database) == ("sqlite", expected.database)
    assert target.safe_url == expected.render_as_string(hide_password=True)
    assert target.engine.url == expected
    assert target.same_as(Target.of_engine(sa.create_engine(expected)))


@pytest.mark.parametrize("text", ["sqlite://", "sqlite:///", "sqlite:///:memory:"])
def test_an_in_memory_database_is_refused_as_before(text: str) -> None:
    with pytest.raises(ValueError, match=r"needs a SQLite \*file\*") as refused:
        resolve(text)
    assert str(refused.value) == (
        "reqrunner needs a SQLite *file* that every thread and process of the site shares; an "
        "in-memory database cannot be; use e.g. sqlite:///reqrunner.sqlite3"
    )


def test_a_sqlite_url_with_more_in_it_goes_through_sqlalchemy(tmp_path: Path) -> None:
    target = resolve(f"sqlite:///{tmp_path}/jobs.sqlite3?timeout=3")
    assert target.has_engine and target.engine.url.query == {"timeout": "3"}
    with pytest.raises(ValueError, match="in-memory"):
        resolve("sqlite:///file:jobs?mode=memory&uri=true")
    with pytest.raises(ValueError, match="is not a database URL"):
        resolve("sqlite:/jobs.sqlite3")
    with pytest.raises(TypeError, match="not int"):
        resolve(3)  # type: ignore[arg-type]


def test_a_sqlite_queue_s_engine_is_made_when_asked_for_and_works(tmp_path: Path) -> None:
    reqrunner.JobQueue(f"sqlite:///{tmp_path}/jobs.sqlite3").stats()  # tables made (with one)
    queue = reqrunner.JobQueue(f"sqlite:///{tmp_path}/jobs.sqlite3")
    job_id = queue.dispatch("t.later", 1)
    assert not queue.target.has_engine
    engine = queue.engine
    assert engine is queue.engine and engine.url.database == str(tmp_path / "jobs.sqlite3")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT name FROM reqrunner_jobs").scalars().all() == [
            "t.later"
        ]
    # The app's own engine, handed to another queue, reaches the same jobs.
    other = reqrunner.JobQueue(engine)
    assert other.engine is engine and other.get(job_id).name == "t.later"
    other.close()
    queue.close()


PROBE = """
import sys
import reqrunner
queue = reqrunner.JobQueue(sys.argv[1])
queue.stats()
assert "sqlalchemy" not in sys.modules
with queue.engine.begin() as conn:
    conn.exec_driver_sql("INSERT INTO reqrunner_meta (name, value) VALUES ('probe', 'yes')")
print(queue.engine.dialect.name, queue.stats().waiting)
"""


def test_queue_engine_works_in_a_process_that_had_not_loaded_sqlalchemy(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/jobs.sqlite3"
    reqrunner.JobQueue(url).stats()
    done = subprocess.run(
        [sys.executable, "-c", PROBE, url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["sqlite", "0"]
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        found = conn.exec_driver_sql("SELECT value FROM reqrunner_meta WHERE name = 'probe'")
        assert found.scalar() == "yes"
    engine.dispose()


POSTGRES_URLS = [
    "postgresql://u@127.0.0.1/db",
    "postgres://u@h:5432/db",
    "postgresql+psycopg://u:pw@h:6543/db",
    "postgresql://u:p%40ss%2Fw%3Ard%20x+y@h/db",
    "postgresql://us%3Aer:@h/db",
    "postgresql://:pw@h/db",
    "postgresql://@h/db",
    "postgresql://h/",
    "postgresql:///db",
    "postgresql://u@/db?host=/var/run/postgresql",
    "postgresql://u@h/db?sslmode=require&application_name=a+b&connect_timeout=",
    "postgresql://u@h:0/d%C3%A9j%C3%A0%2Fvu",
    "postgresql://u@h/db name",
    "postgresql://",
]


@pytest.mark.parametrize("text", POSTGRES_URLS)
def test_a_plain_postgres_url_reads_as_sqlalchemy_reads_it(text: str) -> None:
    from reqrunner.store.dialects.postgres import PostgresDialect  # noqa: PLC0415

    expected = PostgresDialect.resolve_url(make_url(text))
    target = resolve(text)
    assert not target.has_engine and target.connect_args is not None
    assert (target.backend, target.database) == ("postgresql", expected.database)
    assert target.safe_url == expected.render_as_string(hide_password=True)
    assert target.same_as(Target.of_engine(sa.create_engine(expected)))
    # psycopg is given what SQLAlchemy's psycopg dialect would give it.
    dialect = sa.create_engine(expected).dialect
    _, cparams = dialect.create_connect_args(expected)
    cparams.pop("context", None)  # SQLAlchemy's own type adapters
    assert target.connect_args == cparams
    assert target.engine.url == expected


@pytest.mark.parametrize(
    "text",
    [
        "postgresql+psycopg2://u@h/db",
        "postgresql://u@[::1]:5432/db",
        "postgresql://u@h1:5432,h2:5433/db",
        "postgresql://u@h/db?host=a&host=b",
        "postgresql://a@b@h/db",
        "postgresql://u:p/w@h/db",
    ],
)
def test_any_other_postgres_url_goes_through_sqlalchemy(text: str) -> None:
    assert _postgres_server(text) is None


def test_a_password_with_any_character_reaches_the_driver(postgresql_url: str) -> None:
    password = "p@ss/w:rd %?#&=+'\"\\é"
    url = make_url(postgresql_url).set(password=password)
    queue = reqrunner.JobQueue(url.render_as_string(hide_password=False))
    try:
        assert queue.dialect.pool is not None and queue.url.count("***") == 1
        with queue.store.db.read() as cur:
            # The server trusts local connections here: what libpq was given is the check.
            assert cur.connection.info.password == password  # type: ignore[attr-defined]
    finally:
        queue.close()
