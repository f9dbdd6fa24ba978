"""Connections to the job database: which engine, which driver connection, which transaction.

SQLite connections are opened by reqrunner itself, one per thread and process, in autocommit
mode so that every write transaction can start with ``BEGIN IMMEDIATE`` (the write lock is taken
up front, and SQLite's busy timeout applies, instead of failing with "database is locked" when
a read transaction tries to become a write one). PostgreSQL and MySQL/MariaDB connections come
from the SQLAlchemy engine's pool.
"""

from __future__ import annotations

import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.schema import CreateIndex, CreateTable

from ..errors import StoreError
from .dialects import DialectSQL, for_dialect
from .schema import SCHEMA_VERSION, metadata

__all__ = ["DEFAULT_SQLITE_FILE", "Cursor", "Database", "resolve_engine"]

log = logging.getLogger("reqrunner.store")

T = TypeVar("T")

DEFAULT_SQLITE_FILE = "reqrunner.sqlite3"


class Cursor(Protocol):
    """The part of a DBAPI cursor reqrunner uses."""

    @property
    def rowcount(self) -> int: ...
    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Any: ...
    def executemany(self, sql: str, params: Sequence[Sequence[Any]], /) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> Sequence[Any]: ...


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
    backend = url.get_backend_name()
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    elif url.drivername in ("mysql", "mariadb"):
        url = url.set(drivername=f"{url.drivername}+pymysql")
    if backend == "sqlite":
        if url.database in (None, "", ":memory:") or "mode=memory" in str(url):
            raise ValueError(
                "reqrunner needs a SQLite *file* that every thread and process of the site "
                "shares; an in-memory database cannot be; use e.g. sqlite:///reqrunner.sqlite3"
            )
        url = url.set(database=str(Path(url.database).resolve()))
    for_dialect(backend)  # a clear error for unsupported databases
    return sa.create_engine(url, pool_pre_ping=True)


def _is_deadlock(exc: BaseException | None) -> bool:
    """Whether a driver error means "deadlock / lock wait ended, try the transaction again"."""
    if isinstance(exc, sa.exc.DBAPIError):
        exc = exc.orig
    if exc is None:
        return False
    sqlstate = getattr(exc, "sqlstate", None)  # psycopg
    if sqlstate in ("40P01", "40001", "55P03"):
        return True
    code = exc.args[0] if exc.args else None  # PyMySQL: (errno, message)
    return code in (1205, 1213)


class Database:
    """One job database: the engine, its dialect's statements and short transactions."""

    def __init__(self, engine: Engine, *, busy_timeout: float = 5.0) -> None:
        self.engine = engine
        self.sql: DialectSQL = for_dialect(engine.dialect.name)
        self.dialect = self.sql.name
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._schema_ready = False
        self._schema_lock = threading.Lock()
        dbapi = engine.dialect.dbapi
        self.driver_errors: tuple[type[BaseException], ...] = (
            (dbapi.Error,) if dbapi is not None else ()
        ) + (sa.exc.DBAPIError, sqlite3.Error)
        self._integrity_errors: tuple[type[BaseException], ...] = (
            (dbapi.IntegrityError,) if dbapi is not None else ()
        ) + (sa.exc.IntegrityError,)

    # -- transactions ---------------------------------------------------------------------------

    def write(self) -> Transaction:
        """One short write transaction: ``with db.write() as cur: …``; the statements commit
        together or not at all."""
        return Transaction(self, write=True)

    def read(self) -> Transaction:
        """Reads that see one consistent snapshot where the database offers it."""
        return Transaction(self, write=False)

    def write_retrying(self, work: Callable[[Cursor], T], attempts: int = 5) -> T:
        """Run ``work`` in a write transaction, again from the start if the database chose it
        as a deadlock victim. InnoDB does so now and then when claims (index order) and
        deletes of finished jobs (primary key order) cross; the whole transaction is safe to
        repeat because every write in it is fenced by its claim token."""
        for attempt in range(1, attempts + 1):
            try:
                with self.write() as cur:
                    return work(cur)
            except StoreError as exc:
                if attempt == attempts or not _is_deadlock(exc.__cause__):
                    raise
                time.sleep(random.uniform(0.001, 0.01) * attempt)
        raise AssertionError("unreachable")

    def store_error(self, exc: BaseException) -> BaseException:
        """What a driver error becomes: integrity errors stay as they are, the rest a
        :class:`StoreError` naming the database."""
        if isinstance(exc, self._integrity_errors):
            return exc
        return StoreError(f"job database {self.safe_url}: {exc}")

    def is_integrity_error(self, exc: BaseException) -> bool:
        return isinstance(exc, self._integrity_errors)

    def _sqlite(self) -> sqlite3.Connection:
        local = self._local
        con: sqlite3.Connection | None = getattr(local, "con", None)
        if con is not None and local.pid == os.getpid():
            return con
        # A connection inherited through fork() must not be used by the child.
        path = self.engine.url.database
        assert path is not None
        con = sqlite3.connect(
            path,
            timeout=self.busy_timeout,
            isolation_level=None,
            check_same_thread=False,
            cached_statements=256,
        )
        con.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a power cut may lose the last commits but never corrupts the file,
        # and no fsync per commit (the same durability huey and Django users run with).
        con.execute("PRAGMA synchronous=NORMAL")
        local.con, local.pid = con, os.getpid()
        return con

    @property
    def safe_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        """Close this thread's SQLite connection and the engine's pool."""
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None
        self.engine.dispose()

    # -- schema -------------------------------------------------------------------------------

    def ensure_schema(self) -> None:
        """Create the tables on first use, once per process, safely against other processes."""
        if self._schema_ready:
            return
        with self._schema_lock:
            if self._schema_ready:
                return
            with Transaction(self, write=True, schema=False) as cur:
                self._create_missing(cur)
            self._schema_ready = True

    def _create_missing(self, cur: Cursor) -> None:
        if self.dialect == "postgresql":
            cur.execute("SELECT pg_advisory_xact_lock(72616963)")
        elif self.dialect == "mysql":
            cur.execute("SELECT GET_LOCK('reqrunner_schema', 30)")
        existing = self._existing_tables(cur)
        dialect = self.engine.dialect
        for table in metadata.sorted_tables:
            if table.name in existing:
                continue
            cur.execute(str(CreateTable(table).compile(dialect=dialect)))
            for index in table.indexes:
                cur.execute(str(CreateIndex(index).compile(dialect=dialect)))
            log.info("created table %s in %s", table.name, self.safe_url)
        q = self.sql.q
        cur.execute(q("SELECT value FROM reqrunner_meta WHERE name = ?"), ("schema_version",))
        row = cur.fetchone()
        if row is None:
            cur.execute(
                q("INSERT INTO reqrunner_meta (name, value) VALUES (?, ?)"),
                ("schema_version", str(SCHEMA_VERSION)),
            )
        elif int(row[0]) > SCHEMA_VERSION:
            raise StoreError(
                f"the job database has schema version {row[0]}, newer than this reqrunner "
                f"understands ({SCHEMA_VERSION}); upgrade reqrunner"
            )
        if self.dialect == "mysql":
            cur.execute("SELECT RELEASE_LOCK('reqrunner_schema')")

    def _existing_tables(self, cur: Cursor) -> set[str]:
        if self.dialect == "sqlite":
            cur.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        elif self.dialect == "postgresql":
            cur.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema()"
            )
        else:
            cur.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()"
            )
        return {str(row[0]) for row in cur.fetchall()}


class Transaction:
    """A transaction on this thread's SQLite connection or on a pooled server connection.

    A class rather than a generator-based context manager: it is entered for every dispatch
    and every claim, and the generator machinery was a measurable share of a dispatch.
    Driver errors leave it as :class:`StoreError` (integrity errors as they are, for the
    unique-key path to recognise).
    """

    __slots__ = ("_db", "_raw", "_schema", "_sqlite", "_write")

    def __init__(self, db: Database, *, write: bool, schema: bool = True) -> None:
        self._db = db
        self._write = write
        self._schema = schema
        self._sqlite: sqlite3.Connection | None = None
        self._raw: Any = None

    def __enter__(self) -> Cursor:
        db = self._db
        try:
            if self._schema and not db._schema_ready:
                db.ensure_schema()
            if db.dialect == "sqlite":
                con = self._sqlite = db._sqlite()
                cur = con.cursor()
                cur.execute("BEGIN IMMEDIATE" if self._write else "BEGIN")
                return cur
            raw = self._raw = db.engine.raw_connection()
            if db.dialect == "mysql" and not raw.info.get("reqrunner_rc"):
                # REPEATABLE READ's gap locks make short claim transactions block inserts and
                # deadlock each other; the claim is a locking read either way.
                setup = raw.cursor()
                setup.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                setup.close()
                raw.info["reqrunner_rc"] = True
            return raw.cursor()
        except db.driver_errors as exc:
            self._end(commit=False)
            raise db.store_error(exc) from exc

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        db = self._db
        try:
            self._end(commit=kind is None)
        except db.driver_errors as error:
            if exc is None:
                raise db.store_error(error) from error
        if exc is not None and isinstance(exc, db.driver_errors):
            wrapped = db.store_error(exc)
            if wrapped is not exc:
                raise wrapped from exc

    def _end(self, *, commit: bool) -> None:
        if self._sqlite is not None:
            if commit:
                self._sqlite.commit()
            else:
                self._sqlite.rollback()
            return
        raw = self._raw
        if raw is None:
            return
        try:
            if commit:
                raw.commit()
            else:
                raw.rollback()
        finally:
            raw.close()
