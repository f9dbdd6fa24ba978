"""Store fixtures: one test, three databases.

``db_url`` runs a test on a SQLite file, on PostgreSQL and on MySQL/MariaDB. The server
databases come from ``REQRUNNER_TEST_POSTGRES_URL`` / ``REQRUNNER_TEST_MYSQL_URL``; each test
session works in a database of its own that it creates there and drops at the end, so parallel
runs never see each other's jobs. Without the variables those cases are skipped, saying why.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.engine import make_url

import reqrunner
from reqrunner import deferred
from reqrunner.store.database import resolve_engine
from reqrunner.store.schema import metadata

SERVERS = {
    "postgresql": "REQRUNNER_TEST_POSTGRES_URL",
    "mysql": "REQRUNNER_TEST_MYSQL_URL",
}
TABLES = (*(table.name for table in metadata.sorted_tables), "executions")


@pytest.fixture(autouse=True)
def _no_pending_after_response_jobs() -> Iterator[None]:
    # A test's thread is every test's thread: what one test dispatched with after_response
    # outside a request must not be run after another test's response.
    yield
    deferred.PENDING.clear()


def _server_database(kind: str) -> Iterator[str]:
    env = SERVERS[kind]
    base = os.environ.get(env)
    if not base:
        pytest.skip(f"{env} is not set: no {kind} server to test against")
    admin = resolve_engine(base)
    name = f"reqrunner_t_{uuid.uuid4().hex[:10]}"
    options = {"isolation_level": "AUTOCOMMIT"}
    with admin.connect().execution_options(**options) as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        admin.dispose()
        with admin.connect().execution_options(**options) as conn:
            if kind == "postgresql":
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            else:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        admin.dispose()


@pytest.fixture(scope="session")
def postgresql_url() -> Iterator[str]:
    yield from _server_database("postgresql")


@pytest.fixture(scope="session")
def mysql_url() -> Iterator[str]:
    yield from _server_database("mysql")


def drop_tables(url: str) -> None:
    """Drop reqrunner's tables (and the tests' own) so the next queue starts clean."""
    engine = resolve_engine(url)
    with engine.begin() as conn:
        for table in TABLES:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
    engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path: object) -> str:
    return f"sqlite:///{tmp_path}/jobs.sqlite3"


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def db_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    """A clean job database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/jobs.sqlite3"
    url: str = request.getfixturevalue(f"{request.param}_url")
    drop_tables(url)
    return url


@pytest.fixture
def queue(db_url: str) -> Iterator[reqrunner.JobQueue]:
    q = reqrunner.JobQueue(db_url)
    yield q
    q.close()


def kind_of(url: str) -> str:
    return make_url(url).get_backend_name()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless chromium for the browser tests (skipped, saying why, when it is missing)."""
    from tests.live import CHROMIUM, CHROMIUM_ARGS  # noqa: PLC0415

    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (dev extra)")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under ``REQRUNNER_REQUIRE_ALL=1`` (CI) a skipped test is a failure: every database and
    the browser must really be there, never quietly counted as passing."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    forbidden = os.environ.get("REQRUNNER_REQUIRE_ALL") == "1"
    if report.skipped and forbidden and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped, but REQRUNNER_REQUIRE_ALL=1 forbids skips: {report.longrepr}"
