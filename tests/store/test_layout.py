"""The plain-name description of the schema (what a process opening the database checks) is the
SQLAlchemy one (what creates it), and the dialects are found by the names their classes serve."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import reqrunner
from reqrunner.store import layout, schema
from reqrunner.store.dialects import _BY_BACKEND, DIALECTS, for_dialect


def test_the_layout_names_every_table_column_and_index_of_the_schema() -> None:
    # A table, column or index added to schema.py and not to layout.py fails here: a database
    # lacking it would be taken for complete and never get it.
    declared = {t.name: tuple(c.name for c in t.columns) for t in schema.metadata.sorted_tables}
    assert declared == layout.TABLES
    indexes = {
        t.name: tuple(sorted(str(i.name) for i in t.indexes))
        for t in schema.metadata.sorted_tables
        if t.indexes
    }
    assert indexes == {table: tuple(sorted(names)) for table, names in layout.INDEXES.items()}
    assert schema.SCHEMA_VERSION == layout.SCHEMA_VERSION


def test_each_backend_name_finds_the_class_that_serves_it() -> None:
    assert {b: for_dialect(b) for b in _BY_BACKEND} == {
        backend: cls for cls in DIALECTS for backend in cls.backends
    }


def what_is_there(path: Path) -> set[tuple[str, ...]]:
    """Every table, index and column in the SQLite file, and its version row, as SQLite says."""
    with sqlite3.connect(path) as con:
        found = {tuple(row) for row in con.execute("SELECT type, name FROM sqlite_master")}
        for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            found |= {(table, row[1]) for row in con.execute(f"PRAGMA table_info({table})")}
        found |= {tuple(row) for row in con.execute("SELECT name, value FROM reqrunner_meta")}
    con.close()
    return found


@pytest.mark.parametrize(
    "damage",
    [
        "DROP TABLE reqrunner_periodic",
        "DROP INDEX ix_reqrunner_results_expires",
        "ALTER TABLE reqrunner_leases DROP COLUMN holder",
        "DELETE FROM reqrunner_meta WHERE name = 'schema_version'",
    ],
)
def test_whatever_is_missing_is_seen_and_made_again(tmp_path: Path, damage: str) -> None:
    file = tmp_path / "jobs.sqlite3"
    first = reqrunner.JobQueue(f"sqlite:///{file}")
    first.stats()
    first.close()
    complete = what_is_there(file)
    with sqlite3.connect(file) as con:
        con.execute(damage)
    con.close()
    assert what_is_there(file) < complete

    again = reqrunner.JobQueue(f"sqlite:///{file}")
    connection, cur = again.dialect.begin(write=False)  # as the queue looks on opening
    assert not layout.is_current(again.dialect, cur)
    again.dialect.end(connection, commit=False)
    again.stats()
    again.close()
    assert what_is_there(file) == complete


def test_a_complete_database_opens_while_another_process_writes(tmp_path: Path) -> None:
    # Opening takes no write lock when nothing is to be created: a page's queue.stats() does
    # not wait for a long write elsewhere (a prune, a bulk dispatch).
    url = f"sqlite:///{tmp_path}/jobs.sqlite3"
    reqrunner.JobQueue(url).stats()
    writer = sqlite3.connect(tmp_path / "jobs.sqlite3", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        queue = reqrunner.JobQueue(url, busy_timeout=0.05)
        assert queue.stats().waiting == 0
        queue.close()
    finally:
        writer.rollback()
        writer.close()
