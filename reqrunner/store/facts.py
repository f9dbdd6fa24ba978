"""What the job database can say about itself, for a health check: its file (if it is one),
journal mode, size, schema version and how long a write waits for the lock now.

Read through the dialect, so nothing here asks which database it talks to.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .database import Database
from .layout import SCHEMA_VERSION

__all__ = ["StorageFacts", "storage_facts"]

LOCK_SAMPLES = 3
"""Empty write transactions timed: the slowest says whether writers queue for the lock."""


@dataclass(frozen=True, kw_only=True, slots=True)
class StorageFacts:
    """One look at the job database."""

    file: str | None
    """The database file on this machine (SQLite), else ``None``."""
    journal_mode: str | None
    size: int | None
    """Bytes, as the database counts them."""
    schema_version: int | None
    """The version stored in the database; ``None`` before the tables exist."""
    supported_version: int
    """The newest schema version this reqrunner understands."""
    lock_wait: float
    """Seconds the slowest of a few empty write transactions took (waiting for the lock)."""


def storage_facts(db: Database) -> StorageFacts:
    """Look at ``db`` (a few reads and empty writes; raises ``StoreError`` when unreachable)."""
    dialect = db.dialect
    with db.read() as cur:
        cur.execute(
            dialect.q("SELECT value FROM reqrunner_meta WHERE name = ?"), ("schema_version",)
        )
        row = cur.fetchone()
        journal = dialect.journal_mode(cur)
        size = dialect.database_size(cur)
    slowest = 0.0
    for _ in range(LOCK_SAMPLES):
        started = time.perf_counter()
        with db.write():
            pass
        slowest = max(slowest, time.perf_counter() - started)
    return StorageFacts(
        file=dialect.local_file(),
        journal_mode=journal,
        size=size,
        schema_version=None if row is None else int(row[0]),
        supported_version=SCHEMA_VERSION,
        lock_wait=slowest,
    )
