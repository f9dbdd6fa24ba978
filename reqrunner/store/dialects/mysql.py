"""MySQL 8 and MariaDB 10.6 or later through PyMySQL (InnoDB tables).

Two differences shape this class: ``UPDATE … RETURNING`` does not exist (MariaDB has RETURNING
only for INSERT and DELETE), so a claim is a locking SELECT followed by an UPDATE, and inserted
ids come from ``lastrowid``; and InnoDB picks deadlock victims now and then, which the store
answers by running the transaction again.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import URL

from ...errors import StoreError
from ..records import Claimed, NewJob
from .base import Dialect
from .shared import (
    CLAIM_COLUMNS,
    CLAIM_ORDER,
    CLAIM_SET,
    DUE_GUARD,
    JOBS,
    Cursor,
    chunks,
    claimed,
    driver_error,
    due_where,
    in_order,
    marks,
)

if TYPE_CHECKING:
    from ..target import Target

__all__ = ["MySQLDialect"]

#: ER_LOCK_WAIT_TIMEOUT, ER_LOCK_DEADLOCK
_RETRY_ERRORS = frozenset({1205, 1213})

# The SELECT half of a claim reads the rows before the UPDATE half counts the attempt.
_CLAIM_SELECT = ", ".join(
    "attempts + 1 AS attempts" if column == "attempts" else column for column in CLAIM_COLUMNS
)


#: The schema lock's name. Named locks are the server's, not a database's: the database's name
#: in it keeps sites that share a server from waiting for each other's tables.
SCHEMA_LOCK = "LEFT(CONCAT('reqrunner_schema:', DATABASE()), 64)"


class MySQLDialect(Dialect):
    """MySQL 8 / MariaDB 10.6 (``SKIP LOCKED``)."""

    name = "mysql"
    backends = ("mysql", "mariadb")
    placeholder = "%s"
    extra = "mysql"
    schema_lock_wait: float = 30.0
    """Seconds to wait for another process creating the tables."""

    @classmethod
    def resolve_url(cls, url: URL) -> URL:
        if url.drivername in ("mysql", "mariadb"):
            return url.set(drivername=f"{url.drivername}+pymysql")
        return url

    def __init__(self, target: Target, *, busy_timeout: float = 5.0) -> None:
        super().__init__(target, busy_timeout=busy_timeout)
        self._insert_one = self.insert_sql(1, returning=False)
        self._due = self.q(f"SELECT {DUE_GUARD}")

    def use_index(self, index: str) -> str:
        return f" FORCE INDEX ({index})"

    def setup_session(self, raw: Any) -> None:
        # REPEATABLE READ's gap locks make short claim transactions block inserts and deadlock
        # each other; the claim is a locking read either way.
        cur = raw.cursor()
        cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        cur.close()

    def is_deadlock(self, exc: BaseException | None) -> bool:
        error = driver_error(exc)
        code = error.args[0] if error is not None and error.args else None  # (errno, message)
        return code in _RETRY_ERRORS

    # -- schema -----------------------------------------------------------------------------------

    @contextmanager
    def schema_lock(self, cur: Cursor) -> Iterator[None]:
        # A named lock belongs to the session, not the transaction (DDL commits implicitly).
        # GET_LOCK answers 1 when taken and 0 when the wait ran out: creating tables without it
        # would race the process that holds it.
        cur.execute(f"SELECT GET_LOCK({SCHEMA_LOCK}, %s)", (self.schema_lock_wait,))
        row = cur.fetchone()
        if row is None or row[0] != 1:
            raise StoreError(
                f"could not take the schema lock of {self!r} within {self.schema_lock_wait:g} s: "
                "another process is creating reqrunner's tables, or holds the named lock "
                "'reqrunner_schema:' followed by the database's name"
            )
        try:
            yield
        finally:
            cur.execute(f"SELECT RELEASE_LOCK({SCHEMA_LOCK})")
            cur.fetchall()

    def existing_tables(self, cur: Cursor) -> set[str]:
        cur.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()"
        )
        return {str(name) for (name,) in cur.fetchall()}

    def drop_index(self, name: str, table: str) -> str:
        return f"DROP INDEX {name} ON {table}"

    def existing_indexes(self, cur: Cursor) -> set[str]:
        cur.execute(
            "SELECT DISTINCT index_name FROM information_schema.statistics "
            "WHERE table_schema = DATABASE()"
        )
        return {str(name) for (name,) in cur.fetchall()}

    def table_options(self, table: sa.Table, options: dict[str, Any]) -> str:
        engine, charset = options.get("engine"), options.get("charset")
        return (f" ENGINE={engine}" if engine else "") + (
            f" DEFAULT CHARSET={charset}" if charset else ""
        )

    # -- dispatch ---------------------------------------------------------------------------------

    def insert_one(self, cur: Cursor, job: NewJob) -> int:
        cur.execute(self._insert_one, job)
        return int(cur.lastrowid)  # type: ignore[attr-defined]

    def insert_many(self, cur: Cursor, jobs: Sequence[NewJob]) -> list[int]:
        ids: list[int] = []
        for rows, params in chunks(jobs):
            cur.execute(self.insert_sql(rows, returning=False), params)
            # InnoDB hands a multi-row insert consecutive ids (innodb_autoinc_lock_mode 1 and 2
            # both do for a single simple INSERT), starting at lastrowid.
            first = int(cur.lastrowid)  # type: ignore[attr-defined]
            ids.extend(range(first, first + rows))
        return ids

    def insert_unique(self, cur: Cursor, job: NewJob) -> int | None:
        # A duplicate raises IntegrityError 1062 and the caller looks the holder up; INSERT
        # IGNORE would also swallow unrelated errors such as truncation.
        try:
            cur.execute(self._insert_one, job)
        except self.integrity_errors:
            return None
        return int(cur.lastrowid)  # type: ignore[attr-defined]

    def identity(self, cur: Cursor) -> tuple[object, ...]:
        cur.execute("SELECT DATABASE(), @@hostname, @@port, @@server_id")
        return tuple(cur.fetchone())

    # -- the claim cycle --------------------------------------------------------------------------

    def claim(
        self, cur: Cursor, token: str, now: float, limit: int, queues: Sequence[str]
    ) -> list[Claimed]:
        sql = self._claims.get(len(queues))
        if sql is None:
            sql = self._claims[len(queues)] = self.q(
                f"SELECT {_CLAIM_SELECT} FROM {JOBS}{self.use_index('ix_reqrunner_jobs_claim')} "
                f"WHERE {due_where(len(queues))} {CLAIM_ORDER} LIMIT ? FOR UPDATE SKIP LOCKED"
            )
        # LIMIT takes no expression here: whether anything is due is asked first, through the
        # due index, so that an empty claim does not walk the claim index through every
        # delayed job.
        cur.execute(self._due, (now,))
        due = cur.fetchone()
        if not (due and due[0]):  # no waiting job (NULL), or none due yet (0)
            return []
        cur.execute(sql, (now, *queues, limit))
        return self._take(cur, token, now)

    def claim_ids(self, cur: Cursor, token: str, now: float, ids: Sequence[int]) -> list[Claimed]:
        cur.execute(
            self.q(
                f"SELECT {_CLAIM_SELECT} FROM {JOBS} WHERE id IN ({marks(len(ids))}) "
                f"AND {due_where(0)} FOR UPDATE SKIP LOCKED"
            ),
            (*ids, now),
        )
        return in_order(self._take(cur, token, now), ids)

    def _take(self, cur: Cursor, token: str, now: float) -> list[Claimed]:
        """Claim under ``token`` the rows the locking SELECT just run on ``cur`` found."""
        rows = cur.fetchall()
        if not rows:
            return []
        jobs = claimed(cur, rows, token)
        cur.execute(
            self.q(f"UPDATE {JOBS} SET {CLAIM_SET} WHERE id IN ({marks(len(jobs))})"),
            (token, now, now, *(job.id for job in jobs)),
        )
        return jobs

    # -- pruning ----------------------------------------------------------------------------------

    def prune_batch(self, cur: Cursor, state: str, before: float, limit: int) -> int:
        # MySQL takes no LIMIT in an IN subquery and MariaDB no index hint in a DELETE (and
        # left to itself it picks the due index and sorts): the ids are chosen first.
        cur.execute(
            self.q(
                f"SELECT id FROM {JOBS}{self.use_index('ix_reqrunner_jobs_finished')} "
                "WHERE state = ? AND finished_at IS NOT NULL AND finished_at < ? "
                "ORDER BY finished_at LIMIT ?"
            ),
            (state, before, limit),
        )
        ids = [int(row[0]) for row in cur.fetchall()]
        if not ids:
            return 0
        cur.execute(self.q(f"DELETE FROM {JOBS} WHERE id IN ({marks(len(ids))})"), ids)
        return int(cur.rowcount)

    # -- upserts ----------------------------------------------------------------------------------

    def database_size(self, cur: Cursor) -> int | None:
        cur.execute(
            "SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables "
            "WHERE table_schema = DATABASE() AND table_name LIKE 'reqrunner%'"
        )
        return int(cur.fetchone()[0])

    def upsert_meta(self) -> str:
        return self.q(
            "INSERT INTO reqrunner_meta (name, value) VALUES (?, ?) "
            "ON DUPLICATE KEY UPDATE value = VALUES(value)"
        )

    def add_to(self, table: str, keys: tuple[str, ...]) -> str:
        return self.q(
            f"INSERT INTO {table} ({', '.join(keys)}, n) VALUES ({marks(len(keys) + 1)}) "
            "ON DUPLICATE KEY UPDATE n = n + VALUES(n)"
        )

    def insert_ignore(self, table: str, columns: str) -> str:
        return self.q(
            f"INSERT IGNORE INTO {table} ({columns}) VALUES ({marks(columns.count(',') + 1)})"
        )
