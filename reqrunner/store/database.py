"""Connections to the job database: which engine, which dialect, which transaction.

How a transaction begins and ends, and how a new connection is set up, is the dialect's
(``dialects/``); this module resolves the engine, creates the schema once per process and turns
driver errors into :class:`~reqrunner.errors.StoreError`.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.schema import CreateColumn

from ..errors import StoreError
from .counts import STATES, recount
from .dialects import JOBS, Cursor, Dialect, for_dialect, for_engine
from .schema import SCHEMA_VERSION, metadata

__all__ = ["DEFAULT_SQLITE_FILE", "Cursor", "Database", "resolve_engine"]

log = logging.getLogger("reqrunner.store")

T = TypeVar("T")

DEFAULT_SQLITE_FILE = "reqrunner.sqlite3"


def resolve_engine(url_or_engine: str | Engine | None) -> Engine:
    """Make the engine for ``JobQueue(url_or_engine)``.

    ``None`` means ``REQRUNNER_DATABASE_URL``, else the SQLite file ``./reqrunner.sqlite3``.
    A URL naming no driver gets the one reqrunner is tested with: psycopg 3 for PostgreSQL,
    PyMySQL for MySQL and MariaDB.
    """
    if isinstance(url_or_engine, Engine):
        return url_or_engine
    if url_or_engine is None:
        url_or_engine = os.environ.get("REQRUNNER_DATABASE_URL") or (
            "sqlite:///" + str(Path(DEFAULT_SQLITE_FILE).resolve())
        )
    if not isinstance(url_or_engine, str):
        raise TypeError(
            "JobQueue() takes a database URL string or a SQLAlchemy Engine, "
            f"not {type(url_or_engine).__name__}"
        )
    try:
        url = make_url(url_or_engine)
    except sa.exc.ArgumentError as exc:
        raise ValueError(
            f"{url_or_engine!r} is not a database URL; write e.g. sqlite:///jobs.sqlite3, "
            "postgresql://user@host/db or mysql://user@host/db"
        ) from exc
    # The dialect refuses what it cannot serve and names the driver where the URL names none.
    dialect = for_dialect(url.get_backend_name())
    url = dialect.resolve_url(url)
    try:
        return sa.create_engine(url, pool_pre_ping=dialect.pre_ping)
    except ModuleNotFoundError as exc:
        if dialect.extra is None:
            raise
        raise ModuleNotFoundError(
            f"the {url.get_backend_name()} driver {exc.name or url.get_driver_name()!r} is not "
            f"installed: pip install 'reqrunner[{dialect.extra}]'",
            name=exc.name,
        ) from exc


class Database:
    """One job database: the engine, its dialect and short transactions."""

    def __init__(self, engine: Engine, *, busy_timeout: float = 5.0) -> None:
        self.engine = engine
        self.dialect: Dialect = for_engine(engine, busy_timeout=busy_timeout)
        self.driver_errors = self.dialect.driver_errors
        self._schema_ready = False
        self._schema_in_caller = False
        self._schema_lock = threading.Lock()

    # -- transactions ---------------------------------------------------------------------------

    def write(self, *, single: bool = False) -> Transaction:
        """One short write transaction: ``with db.write() as cur: …``; the statements commit
        together or not at all. ``single``: the work writes with one statement, atomic by
        itself, so the dialect may run it without a transaction (:meth:`Dialect.begin_single`)."""
        return Transaction(self, write=True, single=single)

    def read(self) -> Transaction:
        """Reads that see one consistent snapshot where the database offers it."""
        return Transaction(self, write=False)

    def write_retrying(
        self, work: Callable[[Cursor], T], attempts: int = 5, *, conflicts: bool = False
    ) -> T:
        """Run ``work`` in a write transaction, again from the start if the database chose it
        as a deadlock victim. InnoDB does so now and then when claims (index order) and
        deletes of finished jobs (primary key order) cross; the whole transaction is safe to
        repeat because every write in it is fenced by its claim token.

        ``conflicts``: a unique-index violation is repeated too (a job taking its unique slot
        back raced a dispatch of the same key; the next try sees that dispatch)."""
        for attempt in range(1, attempts + 1):
            try:
                with self.write() as cur:
                    return work(cur)
            except StoreError as exc:
                if attempt == 1 and self.dialect.is_disconnect(exc.__cause__):
                    # The connection died under us (a restarted server, a killed backend):
                    # nothing was committed, so the transaction runs again, on a new one.
                    continue
                if attempt == attempts or not self.dialect.is_deadlock(exc.__cause__):
                    raise
            except self.dialect.integrity_errors:
                if attempt == attempts or not conflicts:
                    raise
            time.sleep(random.uniform(0.001, 0.01) * attempt)
        raise AssertionError("unreachable")

    def store_error(self, exc: BaseException) -> BaseException:
        """What a driver error becomes: integrity errors stay as they are, the rest a
        :class:`StoreError` naming the database."""
        if isinstance(exc, self.dialect.integrity_errors):
            return exc
        hint = self.dialect.explain(exc)
        if hint is not None:
            return StoreError(f"job database {self.safe_url}: {hint} ({exc})")
        return StoreError(f"job database {self.safe_url}: {exc}")

    @property
    def safe_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        """Close this thread's connection (SQLite) and the engine's pool."""
        self.dialect.close()

    # -- schema -------------------------------------------------------------------------------

    def ensure_schema(self) -> None:
        """Create the tables on first use, once per process, safely against other processes."""
        if self._schema_ready:
            return
        with self._schema_lock:
            if self._schema_ready:
                return
            with (
                Transaction(self, write=True, schema=False) as cur,
                self.dialect.schema_lock(cur),
            ):
                self._create_missing(cur)
            self._schema_ready = True

    def ensure_schema_for(self, raw: Any, cur: Cursor) -> None:
        """:meth:`ensure_schema` for a caller with a transaction of its own open on the driver
        connection ``raw`` (``cur`` a cursor in it): an app dispatching on its own connection.
        When that transaction may hold the write lock (SQLite), waiting for the lock would wait
        for the caller: then missing tables are created in the caller's transaction and exist
        if it commits (SQLite's DDL is transactional)."""
        if self._schema_ready:
            return
        if self._schema_present(cur):
            # Tables created in a caller's transaction may yet be rolled back: only a look of
            # reqrunner's own (ensure_schema) trusts them.
            self._schema_ready = not self._schema_in_caller
        elif self.dialect.holds_write_lock(raw):
            with self.dialect.schema_lock(cur):
                self._create_missing(cur)
            self._schema_in_caller = True
        else:
            self.ensure_schema()

    def _schema_present(self, cur: Cursor) -> bool:
        # Read through the caller's cursor: a connection of reqrunner's own might have to wait
        # for the caller's lock (SQLite switching a new file to WAL).
        missing = {table.name for table in metadata.sorted_tables}
        missing -= self.dialect.existing_tables(cur)
        if missing:
            return False
        cur.execute(
            self.dialect.q("SELECT value FROM reqrunner_meta WHERE name = ?"), ("schema_version",)
        )
        row = cur.fetchone()
        return row is not None and int(row[0]) <= SCHEMA_VERSION

    def _add_missing_columns(self, cur: Cursor, table: sa.Table) -> None:
        # A column a newer reqrunner added (always a NULL-able one) is added to a table an
        # older one made; ``ADD COLUMN`` is written alike on every supported database.
        cur.execute(f"SELECT * FROM {table.name} WHERE 1 = 0")
        present = {str(column[0]).lower() for column in cur.description or ()}
        for column in table.columns:
            if column.name not in present:
                ddl = CreateColumn(column).compile(dialect=self.engine.dialect)
                cur.execute(f"ALTER TABLE {table.name} ADD COLUMN {ddl}")
                log.info("added column %s.%s in %s", table.name, column.name, self.safe_url)

    def _create_missing(self, cur: Cursor) -> None:
        # Indexes are created when missing too, not only with their table: a database made by
        # an older reqrunner gets the indexes a newer one adds the first time it opens it.
        dialect = self.dialect
        existing = dialect.existing_tables(cur)
        indexes = dialect.existing_indexes(cur)
        for table in metadata.sorted_tables:
            if table.name not in existing:
                cur.execute(dialect.create_table(table))
                log.info("created table %s in %s", table.name, self.safe_url)
            else:
                self._add_missing_columns(cur, table)
            for index in table.indexes:
                if index.name not in indexes:
                    cur.execute(dialect.create_index(index))
                    if table.name in existing:
                        log.info("created index %s in %s", index.name, self.safe_url)
        if STATES not in existing and JOBS in existing:
            # Jobs stored before their states were counted: count them once, now, under the
            # schema lock (every later move is counted as it happens).
            log.info("counted the jobs per state in %s: %s", self.safe_url, recount(cur, dialect))
        q = self.dialect.q
        cur.execute(q("SELECT value FROM reqrunner_meta WHERE name = ?"), ("schema_version",))
        row = cur.fetchone()
        if row is None:
            # Ignoring a duplicate: a process that created the tables just before us may not
            # have committed its row yet when its lock was released (MySQL's lock belongs to
            # the session, and is let go before the commit).
            cur.execute(
                self.dialect.insert_ignore("reqrunner_meta", "name, value"),
                ("schema_version", str(SCHEMA_VERSION)),
            )
        elif int(row[0]) > SCHEMA_VERSION:
            raise StoreError(
                f"the job database has schema version {row[0]}, newer than this reqrunner "
                f"understands ({SCHEMA_VERSION}); upgrade reqrunner"
            )


class Transaction:
    """A transaction on a connection the dialect gives (for SQLite this thread's own, for the
    server databases one from the pool).

    A class rather than a generator-based context manager: it is entered for every dispatch
    and every claim, and the generator machinery was a measurable share of a dispatch.
    Driver errors leave it as :class:`StoreError` (integrity errors as they are, for the
    unique-key path to recognise).
    """

    __slots__ = ("_connection", "_db", "_schema", "_single", "_write")

    def __init__(
        self, db: Database, *, write: bool, schema: bool = True, single: bool = False
    ) -> None:
        self._db = db
        self._write = write
        self._schema = schema
        self._single = single
        self._connection: Any = None

    def __enter__(self) -> Cursor:
        db = self._db
        try:
            if self._schema and not db._schema_ready:
                db.ensure_schema()
            if self._single:
                self._connection, cur = db.dialect.begin_single()
            else:
                self._connection, cur = db.dialect.begin(write=self._write)
            return cur
        except db.driver_errors as exc:
            if db.dialect.schema_lost():
                db._schema_ready = False
            raise db.store_error(exc) from exc

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        db = self._db
        try:
            db.dialect.end(self._connection, commit=kind is None)
        except db.driver_errors as error:
            if exc is None:
                raise db.store_error(error) from error
        if exc is not None and isinstance(exc, db.driver_errors):
            wrapped = db.store_error(exc)
            if wrapped is not exc:
                raise wrapped from exc
