"""What the job database must hold, as plain names: tables, their columns and indexes, and the
schema version; and the look that tells whether a database holds all of it.

``schema.py`` declares the same tables in SQLAlchemy Core, which is what creates them; importing
SQLAlchemy is most of a fresh interpreter's start, so opening a database that is already
complete is checked against these names instead (a test keeps the two the same).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .dialects import Cursor, Dialect

__all__ = ["INDEXES", "REPLACED_INDEXES", "SCHEMA_VERSION", "TABLES", "is_current"]

SCHEMA_VERSION = 1

#: Every table, with its columns in the order ``schema.py`` declares them.
TABLES: dict[str, tuple[str, ...]] = {
    "reqrunner_counters": ("bucket", "outcome", "n"),
    "reqrunner_jobs": (
        "id", "name", "queue", "state", "priority", "payload", "available_at", "attempts",
        "max_attempts", "ttr", "backoff", "token", "reserved_until", "unique_slot",
        "unique_hash", "unique_key", "progress", "label", "description", "error_type",
        "error_message", "error_traceback", "history", "created_at", "started_at",
        "finished_at",
    ),
    "reqrunner_leases": ("name", "token", "expires_at", "holder"),
    "reqrunner_meta": ("name", "value"),
    "reqrunner_periodic": ("name", "slot", "job_id", "taken_at", "outcome"),
    "reqrunner_states": ("state", "shard", "n"),
    "reqrunner_results": (
        "job_id", "name", "queue", "state", "priority", "payload", "attempts", "max_attempts",
        "value", "error_type", "error_message", "error_traceback", "history", "description",
        "unique_key", "created_at", "started_at", "finished_at", "expires_at",
    ),
}  # fmt: skip

#: The indexes of each table that has any.
INDEXES: dict[str, tuple[str, ...]] = {
    "reqrunner_jobs": (
        "ix_reqrunner_jobs_claim",
        "ix_reqrunner_jobs_waiting",
        "ix_reqrunner_jobs_finished",
        "ux_reqrunner_jobs_unique_slot",
    ),
    "reqrunner_results": ("ix_reqrunner_results_expires", "ix_reqrunner_results_unique_key"),
}

#: Indexes an older reqrunner made that a newer one replaced, and their tables: dropped when
#: the schema is brought up to date (each costs every write as much as a useful one).
REPLACED_INDEXES: dict[str, str] = {"ix_reqrunner_jobs_due": "reqrunner_jobs"}


def is_current(dialect: Dialect, cur: Cursor) -> bool:
    """Whether the database ``cur`` reads holds every table, column and index, and says it has
    this schema version: then nothing is to be created. Reads only, and takes no lock (a
    database still being created by another process lacks its version row until it is
    complete, that row being written last)."""
    if not TABLES.keys() <= dialect.existing_tables(cur):
        return False
    wanted = {index for names in INDEXES.values() for index in names}
    present = dialect.existing_indexes(cur)
    if not wanted <= present or present & REPLACED_INDEXES.keys():
        return False
    for table, columns in TABLES.items():
        cur.execute(f"SELECT * FROM {table} WHERE 1 = 0")
        if not {str(column[0]).lower() for column in cur.description or ()} >= set(columns):
            return False
    cur.execute(dialect.q("SELECT value FROM reqrunner_meta WHERE name = ?"), ("schema_version",))
    row = cur.fetchone()
    return row is not None and int(row[0]) == SCHEMA_VERSION
