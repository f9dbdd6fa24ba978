"""SQLite: one file shared by every thread and process of the site, in WAL mode.

reqrunner opens SQLite connections itself, one per thread and process, in autocommit mode so
that every write transaction can start with ``BEGIN IMMEDIATE``: the write lock is taken up
front, and SQLite's busy timeout applies, instead of failing with "database is locked" when a
read transaction tries to become a write one. Writers are serialised by that lock, so a claim
needs no row locks and the schema no lock of its own.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..records import Claimed, NewJob
from .base import Dialect
from .shared import (
    CLAIM_COLUMNS,
    CLAIM_ORDER,
    CLAIM_SET,
    DUE_LIMIT,
    JOBS,
    Cursor,
    chunks,
    claimed,
    driver_error,
    due_where,
)

if TYPE_CHECKING:
    import sqlalchemy as sa
    from sqlalchemy.engine import URL

    from ..target import Target

__all__ = ["JOURNAL_SIZE_LIMIT", "SqliteDialect", "file_path"]

#: Bytes the WAL file is cut back to when it is reset after a checkpoint.
JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024

#: Rows a prune must have deleted to be worth a checkpoint of its own.
_CHECKPOINT_AFTER = 10_000

log = logging.getLogger("reqrunner.store")


class SqliteDialect(Dialect):
    """SQLite 3.35 or later (``UPDATE … RETURNING``), through the standard library's driver."""

    name = "sqlite"
    backends = ("sqlite",)
    placeholder = "?"
    row_lock = ""
    # One writer at a time holds the whole file: a second counter row would wait all the same.
    count_shards = 1
    # AUTOINCREMENT keeps the largest id ever given out, and rolls it back with the insert
    # that took it: ids have no gaps, so it is the number of jobs ever inserted.
    inserted = f"(SELECT COALESCE(MAX(seq), 0) FROM sqlite_sequence WHERE name = '{JOBS}')"

    def __init__(self, target: Target, *, busy_timeout: float = 5.0) -> None:
        super().__init__(target, busy_timeout=busy_timeout)
        if target.database is None:
            raise ValueError(_IN_MEMORY)
        self.path = target.database
        """The database file (as the URL or the engine names it)."""
        self._local = threading.local()
        self._schema_lost = False
        self._insert_one = self.insert_sql(1, returning=True)

    def error_classes(
        self,
    ) -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
        # reqrunner's own connections are the standard library's, whatever engine was given.
        return (sqlite3.Error,), (sqlite3.IntegrityError,)

    @classmethod
    def resolve_url(cls, url: URL) -> URL:
        if "mode=memory" in str(url):
            raise ValueError(_IN_MEMORY)
        return url.set(database=file_path(url.database))

    def use_index(self, index: str) -> str:
        # Without ANALYZE statistics SQLite may prefer a narrower range and a sort, which on a
        # big table costs a page the whole range.
        return f" INDEXED BY {index}"

    # -- connections ----------------------------------------------------------------------------

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, opened and set up on first use."""
        local = self._local
        path = self.path
        con: sqlite3.Connection | None = getattr(local, "con", None)
        if con is not None and local.pid == os.getpid():
            if _identity(path) == local.identity:
                return con
            # The file was deleted or replaced under us: this connection would go on writing
            # to the unlinked file, and every job dispatched there would be lost.
            con.close()
            local.con = None
            self._schema_lost = True
            log.error(
                "the SQLite job database %s was deleted or replaced while in use; reconnecting "
                "to the file now at that path (jobs written to the old file are not in it)",
                path,
            )
            raise sqlite3.OperationalError(
                f"the SQLite file {path} was deleted or replaced while in use; reconnected"
            )
        # A connection inherited through fork() must not be used by the child.
        con = sqlite3.connect(
            path,
            timeout=self.busy_timeout,
            isolation_level=None,
            check_same_thread=False,
            cached_statements=256,
        )
        self._use_wal(con)
        # NORMAL in WAL mode: a power cut may lose the last commits but never corrupts the file,
        # and no fsync per commit (the same durability huey and Django users run with).
        con.execute("PRAGMA synchronous=NORMAL")
        # The WAL is reused from its start after each complete checkpoint, but never shrinks
        # by itself: one big write would leave it at its largest for good.
        con.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
        local.con, local.pid, local.identity = con, os.getpid(), _identity(path)
        return con

    def explain(self, exc: BaseException) -> str | None:
        path = self.path
        if not isinstance(driver_error(exc), sqlite3.OperationalError):
            return None
        folder = os.path.dirname(path) or "."
        if not os.access(folder, os.W_OK):
            return (
                f"the directory {folder} is not writable, and SQLite must create "
                f"{os.path.basename(path)}-wal and -shm beside the database there; make it "
                "writable by the user the site runs as, or set REQRUNNER_DATABASE_URL"
            )
        if os.path.exists(path) and not os.access(path, os.W_OK):
            return f"the file {path} is not writable by the user the site runs as"
        return None

    def store_exists(self) -> bool:
        return os.path.exists(self.path)

    def schema_lost(self) -> bool:
        lost, self._schema_lost = self._schema_lost, False
        return lost

    def _use_wal(self, con: sqlite3.Connection) -> None:
        # Switching a new file to WAL needs a lock that SQLite's busy handler does not wait for:
        # processes starting together on a fresh file would fail with "database is locked".
        # Once switched, the mode is stored in the file and this is a read.
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                con.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                    raise
                time.sleep(0.005)

    def local_file(self) -> str | None:
        return self.path

    def journal_mode(self, cur: Cursor) -> str | None:
        cur.execute("PRAGMA journal_mode")
        return str(cur.fetchone()[0]).lower()

    def database_size(self, cur: Cursor) -> int | None:
        cur.execute("PRAGMA page_count")
        pages = int(cur.fetchone()[0])
        cur.execute("PRAGMA page_size")
        return pages * int(cur.fetchone()[0])

    def begin(self, *, write: bool) -> tuple[Any, Cursor]:
        con = self.connection()
        cur = con.cursor()
        cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        return con, cur

    def end(self, connection: Any, *, commit: bool) -> None:
        # The connection stays open for this thread's next transaction.
        if commit:
            connection.commit()
        else:
            connection.rollback()

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None
        super().close()

    def is_disconnect(self, exc: BaseException | None) -> bool:
        # What SQLAlchemy's SQLite dialect calls a disconnect: the connection was closed.
        error = driver_error(exc)
        return isinstance(error, sqlite3.ProgrammingError) and (
            "Cannot operate on a closed database." in str(error)
        )

    def is_deadlock(self, exc: BaseException | None) -> bool:
        # Writers queue for the one write lock (the busy timeout); they never deadlock.
        return False

    def after_prune(self, removed: int) -> None:
        # A PASSIVE checkpoint copies what the deletes wrote into the database without waiting
        # for (or blocking) anyone; the next writer then restarts the WAL, cut to the limit.
        if removed >= _CHECKPOINT_AFTER:
            self.connection().execute("PRAGMA wal_checkpoint(PASSIVE)")

    # -- schema -----------------------------------------------------------------------------------

    def schema_lock(self, cur: Cursor) -> AbstractContextManager[None]:
        # The schema is created in a BEGIN IMMEDIATE transaction, which holds the write lock.
        return nullcontext()

    def existing_tables(self, cur: Cursor) -> set[str]:
        cur.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {str(name) for (name,) in cur.fetchall()}

    def holds_write_lock(self, raw: Any) -> bool:
        # The standard library's driver opens a transaction before the first write (or when
        # told to BEGIN): from then on it may hold the file's one write lock.
        return bool(getattr(raw, "in_transaction", False))

    def identity(self, cur: Cursor) -> tuple[object, ...]:
        # The main file, by device and inode: the same file whatever path names it.
        cur.execute("PRAGMA database_list")
        path = next(str(row[2]) for row in cur.fetchall() if row[1] == "main")
        return _file_identity(path) if path else ("memory", id(cur))

    def own_identity(self) -> tuple[object, ...]:
        # From the file itself: opening a connection of reqrunner's own could wait for the
        # write lock of the app asking (switching a new file to WAL needs it).
        return _file_identity(self.path)

    def existing_indexes(self, cur: Cursor) -> set[str]:
        cur.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        return {str(name) for (name,) in cur.fetchall()}

    def create_table(self, table: sa.Table) -> str:
        # AUTOINCREMENT is SQLAlchemy's own SQLite option; SQLite's dialect is loaded already.
        if table.info.get("options", {}).get(self.name, {}).get("autoincrement"):
            table.dialect_options["sqlite"]["autoincrement"] = True
        return super().create_table(table)

    # -- dispatch ---------------------------------------------------------------------------------

    def insert_one(self, cur: Cursor, job: NewJob) -> int:
        cur.execute(self._insert_one, job)
        return int(cur.fetchone()[0])

    def insert_many(self, cur: Cursor, jobs: Sequence[NewJob]) -> list[int]:
        ids: list[int] = []
        for rows, params in chunks(jobs):
            cur.execute(self.insert_sql(rows, returning=True), params)
            # AUTOINCREMENT hands out increasing ids in row order; RETURNING's order is not
            # guaranteed.
            ids.extend(sorted(int(row[0]) for row in cur.fetchall()))
        return ids

    # -- the claim cycle --------------------------------------------------------------------------

    def claim(
        self, cur: Cursor, token: str, now: float, limit: int, queues: Sequence[str]
    ) -> list[Claimed]:
        sql = self._claims.get(len(queues))
        if sql is None:
            # One UPDATE inside BEGIN IMMEDIATE: the write lock is taken before the rows are
            # chosen, so two runners can never pick the same job.
            # INDEXED BY: the order is the claim index's, and sorting a backlog of due jobs
            # through the due index would cost a claim the whole backlog.
            chosen = (
                f"SELECT id FROM {JOBS}{self.use_index('ix_reqrunner_jobs_claim')} "
                f"WHERE {due_where(len(queues))} {CLAIM_ORDER} "
                f"LIMIT {DUE_LIMIT}"
            )
            sql = self._claims[len(queues)] = (
                f"UPDATE {JOBS} SET {CLAIM_SET} WHERE id IN ({chosen}) "
                f"RETURNING {', '.join(CLAIM_COLUMNS)}"
            )
        cur.execute(sql, (token, now, now, now, *queues, now, limit))
        return claimed(cur, cur.fetchall(), token)


_IN_MEMORY = (
    "reqrunner needs a SQLite *file* that every thread and process of the site shares; an "
    "in-memory database cannot be; use e.g. sqlite:///reqrunner.sqlite3"
)


def file_path(database: str | None) -> str:
    """The absolute path of the file a SQLite URL's database names, so that a process started
    in another directory finds the same file; a ValueError for an in-memory database."""
    if database is None or database in ("", ":memory:"):
        raise ValueError(_IN_MEMORY)
    return str(Path(database).resolve())


def _file_identity(path: str) -> tuple[object, ...]:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return ("missing", path)
    return (stat.st_dev, stat.st_ino)


def _identity(path: str) -> tuple[int, int] | None:
    """The file at ``path`` as the system knows it (device, inode); None when there is none."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return (found.st_dev, found.st_ino)
