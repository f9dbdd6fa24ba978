"""One class per database reqrunner supports, behind the interface of :class:`Dialect`.

:func:`for_target` gives the dialect of a job database; :func:`for_dialect` the class serving a
SQLAlchemy backend name, or a ValueError saying which databases reqrunner supports. How to add
a database is told in ``base.py``. Each class's module is imported when first asked for, so a
process loads only the dialect it uses (and PostgreSQL's or MySQL's SQL nowhere else).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .base import Dialect
from .shared import CLAIM_COLUMNS, INSERT_COLUMNS, JOBS, Cursor, Listener, fetch_records

if TYPE_CHECKING:
    from ..target import Target
    from .mysql import MySQLDialect
    from .postgres import PostgresDialect
    from .sqlite import SqliteDialect

    DIALECTS: tuple[type[Dialect], ...]

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
    "for_target",
]

#: Each dialect class by the module that defines it.
_MODULES = {"SqliteDialect": ".sqlite", "PostgresDialect": ".postgres", "MySQLDialect": ".mysql"}

#: The class serving each SQLAlchemy backend name (its ``backends``; a test keeps them equal).
_BY_BACKEND = {
    "sqlite": "SqliteDialect",
    "postgresql": "PostgresDialect",
    "postgres": "PostgresDialect",
    "mysql": "MySQLDialect",
    "mariadb": "MySQLDialect",
}


def __getattr__(name: str) -> Any:
    # DIALECTS: every dialect reqrunner has (which imports them all).
    if name == "DIALECTS":
        return tuple(__getattr__(each) for each in _MODULES)
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    found = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = found
    return found


def for_dialect(backend: str) -> type[Dialect]:
    """The class serving a SQLAlchemy backend name (``engine.dialect.name``)."""
    found = _BY_BACKEND.get(backend)
    if found is None:
        raise ValueError(
            f"reqrunner supports SQLite, PostgreSQL and MySQL/MariaDB, not {backend!r}; "
            "use a URL such as sqlite:///jobs.sqlite3 or postgresql+psycopg://user@host/db"
        )
    cls: type[Dialect] = __getattr__(found)
    return cls


def for_target(target: Target, *, busy_timeout: float = 5.0) -> Dialect:
    """The dialect for the job database ``target``; ``busy_timeout``: seconds a SQLite write
    waits for another writer."""
    return for_dialect(target.backend)(target, busy_timeout=busy_timeout)
