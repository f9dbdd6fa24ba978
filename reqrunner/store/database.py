"""Connections to the job database: which engine, which dialect, which transaction.

How a transaction begins and ends, and how a new connection is set up, is the dialect's
(``dialects/``); which database a URL names is ``target.py``'s. This module makes sure of the
schema once per process and turns driver errors into :class:`~reqrunner.errors.StoreError`.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import StoreError
from .dialects import Cursor, Dialect, for_target
from .layout import is_current
from .target import DEFAULT_SQLITE_FILE, Target, resolve

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = ["DEFAULT_SQLITE_FILE", "Cursor", "Database", "resolve_engine"]

T = TypeVar("T")


def resolve_engine(url_or_engine: str | Engine | None) -> Engine:
    """The engine for ``JobQueue(url_or_engine)`` (see :func:`~reqrunner.store.target.resolve`,
    which gives the database without building a SQLite engine)."""
    return resolve(url_or_engine).engine


class Database:
    """One job database: the engine, its dialect and short transactions."""

    def __init__(self, engine: Engine | Target, *, busy_timeout: float = 5.0) -> None:
        self.target = engine if isinstance(engine, Target) else Target.of_engine(engine)
        """Which database; its engine is made on first use where none was given."""
        self.dialect: Dialect = for_target(self.target, busy_timeout=busy_timeout)
        self.driver_errors = self.dialect.driver_errors
        self._schema_ready = False
        self._schema_in_caller = False
        self._schema_lock = threading.Lock()
        if not self.dialect.store_exists():
            # A database not there yet will need its tables made, which takes SQLAlchemy:
            # loaded now, with the process, not in the first request that uses the database.
            from . import creation  # noqa: F401, PLC0415

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
        back raced a dispatch of the same key; the next try sees that dispatch).

        ``attempts`` bounds the tries a deadlock or a conflict gets; a connection lost on the
        first try earns one more on a new connection whatever it is."""
        if attempts < 1:
            raise ValueError(f"write_retrying needs attempts >= 1, not {attempts!r}")
        attempt = 0
        while True:
            attempt += 1
            try:
                with self.write() as cur:
                    return work(cur)
            except StoreError as exc:
                if attempt == 1 and self.dialect.is_disconnect(exc.__cause__):
                    # The connection died under us (a restarted server, a killed backend):
                    # nothing was committed, so the transaction runs again, on a new one.
                    continue
                if attempt >= attempts or not self.dialect.is_deadlock(exc.__cause__):
                    raise
            except self.dialect.integrity_errors:
                if attempt >= attempts or not conflicts:
                    raise
            time.sleep(random.uniform(0.001, 0.01) * attempt)

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
    def engine(self) -> Engine:
        """The SQLAlchemy engine (a SQLite one is built on first use)."""
        return self.target.engine

    @property
    def safe_url(self) -> str:
        return self.target.safe_url

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
            # Nearly every open finds the schema complete: one read, no lock, no SQLAlchemy.
            with Transaction(self, write=False, schema=False) as cur:
                current = is_current(self.dialect, cur)
            if not current:
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
        # Read through the caller's cursor: a connection of reqrunner's own might have to wait
        # for the caller's lock (SQLite switching a new file to WAL).
        if is_current(self.dialect, cur):
            # Tables created in a caller's transaction may yet be rolled back: only a look of
            # reqrunner's own (ensure_schema) trusts them.
            self._schema_ready = not self._schema_in_caller
        elif self.dialect.holds_write_lock(raw):
            with self.dialect.schema_lock(cur):
                self._create_missing(cur)
            self._schema_in_caller = True
        else:
            self.ensure_schema()

    def _create_missing(self, cur: Cursor) -> None:
        # Only here is the schema's SQLAlchemy description needed, and SQLAlchemy with it.
        from .creation import create_missing  # noqa: PLC0415

        create_missing(self, cur)


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
