"""One class per database reqrunner supports, behind the interface of :class:`Dialect`.

:func:`for_engine` gives the dialect of an engine; :func:`for_dialect` the class serving a
SQLAlchemy backend name, or a ValueError saying which databases reqrunner supports. How to add
a database is told in ``base.py``.
"""

from __future__ import annotations

from sqlalchemy.engine import Engine

from .base import Dialect
from .mysql import MySQLDialect
from .postgres import PostgresDialect
from .shared import CLAIM_COLUMNS, INSERT_COLUMNS, JOBS, Cursor, Listener, fetch_records
from .sqlite import SqliteDialect

__all__ = [
    "CLAIM_COLUMNS",
    "DIALECTS",
    "INSERT_COLUMNS",
    "JOBS",
    "Cursor",
    "Dialect",
    "Listener",
    "MySQLDialect",
    "PostgresDialect",
    "SqliteDialect",
    "fetch_records",
    "for_dialect",
    "for_engine",
]

#: Every dialect reqrunner has.
DIALECTS: tuple[type[Dialect], ...] = (SqliteDialect, PostgresDialect, MySQLDialect)

_BY_BACKEND = {backend: cls for cls in DIALECTS for backend in cls.backends}


def for_dialect(backend: str) -> type[Dialect]:
    """The class serving a SQLAlchemy backend name (``engine.dialect.name``)."""
    found = _BY_BACKEND.get(backend)
    if found is None:
        raise ValueError(
            f"reqrunner supports SQLite, PostgreSQL and MySQL/MariaDB, not {backend!r}; "
            "use a URL such as sqlite:///jobs.sqlite3 or postgresql+psycopg://user@host/db"
        )
    return found


def for_engine(engine: Engine, *, busy_timeout: float = 5.0) -> Dialect:
    """The dialect for ``engine``; ``busy_timeout``: seconds a SQLite write waits for another
    writer."""
    return for_dialect(engine.dialect.name)(engine, busy_timeout=busy_timeout)
