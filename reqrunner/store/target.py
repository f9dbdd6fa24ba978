"""Which job database a queue was given, and its SQLAlchemy engine, made when first needed.

A SQLite queue works from the file's path alone (its dialect opens its own ``sqlite3``
connections), and a PostgreSQL queue from psycopg's connection arguments (its dialect pools
its own connections). Importing SQLAlchemy is most of a fresh interpreter's start, and a third
of an idle worker's memory: so the plain SQLite and PostgreSQL URLs sites are given are read
here without it, and the engine is built only when something asks for it (``queue.engine``,
creating the tables). Every other URL (another driver, MySQL, an address this reading does not
take apart the way SQLAlchemy would) is read by SQLAlchemy and gets its engine at once, whose
pool the dialect then uses.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote

from .dialects import Dialect, for_dialect
from .dialects.shared import missing_driver

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Engine

__all__ = ["DEFAULT_SQLITE_FILE", "Target", "resolve"]

DEFAULT_SQLITE_FILE = "reqrunner.sqlite3"

# What SQLAlchemy's own parser makes of these is a driver name and an unquoted database path,
# nothing else (the tests compare the two readings).
_PLAIN_SQLITE = re.compile(r"(sqlite(?:\+pysqlite)?)://(?:/([^?]*))?", re.DOTALL)

# The PostgreSQL URLs read here: psycopg's (the driver a URL naming none gets), a user and
# password without "/", "?" or "@", a host name or address (no IPv6 brackets, no list of
# hosts), a numeric port. Anything else goes to SQLAlchemy, whose reading then applies.
_PLAIN_POSTGRES = re.compile(
    r"(?:postgres|postgresql|postgresql\+psycopg)://"
    r"(?:(?P<user>[^:/?#@]*)(?::(?P<password>[^/?#@]*))?@)?"
    r"(?P<host>[^:/?#@\[\]]*)(?::(?P<port>[0-9]+))?"
    r"(?:/(?P<database>[^?#@]*))?"
    r"(?:\?(?P<query>[^#@]*))?",
    re.DOTALL,
)

_BUILDING = threading.Lock()


class Target:
    """A job database: its SQLAlchemy backend name, its database (a SQLite file's path), its
    URL, and its engine, given or made on first use."""

    __slots__ = ("_engine", "_make", "_url", "backend", "connect_args", "database", "safe_url")

    def __init__(
        self,
        backend: str,
        database: str | None,
        url: str,
        safe_url: str,
        *,
        engine: Engine | None = None,
        make: Callable[[], Engine] | None = None,
        connect_args: dict[str, Any] | None = None,
    ) -> None:
        self.backend = backend
        """The SQLAlchemy backend name (``sqlite``, ``postgresql``, ``mysql``, ``mariadb``)."""
        self.database = database
        """The URL's database: for SQLite the file."""
        self.safe_url = safe_url
        """The URL with any password hidden."""
        self.connect_args = connect_args
        """The driver's keyword arguments for a connection, where the URL was read without
        SQLAlchemy for a dialect that connects by itself; None: connect through the engine."""
        self._url = url
        self._engine = engine
        self._make = make

    @classmethod
    def of_engine(cls, engine: Engine) -> Target:
        """The database an engine reaches."""
        url = engine.url
        return cls(
            engine.dialect.name,
            url.database,
            url.render_as_string(hide_password=False),
            url.render_as_string(hide_password=True),
            engine=engine,
        )

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, built now if it was not yet."""
        if self._engine is None:
            # Under a lock: two threads asking at once must get the same engine.
            with _BUILDING:
                if self._engine is None:
                    assert self._make is not None
                    self._engine = self._make()
        return self._engine

    @property
    def has_engine(self) -> bool:
        """Whether the engine exists yet (asking :attr:`engine` would not build one)."""
        return self._engine is not None

    def same_as(self, other: Target) -> bool:
        """Whether ``other`` names this database by the same URL (password included)."""
        return self._url == other._url

    def dispose(self) -> None:
        """Close the engine's pooled connections, if it has an engine."""
        if self._engine is not None:
            self._engine.dispose()

    def __repr__(self) -> str:
        return f"<Target {self.safe_url}>"


def resolve(url_or_engine: str | Engine | Target | None) -> Target:
    """The database for ``JobQueue(url_or_engine)``.

    ``None`` means ``REQRUNNER_DATABASE_URL``, else the SQLite file ``./reqrunner.sqlite3``.
    A URL naming no driver gets the one reqrunner is tested with: psycopg 3 for PostgreSQL,
    PyMySQL for MySQL and MariaDB.
    """
    if isinstance(url_or_engine, Target):
        return url_or_engine
    if url_or_engine is None:
        url_or_engine = os.environ.get("REQRUNNER_DATABASE_URL") or (
            "sqlite:///" + str(Path(DEFAULT_SQLITE_FILE).resolve())
        )
    if isinstance(url_or_engine, str):
        return (
            _sqlite_file(url_or_engine)
            or _postgres_server(url_or_engine)
            or Target.of_engine(_engine_for(url_or_engine))
        )
    from sqlalchemy.engine import Engine  # noqa: PLC0415 (one was given: it is loaded)

    if isinstance(url_or_engine, Engine):
        return Target.of_engine(url_or_engine)
    raise TypeError(
        "JobQueue() takes a database URL string or a SQLAlchemy Engine, "
        f"not {type(url_or_engine).__name__}"
    )


def _sqlite_file(text: str) -> Target | None:
    """A plain SQLite URL read without SQLAlchemy; None for any other."""
    found = _PLAIN_SQLITE.fullmatch(text)
    if found is None:
        return None
    from .dialects.sqlite import file_path  # noqa: PLC0415 (only SQLite's dialect is loaded)

    drivername, database = found[1], found[2]
    path = file_path(None if database is None else unquote(database))
    url = f"{drivername}:///{quote(path, safe=' +/')}"

    def make() -> Engine:
        from sqlalchemy.engine import URL  # noqa: PLC0415

        return _create_engine(URL.create(drivername, database=path), for_dialect("sqlite"))

    return Target("sqlite", path, url, url, make=make)


def _postgres_server(text: str) -> Target | None:
    """A plain PostgreSQL URL read without SQLAlchemy, as SQLAlchemy reads it (the tests compare
    the two readings); None for any other."""
    found = _PLAIN_POSTGRES.fullmatch(text)
    if found is None:
        return None
    parts = found.groupdict()
    user, password, database = (
        None if parts[name] is None else unquote(parts[name])
        for name in ("user", "password", "database")
    )
    host, port = parts["host"], parts["port"]
    params: dict[str, str] = {}
    for key, value in parse_qsl(parts["query"] or ""):
        if key in params:
            return None  # a key given twice: SQLAlchemy makes a list of it
        params[key] = value
    tail = (host or "") + (f":{int(port)}" if port else "")
    if database is not None:
        tail += "/" + quote(database, safe=" +/")
    if params:
        tail += "?" + "&".join(f"{quote_plus(k)}={quote_plus(params[k])}" for k in sorted(params))

    def rendered(*, hide: bool) -> str:
        # As SQLAlchemy renders the URL after naming the driver: the same database reached
        # through an engine reads the same.
        userinfo = ""
        if user is not None:
            userinfo = quote(user, safe=" +")
            if password is not None:
                userinfo += ":" + ("***" if hide else quote(password, safe=" +"))
            userinfo += "@"
        return f"postgresql+psycopg://{userinfo}{tail}"

    # psycopg's keyword arguments, as SQLAlchemy's psycopg dialect makes them: the parts given
    # (an empty one is not), then the query's.
    given = {"host": host, "port": port and int(port), "user": user, "password": password}
    args: dict[str, Any] = {key: value for key, value in given.items() if value}
    if database:
        args["dbname"] = database
    args.update(params)
    return Target(
        "postgresql",
        database,
        rendered(hide=False),
        rendered(hide=True),
        make=lambda: _engine_for(text),
        connect_args=args,
    )


def _engine_for(text: str) -> Engine:
    import sqlalchemy as sa  # noqa: PLC0415

    try:
        url = sa.engine.make_url(text)
    except sa.exc.ArgumentError as exc:
        raise ValueError(
            f"{text!r} is not a database URL; write e.g. sqlite:///jobs.sqlite3, "
            "postgresql://user@host/db or mysql://user@host/db"
        ) from exc
    # The dialect refuses what it cannot serve and names the driver where the URL names none.
    dialect = for_dialect(url.get_backend_name())
    return _create_engine(dialect.resolve_url(url), dialect)


def _create_engine(url: URL, dialect: type[Dialect]) -> Engine:
    import sqlalchemy as sa  # noqa: PLC0415

    try:
        return sa.create_engine(url, pool_pre_ping=dialect.pre_ping)
    except ModuleNotFoundError as exc:
        if dialect.extra is None:
            raise
        raise missing_driver(
            exc, url.get_backend_name(), url.get_driver_name(), dialect.extra
        ) from exc
