"""The hot statements, written once with ``?`` placeholders, and their per-dialect forms.

SQLAlchemy creates the schema and resolves the dialect; the statements a runner executes
thousands of times a second go to the driver directly, because Core's per-call cost is several
times the cost of the statement itself on SQLite (measured with bench/throughput.py).
Every difference between SQLite, PostgreSQL and MySQL/MariaDB is in this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

__all__ = ["CLAIM_COLUMNS", "INSERT_COLUMNS", "DialectSQL", "for_dialect"]

JOBS = "reqrunner_jobs"

#: Columns a claim returns, in this order (see ``store.Claimed``).
CLAIM_COLUMNS = (
    "id, name, queue, payload, attempts, max_attempts, ttr, backoff, priority, available_at, "
    "history"
)

#: Columns a dispatch writes, in this order.
INSERT_COLUMNS = (
    "name",
    "queue",
    "state",
    "priority",
    "payload",
    "available_at",
    "attempts",
    "max_attempts",
    "ttr",
    "backoff",
    "unique_slot",
    "unique_key",
    "created_at",
)

#: PostgreSQL types of INSERT_COLUMNS, for ``insert_arrays``.
_PG_TYPES = (
    "text", "text", "text", "int", "text", "float8", "int", "int", "float8", "float8", "text",
    "text", "float8",
)  # fmt: skip
_VALUES_ROW = "(" + ", ".join("?" for _ in INSERT_COLUMNS) + ")"
_INSERT = f"INSERT INTO {JOBS} ({', '.join(INSERT_COLUMNS)}) VALUES "

_CLAIM_SET = (
    "state = 'reserved', token = ?, attempts = attempts + 1, reserved_until = ? + ttr, "
    "started_at = ?, unique_slot = NULL"
)
_DUE = "state = 'waiting' AND available_at <= ?"
_ORDER = "ORDER BY priority DESC, available_at, id"


@dataclass(frozen=True, slots=True)
class DialectSQL:
    """The statements of one dialect, placeholders already in the driver's style."""

    name: str
    """``"sqlite"``, ``"postgresql"`` or ``"mysql"``."""
    placeholder: str

    def q(self, sql: str) -> str:
        """Return ``sql`` with its ``?`` placeholders in this driver's style."""
        return sql if self.placeholder == "?" else sql.replace("?", self.placeholder)

    @property
    def returning(self) -> bool:
        """Whether ``UPDATE … RETURNING`` exists (MariaDB has it only for INSERT and DELETE)."""
        return self.name != "mysql"

    def insert(self, rows: int, *, returning: bool) -> str:
        sql = _INSERT + ", ".join([_VALUES_ROW] * rows)
        if returning and self.name != "mysql":
            sql += " RETURNING id"
        return self.q(sql)

    def insert_one(self) -> str:
        """Insert one job, returning its id; on PostgreSQL also NOTIFY channel ``reqrunner``
        (delivered at commit) so that LISTENing workers wake."""
        if self.name == "postgresql":
            return self.q(
                f"WITH ins AS ({_INSERT}{_VALUES_ROW} RETURNING id, queue) "
                "SELECT id, pg_notify('reqrunner', queue) FROM ins"
            )
        return self.insert(1, returning=self.name != "mysql")

    def insert_arrays(self) -> str:
        """PostgreSQL: insert any number of jobs from one array per column, returning ids."""
        arrays = ", ".join(f"%s::{kind}[]" for kind in _PG_TYPES)
        return f"{_INSERT.removesuffix(' VALUES ')} SELECT * FROM unnest({arrays}) RETURNING id"

    def insert_unique(self) -> str:
        """Insert one job unless an unclaimed job holds its unique slot."""
        if self.name == "mysql":
            # A duplicate raises IntegrityError 1062 and the caller looks the holder up; INSERT
            # IGNORE would also swallow unrelated errors such as truncation.
            return self.insert(1, returning=False)
        # The conflict target names the partial unique index by its predicate.
        return self.q(
            f"{_INSERT}{_VALUES_ROW} ON CONFLICT (unique_slot) WHERE unique_slot IS NOT NULL "
            "DO NOTHING RETURNING id"
        )

    def claim(self, queues: int) -> str:
        """Claim up to ``?`` due jobs. Parameters: token, now, now, [now, queues…, limit]."""
        where = _DUE + _queue_filter(queues)
        if self.name == "sqlite":
            # One UPDATE inside BEGIN IMMEDIATE: the write lock is taken before the rows are
            # chosen, so two runners can never pick the same job.
            inner = f"SELECT id FROM {JOBS} WHERE {where} {_ORDER} LIMIT ?"
            return self.q(
                f"UPDATE {JOBS} SET {_CLAIM_SET} WHERE id IN ({inner}) RETURNING {CLAIM_COLUMNS}"
            )
        if self.name == "postgresql":
            # ``id = ANY(ARRAY(…))`` keeps the index plan once psycopg prepares the statement;
            # ``id IN (… LIMIT $n)`` flips to a seq scan + hash join under a generic plan.
            inner = f"SELECT id FROM {JOBS} WHERE {where} {_ORDER} LIMIT ? FOR UPDATE SKIP LOCKED"
            return self.q(
                f"UPDATE {JOBS} SET {_CLAIM_SET} WHERE id = ANY(ARRAY({inner})) "
                f"RETURNING {CLAIM_COLUMNS}"
            )
        return self.q(
            f"SELECT {CLAIM_COLUMNS} FROM {JOBS} WHERE {where} {_ORDER} LIMIT ? "
            "FOR UPDATE SKIP LOCKED"
        )

    def mark_claimed(self, ids: int) -> str:
        """MySQL's second claim step. Parameters: token, now, now, ids…"""
        return self.q(f"UPDATE {JOBS} SET {_CLAIM_SET} WHERE id IN ({_marks(ids)})")

    def expired(self) -> str:
        """Reserved jobs whose lease ran out. Parameters: now, limit."""
        lock = "" if self.name == "sqlite" else " FOR UPDATE SKIP LOCKED"
        return self.q(
            f"SELECT id, name, token, attempts, max_attempts, history FROM {JOBS} "
            f"WHERE state = 'reserved' AND reserved_until < ? LIMIT ?{lock}"
        )

    def delete_done(self, ids: int) -> str:
        """Parameters: token, ids…"""
        return self.q(f"DELETE FROM {JOBS} WHERE token = ? AND id IN ({_marks(ids)})")

    def keep_done(self, ids: int) -> str:
        """Parameters: now, token, ids…"""
        return self.q(
            f"UPDATE {JOBS} SET state = 'done', finished_at = ?, token = NULL, "
            f"reserved_until = NULL WHERE token = ? AND id IN ({_marks(ids)})"
        )

    def upsert_meta(self) -> str:
        if self.name == "mysql":
            return self.q(
                "INSERT INTO reqrunner_meta (name, value) VALUES (?, ?) "
                "ON DUPLICATE KEY UPDATE value = VALUES(value)"
            )
        return self.q(
            "INSERT INTO reqrunner_meta (name, value) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value"
        )

    def add_counter(self) -> str:
        """Add to an outcome counter. Parameters: bucket, outcome, n."""
        head = "INSERT INTO reqrunner_counters (bucket, outcome, n) VALUES (?, ?, ?) "
        if self.name == "mysql":
            return self.q(head + "ON DUPLICATE KEY UPDATE n = n + VALUES(n)")
        return self.q(
            head
            + "ON CONFLICT (bucket, outcome) DO UPDATE SET n = reqrunner_counters.n + excluded.n"
        )

    def insert_ignore(self, table: str, columns: str) -> str:
        """Insert one row unless its primary key exists; rowcount says which."""
        marks = _marks(columns.count(",") + 1)
        if self.name == "mysql":
            return self.q(f"INSERT IGNORE INTO {table} ({columns}) VALUES ({marks})")
        return self.q(f"INSERT INTO {table} ({columns}) VALUES ({marks}) ON CONFLICT DO NOTHING")


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def _queue_filter(queues: int) -> str:
    return f" AND queue IN ({_marks(queues)})" if queues else ""


@lru_cache(maxsize=8)
def for_dialect(name: str) -> DialectSQL:
    """The statements for a SQLAlchemy dialect name (``mariadb`` counts as ``mysql``)."""
    if name == "sqlite":
        return DialectSQL("sqlite", "?")
    if name == "postgresql":
        return DialectSQL("postgresql", "%s")
    if name in ("mysql", "mariadb"):
        return DialectSQL("mysql", "%s")
    raise ValueError(
        f"reqrunner supports SQLite, PostgreSQL and MySQL/MariaDB, not {name!r}; "
        "use a URL such as sqlite:///jobs.sqlite3 or postgresql+psycopg://user@host/db"
    )
