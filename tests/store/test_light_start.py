"""Opening a queue loads the SQLAlchemy dialect of its own database only, and no web stack; a
SQLite or PostgreSQL queue on a database that is already complete loads no SQLAlchemy at all."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import reqrunner
from tests.conftest import drop_tables

PROBE = """
import sys
import reqrunner
queue = reqrunner.JobQueue(sys.argv[1])
queue.stats()
queue.close()
dialects = {{".".join(m.split(".")[:3]) for m in sys.modules if m.startswith("sqlalchemy.dia")}}
web = {{m for m in sys.modules if m.split(".")[0] in {web!r}}}
print(sorted({{d for d in dialects if d.count(".") == 2 and "._" not in d}} | web))
"""
WEB = ("httpx", "anyio", "starlette", "rich")


@pytest.mark.parametrize(
    ("kind", "loaded"),
    [
        ("sqlite", ["sqlalchemy.dialects.sqlite"]),
        ("postgresql", ["sqlalchemy.dialects.postgresql"]),
        ("mysql", ["sqlalchemy.dialects.mysql"]),
    ],
)
def test_a_queue_loads_only_its_own_database_dialect(
    request: pytest.FixtureRequest, tmp_path: object, kind: str, loaded: list[str]
) -> None:
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path}/jobs.sqlite3"
    else:
        url = request.getfixturevalue(f"{kind}_url")
        drop_tables(url)

    def opened() -> list[str]:
        done = subprocess.run(
            [sys.executable, "-c", PROBE.format(web=WEB), url],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        found: list[str] = ast.literal_eval(done.stdout.strip().splitlines()[-1])
        return found

    # The first queue creates the tables, which takes the database's SQLAlchemy dialect.
    assert opened() == loaded
    # Later ones find them: MySQL's still connect through an engine, the others need none.
    assert opened() == (loaded if kind == "mysql" else [])


# Everything a cron run or a CGI hit does on a SQLite queue, then which of the heavy imports it
# took. The job is registered, so the run succeeds rather than meeting an unknown name.
WORK = """
import sys
import reqrunner
queue = reqrunner.JobQueue(*sys.argv[1:])

@queue.job(name="probe.add")
def add(a: int, b: int) -> int:
    return a + b

add.dispatch(1, 2)
queue.dispatch("probe.add", 3, 4)
report = queue.run()
stats = queue.stats()
queue.close()
heavy = {"sqlalchemy", "asyncio", "importlib.metadata"}
dialects = {m.rsplit(".", 1)[1] for m in sys.modules if m.startswith("reqrunner.store.dialects.")}
print([report.succeeded, stats.waiting, sorted(heavy & set(sys.modules)), sorted(dialects)])
"""
OWN_DIALECT = ["base", "ddl", "shared", "sqlite"]


def work(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> list[Any]:
    """Run :data:`WORK` in a fresh interpreter; what it printed."""
    done = subprocess.run(
        [sys.executable, "-c", WORK, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
        cwd=cwd,
    )
    assert done.returncode == 0, done.stderr
    found: list[Any] = ast.literal_eval(done.stdout.strip().splitlines()[-1])
    return found


def test_a_sqlite_queue_on_an_existing_file_never_imports_sqlalchemy(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/jobs.sqlite3"
    # The first process creates the file and its tables, which takes SQLAlchemy's DDL.
    created = work(url)
    assert created[:2] == [2, 0] and "sqlalchemy" in created[2] and created[3] == OWN_DIALECT
    # Every later one finds the schema complete: dispatch, run and stats without SQLAlchemy
    # (nor the asyncio and importlib.metadata it brings), nor another database's dialect.
    assert work(url) == [2, 0, [], OWN_DIALECT]


def test_the_default_and_the_environment_database_open_without_sqlalchemy(tmp_path: Path) -> None:
    env = {**os.environ, "REQRUNNER_DATABASE_URL": f"sqlite:///{tmp_path}/env.sqlite3"}
    assert "sqlalchemy" in work(env=env)[2]
    assert work(env=env) == [2, 0, [], OWN_DIALECT]
    # No URL and no variable: ./reqrunner.sqlite3 of the directory the process runs in.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("REQRUNNER_DATABASE_URL", None)
    assert "sqlalchemy" in work(env=env, cwd=tmp_path)[2]
    assert work(env=env, cwd=tmp_path) == [2, 0, [], OWN_DIALECT]
    assert (tmp_path / "reqrunner.sqlite3").exists()


def test_a_queue_on_a_file_not_there_yet_loads_what_creates_it_at_once(tmp_path: Path) -> None:
    # A new site's first page would otherwise pay SQLAlchemy's import when it first dispatches;
    # the server process pays it when it starts, as it did before SQLite could do without.
    probe = (
        "import sys, reqrunner\n"
        "reqrunner.JobQueue(sys.argv[1])\n"
        "print('reqrunner.store.creation' in sys.modules, 'sqlalchemy' in sys.modules)\n"
    )
    url = f"sqlite:///{tmp_path}/jobs.sqlite3"

    def loaded() -> str:
        done = subprocess.run(
            [sys.executable, "-c", probe, url], capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    assert loaded() == "True True"
    assert not (tmp_path / "jobs.sqlite3").exists()  # nothing connected yet
    reqrunner.JobQueue(url).stats()
    assert loaded() == "False False"
