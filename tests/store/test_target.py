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
from reqrunner.store.target import Target, resolve

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
