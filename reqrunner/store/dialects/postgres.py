"""PostgreSQL through psycopg 3: row locks with SKIP LOCKED, and LISTEN/NOTIFY to wake workers.

Every dispatch sends ``NOTIFY reqrunner, '<queue>'`` in its transaction (delivered when, and
only if, it commits), so a worker LISTENing on channel ``reqrunner`` wakes at once instead of
polling. A single dispatch is one statement in autocommit (the INSERT and its NOTIFY together):
one round trip, where BEGIN, INSERT and COMMIT were three. Many jobs are copied in with
``COPY … FROM STDIN`` in binary, which psycopg formats in C.

Given a URL, the dialect keeps its own pool of psycopg connections (``store/pool.py``) and
never loads SQLAlchemy unless the tables must be created or ``queue.engine`` is asked for;
given an engine, it takes the engine's connections.
"""

from __future__ import annotations

import random
import select
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING, Any

from ..pool import Pool
from ..records import Claimed, NewJob
from .base import Dialect
from .shared import (
    CLAIM_COLUMNS,
    CLAIM_ORDER,
    CLAIM_SET,
    DUE_LIMIT,
    INSERT,
    JOBS,
    STATES,
    VALUES_ROW,
    Cursor,
    claimed,
    driver_error,
    due_where,
    missing_driver,
)

if TYPE_CHECKING:
    import sqlalchemy as sa
    from sqlalchemy.engine import URL

    from ..target import Target

__all__ = ["PostgresDialect", "PostgresListener"]

CHANNEL = "reqrunner"

#: libpq's CONNECTION_OK (psycopg.pq.ConnStatus.OK), named here so that this module does not
#: import psycopg before a PostgreSQL connection exists.
_CONNECTION_OK = 0

#: PostgreSQL types of the inserted columns, for the binary COPY of many jobs.
_TYPES = {
    "name": "text", "queue": "text", "state": "text", "priority": "int4", "payload": "text",
    "available_at": "float8", "attempts": "int4", "max_attempts": "int4", "ttr": "float8",
    "backoff": "float8", "unique_slot": "text", "unique_key": "text", "created_at": "float8",
}  # fmt: skip

#: admin_shutdown, crash_shutdown, cannot_connect_now (the connection exceptions are class 08)
_GONE_STATES = frozenset({"57P01", "57P02", "57P03"})

#: deadlock_detected, serialization_failure, lock_not_available
_RETRY_STATES = frozenset({"40P01", "40001", "55P03"})

#: What psycopg and libpq say, with no SQLSTATE, when the connection is gone: psycopg's own
#: checks ("the connection is closed", "the connection is lost"), and libpq's reading or
#: sending on a socket the server closed, or SSL over it.
_GONE_MESSAGES = (
    "the connection is closed",
    "the connection is lost",
    "closed the connection",
    "terminating connection",
    "could not receive data from server",
    "could not send data to server",
    "SSL SYSCALL error",
    "SSL error",
)


def _psycopg() -> Any:
    # psycopg is the optional "postgres" extra: only a PostgreSQL queue needs it.
    try:
        import psycopg  # noqa: PLC0415
    except ModuleNotFoundError as exc:
        raise missing_driver(exc, "postgresql", "psycopg", "postgres") from exc
    return psycopg


class PostgresDialect(Dialect):
    """PostgreSQL 12 or later."""

    name = "postgresql"
    backends = ("postgresql", "postgres")
    placeholder = "%s"
    extra = "postgres"
    listens = True
    counts_inserts = True

    @classmethod
    def resolve_url(cls, url: URL) -> URL:
        # "postgres://" is what many hosts hand out; SQLAlchemy knows only "postgresql".
        if url.drivername in ("postgresql", "postgres"):
            return url.set(drivername="postgresql+psycopg")
        return url

    def __init__(self, target: Target, *, busy_timeout: float = 5.0) -> None:
        super().__init__(target, busy_timeout=busy_timeout)
        # The job's count and the NOTIFY ride on the INSERT: one statement, so it needs no
        # transaction around it; a unique job that finds its slot taken inserts no row, and so
        # counts nothing and notifies no one. Parameters: the job's, then the count's shard.
        notified = (
            f"RETURNING id, queue, state), counted AS (INSERT INTO {STATES} (state, shard, n) "
            "SELECT state, ?, 1 FROM ins ON CONFLICT (state, shard) DO UPDATE "
            f"SET n = {STATES}.n + excluded.n) SELECT id, pg_notify('{CHANNEL}', queue) FROM ins"
        )
        self._insert_one = self.q(f"WITH ins AS ({INSERT}{VALUES_ROW} {notified}")
        self._insert_unique = self.q(
            f"WITH ins AS ({INSERT}{VALUES_ROW} ON CONFLICT (unique_slot) "
            f"WHERE unique_slot IS NOT NULL DO NOTHING {notified}"
        )
        # COPY returns no ids: they are drawn from the column's sequence first, in one query.
        # The sequence is looked up once (MATERIALIZED): called per row, the look-up took ten
        # times as long as the nextval() calls.
        self._next_ids = (
            f"WITH s AS MATERIALIZED (SELECT pg_get_serial_sequence('{JOBS}', 'id')::regclass "
            "AS seq) SELECT nextval(s.seq) FROM s, generate_series(1, %s)"
        )
        self._copy = f"COPY {JOBS} (id, {', '.join(NewJob._fields)}) FROM STDIN (FORMAT BINARY)"

    def own_pool(self) -> Pool[Any] | None:
        args = self.target.connect_args
        if args is None:
            return None
        return Pool(partial(_psycopg().connect, **args))

    def error_classes(
        self,
    ) -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
        if self.pool is None:
            return super().error_classes()
        # reqrunner's own connections raise psycopg's errors, never SQLAlchemy's.
        psycopg = _psycopg()
        return (psycopg.Error,), (psycopg.IntegrityError,)

    def is_deadlock(self, exc: BaseException | None) -> bool:
        return getattr(driver_error(exc), "sqlstate", None) in _RETRY_STATES

    # A pre-ping is a round trip per transaction (a fifth of a dispatch); an idle connection
    # the server has closed is told by its socket instead, and a connection lost after that
    # check costs its transaction one retry (Database.write_retrying).
    pre_ping = False

    def begin_single(self) -> tuple[Any, Cursor]:
        raw, cur = self.begin(write=True)
        try:
            # Local to psycopg (no round trip); end() turns it off again.
            raw.driver_connection.autocommit = True
        except BaseException:
            raw.close()
            raise
        return raw, cur

    def end(self, connection: Any, *, commit: bool) -> None:
        driver = connection.driver_connection
        if driver is not None and driver.autocommit:
            # The pool may be the app's (JobQueue(engine)): its connection goes back to it in
            # a transaction's mode, as it came. psycopg refuses only when the session is not
            # idle, which an autocommit statement leaves it only when the connection is lost.
            try:
                driver.autocommit = False
            except self.driver_errors:
                connection.invalidate()
                connection.close()
                raise
        super().end(connection, commit=commit)

    def is_disconnect(self, exc: BaseException | None) -> bool:
        error = driver_error(exc)
        state = getattr(error, "sqlstate", None)
        if state is not None:
            return state in _GONE_STATES or state.startswith("08")
        # An error psycopg raised itself (no SQLSTATE): a connection it found gone says so.
        psycopg = sys.modules.get("psycopg")
        if (
            psycopg is not None
            and isinstance(error, psycopg.OperationalError)
            and any(message in str(error) for message in _GONE_MESSAGES)
        ):
            return True
        return self.pool is None and super().is_disconnect(exc)

    def stale(self, raw: Any) -> bool:
        conn = raw.driver_connection
        if conn is None or conn.closed or conn.pgconn.status != _CONNECTION_OK:
            return True
        # An idle connection has nothing to read: data waiting means the server spoke first,
        # which it does when it ends the session (a FATAL message, then EOF).
        readable, _, _ = select.select([conn.pgconn.socket], [], [], 0)
        return bool(readable)

    # -- schema -----------------------------------------------------------------------------------

    @contextmanager
    def schema_lock(self, cur: Cursor) -> Iterator[None]:
        # Released by the transaction's end, whichever way it ends.
        cur.execute("SELECT pg_advisory_xact_lock(72616963)")
        yield

    def existing_tables(self, cur: Cursor) -> set[str]:
        cur.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
        return {str(name) for (name,) in cur.fetchall()}

    def existing_indexes(self, cur: Cursor) -> set[str]:
        cur.execute("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")
        return {str(name) for (name,) in cur.fetchall()}

    def table_options(self, table: sa.Table, options: dict[str, Any]) -> str:
        storage = options.get("with")
        if not storage:
            return ""
        return " WITH (" + ", ".join(f"{key} = {value}" for key, value in storage.items()) + ")"

    # -- dispatch ---------------------------------------------------------------------------------

    def insert_one(self, cur: Cursor, job: NewJob) -> int:
        cur.execute(self._insert_one, (*job, random.randrange(self.count_shards)))
        return int(cur.fetchone()[0])

    def insert_unique(self, cur: Cursor, job: NewJob) -> int | None:
        cur.execute(self._insert_unique, (*job, random.randrange(self.count_shards)))
        row = cur.fetchone()
        return None if row is None else int(row[0])

    def insert_many(self, cur: Cursor, jobs: Sequence[NewJob]) -> list[int]:
        if not jobs:
            return []
        cur.execute(self._next_ids, (len(jobs),))
        # nextval() hands out increasing ids; the rows of a query come in no promised order.
        ids = sorted(int(row[0]) for row in cur.fetchall())
        # Binary COPY: no quoting or escaping of text on either side, and psycopg formats each
        # row in C; the text arrays of an INSERT … unnest() cost 2.5 times as long.
        copy_cursor: Any = cur
        with copy_cursor.copy(self._copy) as copy:
            copy.set_types(["int8", *(_TYPES[column] for column in NewJob._fields)])
            for job_id, job in zip(ids, jobs, strict=True):
                copy.write_row((job_id, *job))
        return ids

    def database_size(self, cur: Cursor) -> int | None:
        cur.execute(
            "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "WHERE c.relkind = 'r' AND c.relname LIKE 'reqrunner%'"
        )
        return int(cur.fetchone()[0])

    def notify(self, cur: Cursor, queues: set[str]) -> None:
        for name in sorted(queues):
            cur.execute(f"SELECT pg_notify('{CHANNEL}', %s)", (name,))

    def identity(self, cur: Cursor) -> tuple[object, ...]:
        # The start time tells servers apart; the database and schema, what is inside one.
        cur.execute("SELECT current_database(), current_schema(), pg_postmaster_start_time()")
        return tuple(cur.fetchone())

    def listener(self, queues: Sequence[str] | None) -> PostgresListener:
        args = self.target.connect_args
        if args is not None:
            return PostgresListener("", args, queues)
        url = self.engine.url.set(drivername="postgresql")
        return PostgresListener(url.render_as_string(hide_password=False), {}, queues)

    # -- the claim cycle --------------------------------------------------------------------------

    def claim(
        self, cur: Cursor, token: str, now: float, limit: int, queues: Sequence[str]
    ) -> list[Claimed]:
        sql = self._claims.get(len(queues))
        if sql is None:
            # ``id = ANY(ARRAY(…))`` keeps the index plan once psycopg prepares the statement;
            # ``id IN (… LIMIT $n)`` flips to a seq scan + hash join under a generic plan.
            chosen = (
                f"SELECT id FROM {JOBS} WHERE {due_where(len(queues))} {CLAIM_ORDER} "
                f"LIMIT {DUE_LIMIT} FOR UPDATE SKIP LOCKED"
            )
            sql = self._claims[len(queues)] = self.q(
                f"UPDATE {JOBS} SET {CLAIM_SET} WHERE id = ANY(ARRAY({chosen})) "
                f"RETURNING {', '.join(CLAIM_COLUMNS)}"
            )
        cur.execute(sql, (token, now, now, now, *queues, now, limit))
        return claimed(cur, cur.fetchall(), token)

    def prune_batch(self, cur: Cursor, state: str, before: float, limit: int) -> int:
        # ANY(ARRAY(…)) for the reason the claim uses it: IN (… LIMIT) flips to a seq scan
        # under a generic plan.
        cur.execute(
            f"DELETE FROM {JOBS} WHERE id = ANY(ARRAY(SELECT id FROM {JOBS} WHERE state = %s "
            "AND finished_at IS NOT NULL AND finished_at < %s ORDER BY finished_at LIMIT %s))",
            (state, before, limit),
        )
        return int(cur.rowcount)


class PostgresListener:
    """A connection of its own, in autocommit, that LISTENs on channel ``reqrunner``."""

    def __init__(self, conninfo: str, params: dict[str, Any], queues: Sequence[str] | None) -> None:
        """Connect with psycopg's ``conninfo`` and keyword ``params``."""
        self._conn: Any = _psycopg().connect(conninfo, autocommit=True, **params)
        self._conn.execute(f"LISTEN {CHANNEL}")
        self._queues = None if queues is None else set(queues)

    def fileno(self) -> int:
        return int(self._conn.pgconn.socket)

    def drain(self) -> bool:
        """Read what the server sent; whether a notification concerns our queues."""
        pgconn = self._conn.pgconn
        # The low-level calls never block: consume what the socket holds, then take the
        # notifications parsed from it.
        pgconn.consume_input()
        relevant = False
        while (notify := pgconn.notifies()) is not None:
            name = notify.extra.decode("utf-8", "replace")
            relevant = relevant or self._queues is None or name in self._queues
        return relevant

    def close(self) -> None:
        self._conn.close()
