"""What every job database must provide, and the SQL they all share.

The statements a runner executes thousands of times a second go to the driver directly, because
SQLAlchemy Core's per-call cost is several times the cost of the statement itself on SQLite.
SQLite opens its own connections, and PostgreSQL given a URL pools its own
(:class:`~reqrunner.store.pool.Pool`); they load SQLAlchemy only to create the schema. Otherwise
the engine's pool gives the connections.

How to add a database
---------------------
Write one class: a subclass of :class:`Dialect` in a module of its own here, with its class
attributes (``name``, ``backends``, ``placeholder``) and the abstract methods, overriding a
default only where the database differs from it. Name its module and its backends in
``dialects/__init__.py`` (``_MODULES``, ``_BY_BACKEND``: only the dialect in use is imported).
Then run the shared suite on it: every store, runner, CLI and admin
test takes the ``db_url`` fixture of ``tests/conftest.py``, so adding the database's URL there
runs all of them against it, and ``tests/store/test_dialects.py`` checks the contract itself
(atomic claims, ids in order, deadlock detection, session setup). Nothing outside the dialect
classes asks which database it talks to.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, ClassVar

from ..records import Claimed, NewJob
from .ddl import SchemaStatements
from .shared import (
    CLAIM_COLUMNS,
    CLAIM_SET,
    INSERT,
    JOBS,
    STATES,
    VALUES_ROW,
    Cursor,
    Listener,
    claimed,
    driver_error,
    due_where,
    in_order,
    marks,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Engine

    from ..pool import Pool
    from ..target import Target

__all__ = ["Dialect"]


class Dialect(SchemaStatements, ABC):
    """Everything reqrunner does differently on one database, for one engine.

    A dialect opens and ends transactions (setting up each new connection), inserts and claims
    jobs, says which driver errors mean "deadlock, run the transaction again", takes the lock
    that serialises schema creation, lists existing tables and, where the database can, wakes
    listening workers. The methods marked abstract differ on every database; the others are
    written once here in the SQL that SQLite and PostgreSQL share (``ON CONFLICT``,
    ``RETURNING``), and a dialect overrides them where it differs.

    Statements are written with ``?`` placeholders and passed through :meth:`q`.
    """

    name: ClassVar[str]
    """The dialect's own name, for messages and logs."""
    backends: ClassVar[tuple[str, ...]]
    """The SQLAlchemy backend names this class serves."""
    placeholder: ClassVar[str]
    """The driver's parameter marker."""
    extra: ClassVar[str | None] = None
    """reqrunner's optional dependency that installs the driver (``pip install
    reqrunner[extra]``); None when the standard library has it."""
    listens: ClassVar[bool] = False
    """Whether :meth:`listener` gives a connection woken by every dispatch."""
    row_lock: ClassVar[str] = " FOR UPDATE SKIP LOCKED"
    """What makes a SELECT lock its rows, skipping rows others have locked."""
    count_shards: ClassVar[int] = 8
    """Rows each state's count is spread over (:mod:`reqrunner.store.counts`): enough that
    concurrent transactions seldom wait for one another's row."""
    inserted: ClassVar[str | None] = None
    """An SQL expression for how many jobs were ever inserted, where the database keeps that
    itself at no cost (then an insert of a waiting job need not be counted); None if not."""
    counts_inserts: ClassVar[bool] = False
    """Whether :meth:`insert_one` and :meth:`insert_unique` add the job they insert to the
    kept counts in their own statement (then a dispatch is one statement); when not, the store
    counts it with a statement of its own."""
    pre_ping: ClassVar[bool] = True
    """Whether the pool tests each connection with a round trip before handing it out; a
    dialect that tells a dead connection by other means (:meth:`stale`) turns it off."""

    def __init__(self, target: Target, *, busy_timeout: float = 5.0) -> None:
        self.target = target
        """The job database this dialect serves."""
        self.busy_timeout = busy_timeout
        """How long (seconds) a write waits for another writer's lock, where reqrunner sets it."""
        self.pool: Pool[Any] | None = self.own_pool()
        """reqrunner's own connections to the database, where the dialect keeps them; None:
        the engine's pool gives them."""
        self.driver_errors: tuple[type[BaseException], ...]
        """What a failing statement can raise."""
        self.integrity_errors: tuple[type[BaseException], ...]
        self.driver_errors, self.integrity_errors = self.error_classes()
        self._claims: dict[int, str] = {}
        self.add_count = self.add_to(STATES, ("state", "shard"))
        """Add to the kept count of a state. Parameters: state, shard, n."""

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine of the job database (built now where it was not yet)."""
        return self.target.engine

    def error_classes(
        self,
    ) -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
        """The errors a failing statement can raise, and those of them that are integrity
        errors: by default the engine's driver's, and SQLAlchemy's wrappers of them."""
        import sqlalchemy as sa  # noqa: PLC0415 (loaded already: the engine exists)

        dbapi = self.engine.dialect.dbapi
        errors = ((dbapi.Error,) if dbapi is not None else ()) + (sa.exc.DBAPIError,)
        integrity = ((dbapi.IntegrityError,) if dbapi is not None else ()) + (
            sa.exc.IntegrityError,
        )
        return errors, integrity

    @classmethod
    def resolve_url(cls, url: URL) -> URL:
        """The URL to connect with: ``url`` with the driver reqrunner is tested with where it
        names none; a ValueError saying what to write where it cannot serve the URL."""
        return url

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.target.safe_url}>"

    def use_index(self, index: str) -> str:
        """What follows a table's name to make a query read it through ``index`` (nothing by
        default: the planner's statistics choose well)."""
        return ""

    def q(self, sql: str) -> str:
        """Return ``sql`` with its ``?`` placeholders in this driver's style."""
        return sql if self.placeholder == "?" else sql.replace("?", self.placeholder)

    # -- connections ----------------------------------------------------------------------------

    def own_pool(self) -> Pool[Any] | None:
        """The pool of connections of the dialect's own for its target, made once, when the
        dialect is (None by default: the engine's pool serves)."""
        return None

    def checkout(self) -> Any:
        """A pooled connection (SQLAlchemy's, or one of :attr:`pool`: they answer the same
        calls)."""
        return self.engine.raw_connection() if self.pool is None else self.pool.checkout()

    def begin(self, *, write: bool) -> tuple[Any, Cursor]:
        """Start a transaction: the connection to :meth:`end` it on, and a cursor in it.

        By default a pooled connection (:meth:`checkout`), set up by :meth:`setup_session`
        the first time it is used; the driver's implicit transaction begins with the first
        statement. ``write``: the transaction will write.
        """
        raw = self.checkout()
        if self.stale(raw):
            raw.invalidate()
            raw = self.checkout()
        try:
            if not raw.info.get("reqrunner_session"):
                self.setup_session(raw)
                raw.info["reqrunner_session"] = True
            return raw, raw.cursor()
        except BaseException:
            raw.close()
            raise

    def begin_single(self) -> tuple[Any, Cursor]:
        """:meth:`begin` for work whose every write is one statement, atomic by itself (a
        dispatch: its INSERT, then at most reads), to :meth:`end` as usual.

        By default a write transaction; a dialect whose driver can run it in autocommit saves
        the round trips of BEGIN and COMMIT there.
        """
        return self.begin(write=True)

    def setup_session(self, raw: Any) -> None:
        """Prepare a new pooled connection for reqrunner's transactions (nothing by default)."""

    def stale(self, raw: Any) -> bool:
        """Whether a pooled connection is known dead without asking the server (never, by
        default: the pool's pre-ping asks)."""
        return False

    def is_disconnect(self, exc: BaseException | None) -> bool:
        """Whether a driver error means the connection was lost."""
        error = driver_error(exc)
        dbapi = self.engine.dialect.dbapi
        return (
            dbapi is not None
            and isinstance(error, dbapi.Error)
            and bool(self.engine.dialect.is_disconnect(error, None, None))
        )

    def end(self, connection: Any, *, commit: bool) -> None:
        """Commit or roll back the transaction :meth:`begin` started, and let go of it."""
        try:
            if commit:
                connection.commit()
            else:
                connection.rollback()
        except BaseException as exc:
            # A connection lost mid-transaction must not go back to the pool.
            if self.is_disconnect(exc):
                connection.invalidate()
            raise
        finally:
            connection.close()

    def close(self) -> None:
        """Close the connections this dialect opened (on this thread, or in its pool) and the
        engine's pool."""
        if self.pool is not None:
            self.pool.dispose()
        self.target.dispose()

    def explain(self, exc: BaseException) -> str | None:
        """What a driver error most likely means, in words that say what to do, where the
        driver's own message does not (None: nothing to add)."""
        return None

    def store_exists(self) -> bool:
        """Whether the database is there before reqrunner first uses it (False: a SQLite file
        that the first connection will create, empty). A server database always is."""
        return True

    def schema_lost(self) -> bool:
        """Whether the database the tables were created in has gone since the last call (a
        SQLite file deleted or replaced), so they must be looked for again. Never by default."""
        return False

    @abstractmethod
    def is_deadlock(self, exc: BaseException | None) -> bool:
        """Whether a driver error means "deadlock or lock wait ended: run it again"."""

    # -- schema -----------------------------------------------------------------------------------

    @abstractmethod
    def schema_lock(self, cur: Cursor) -> AbstractContextManager[None]:
        """Hold, inside the transaction of ``cur``, the lock that keeps two processes from
        creating the tables at once."""

    @abstractmethod
    def existing_tables(self, cur: Cursor) -> set[str]:
        """The names of the tables in the database (the schema) reqrunner works in."""

    @abstractmethod
    def existing_indexes(self, cur: Cursor) -> set[str]:
        """The names of the indexes in the database (the schema) reqrunner works in."""

    # -- dispatch ---------------------------------------------------------------------------------

    def insert_sql(self, rows: int, *, returning: bool) -> str:
        """A multi-row INSERT of ``rows`` jobs, optionally ``RETURNING id``."""
        sql = INSERT + ", ".join([VALUES_ROW] * rows)
        return self.q(sql + " RETURNING id" if returning else sql)

    @abstractmethod
    def insert_one(self, cur: Cursor, job: NewJob) -> int:
        """Insert one job and return its id; listeners are woken when it commits."""

    @abstractmethod
    def insert_many(self, cur: Cursor, jobs: Sequence[NewJob]) -> list[int]:
        """Insert jobs without unique keys; their ids, in the order of ``jobs``."""

    def insert_unique(self, cur: Cursor, job: NewJob) -> int | None:
        """Insert a job with a unique slot; its id, or None when an unclaimed job holds the
        slot; listeners are woken when an inserted job commits. The conflict target names the
        partial unique index by its predicate."""
        cur.execute(
            self.q(
                f"{INSERT}{VALUES_ROW} ON CONFLICT (unique_slot) WHERE unique_slot IS NOT NULL "
                "DO NOTHING RETURNING id"
            ),
            job,
        )
        row = cur.fetchone()
        if row is None:
            return None
        self.notify(cur, {job.queue})
        return int(row[0])

    def notify(self, cur: Cursor, queues: set[str]) -> None:
        """Wake listening workers for ``queues`` when this transaction commits (where the
        database can; :meth:`insert_one` does it by itself)."""

    def listener(self, queues: Sequence[str] | None) -> Listener:
        """A connection of its own that :meth:`notify` wakes, for ``queues`` (None: all)."""
        raise NotImplementedError(f"{self.name} cannot wake workers; they poll (see listens)")

    # -- the claim cycle --------------------------------------------------------------------------

    @abstractmethod
    def claim(
        self, cur: Cursor, token: str, now: float, limit: int, queues: Sequence[str]
    ) -> list[Claimed]:
        """Claim up to ``limit`` due jobs of ``queues`` (all when empty) under ``token``,
        atomically: no two transactions ever get the same job."""

    def claim_ids(self, cur: Cursor, token: str, now: float, ids: Sequence[int]) -> list[Claimed]:
        """Claim those of the jobs ``ids`` that are due and unclaimed under ``token`` (the jobs
        a request dispatched to run right after its response), in the order of ``ids``."""
        cur.execute(
            self.q(
                f"UPDATE {JOBS} SET {CLAIM_SET} WHERE id IN ({marks(len(ids))}) "
                f"AND {due_where(0)} RETURNING {', '.join(CLAIM_COLUMNS)}"
            ),
            (token, now, now, *ids, now),
        )
        return in_order(claimed(cur, cur.fetchall(), token), ids)

    def holds_write_lock(self, raw: Any) -> bool:
        """Whether the app's driver connection ``raw`` may, in its open transaction, hold a
        lock that keeps every other connection from writing (so reqrunner must not wait for
        one of its own). Only SQLite has such a lock."""
        return False

    def identity(self, cur: Cursor) -> tuple[object, ...]:
        """What tells this database apart from every other one the process could reach, read
        through ``cur`` (any connection to it, whatever URL reached it), so that a dispatch on
        an app's own connection can refuse one to another database."""
        raise NotImplementedError(f"{self.name} cannot tell its databases apart")

    def own_identity(self) -> tuple[object, ...]:
        """:meth:`identity` of the database this dialect's engine reaches."""
        connection, cur = self.begin(write=False)
        try:
            return self.identity(cur)
        finally:
            self.end(connection, commit=False)

    def expired(self) -> str:
        """Reserved jobs whose lease ran out. Parameters: now, limit."""
        return self.q(
            f"SELECT id, name, token, attempts, max_attempts, history FROM {JOBS} "
            f"WHERE state = 'reserved' AND reserved_until < ? LIMIT ?{self.row_lock}"
        )

    def delete_done(self, ids: int) -> str:
        """Parameters: token, ids…"""
        return self.q(f"DELETE FROM {JOBS} WHERE token = ? AND id IN ({marks(ids)})")

    def keep_done(self, ids: int) -> str:
        """Parameters: now, token, ids…"""
        return self.q(
            f"UPDATE {JOBS} SET state = 'done', finished_at = ?, token = NULL, "
            f"reserved_until = NULL WHERE token = ? AND id IN ({marks(ids)})"
        )

    # -- pruning ----------------------------------------------------------------------------------

    def prune_batch(self, cur: Cursor, state: str, before: float, limit: int) -> int:
        """Delete up to ``limit`` ``state`` jobs that finished before ``before``, oldest first,
        through the finished index; how many were deleted."""
        cur.execute(
            self.q(
                f"DELETE FROM {JOBS} WHERE id IN (SELECT id FROM {JOBS} WHERE state = ? "
                "AND finished_at IS NOT NULL AND finished_at < ? ORDER BY finished_at LIMIT ?)"
            ),
            (state, before, limit),
        )
        return int(cur.rowcount)

    def after_prune(self, removed: int) -> None:
        """Give back what a prune of ``removed`` rows left behind (nothing by default)."""

    # -- upserts ----------------------------------------------------------------------------------

    def upsert_meta(self) -> str:
        """Set a meta value, inserting or replacing. Parameters: name, value."""
        return self.q(
            "INSERT INTO reqrunner_meta (name, value) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value"
        )

    def add_to(self, table: str, keys: tuple[str, ...]) -> str:
        """Add to a counter row of ``table`` (its key columns ``keys``, its count ``n``),
        inserting the row if it is missing. Parameters: the keys, then n."""
        names = ", ".join(keys)
        return self.q(
            f"INSERT INTO {table} ({names}, n) VALUES ({marks(len(keys) + 1)}) "
            f"ON CONFLICT ({names}) DO UPDATE SET n = {table}.n + excluded.n"
        )

    # -- what a health check asks -------------------------------------------------------------

    def local_file(self) -> str | None:
        """The database's file on this machine, for a file-based database; ``None`` otherwise."""
        return None

    def journal_mode(self, cur: Cursor) -> str | None:
        """The file database's journal mode (``wal``); ``None`` where there is no such thing."""
        return None

    def database_size(self, cur: Cursor) -> int | None:
        """Bytes the job database takes, as the database counts them (``None``: unknown)."""
        return None

    def insert_ignore(self, table: str, columns: str) -> str:
        """Insert one row unless its primary key exists; rowcount says which."""
        values = marks(columns.count(",") + 1)
        return self.q(f"INSERT INTO {table} ({columns}) VALUES ({values}) ON CONFLICT DO NOTHING")
