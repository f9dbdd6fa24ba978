"""A small pool of driver connections, for a job database read without SQLAlchemy.

A worker or a site given a plain PostgreSQL URL needs only a few connections, never an engine:
SQLAlchemy's import costs a process more memory than everything else it runs (a worker's
resident size grows by a third). This pool keeps connections that :meth:`Pool.checkout` hands
out as :class:`PooledConnection`, the part of SQLAlchemy's pooled connection the dialects use
(``cursor``, ``commit``, ``rollback``, ``close`` back to the pool, ``invalidate``, ``info``,
``driver_connection``), so that a dialect serves either kind of connection the same way.

It opens whatever ``connect`` returns (any DBAPI connection), and pings nothing: a dialect
that can tell an idle connection the server has closed does so when it takes one
(``Dialect.stale``).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

__all__ = ["DriverConnection", "Pool", "PoolTimeout", "PooledConnection"]


class DriverConnection(Protocol):
    """What the pool needs of a DBAPI connection."""

    def cursor(self) -> Any: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def close(self) -> None: ...


C = TypeVar("C", bound=DriverConnection)


class PoolTimeout(TimeoutError):
    """Every connection the pool may open is in use, and none came back in time."""


class PooledConnection(Generic[C]):
    """A driver connection checked out of a :class:`Pool`: ``close()`` gives it back."""

    __slots__ = ("_born", "_out", "_pool", "driver_connection", "info")

    def __init__(self, pool: Pool[C], connection: C) -> None:
        self._pool = pool
        self._born = pool._generation
        self._out = False
        self.driver_connection: C | None = connection
        """The driver's connection (None once invalidated)."""
        self.info: dict[str, Any] = {}
        """What a dialect remembers about this connection (kept while it is pooled)."""

    def cursor(self) -> Any:
        return self._driver().cursor()

    def commit(self) -> None:
        self._driver().commit()

    def rollback(self) -> None:
        self._driver().rollback()

    def close(self) -> None:
        """Give the connection back to the pool (a second call does nothing)."""
        if self._out:
            self._out = False
            self._pool._checkin(self)

    def invalidate(self) -> None:
        """Close the driver connection for good (it is dead, or in a state nobody can trust),
        which gives this back to the pool, as SQLAlchemy's ``invalidate()`` does; the pool
        opens a new connection when it next needs one."""
        self._out = False
        connection, self.driver_connection = self.driver_connection, None
        if connection is not None:
            self._pool._discard(self, connection)

    def _driver(self) -> C:
        if self.driver_connection is None:
            raise RuntimeError("this pooled connection was invalidated")
        return self.driver_connection


class Pool(Generic[C]):
    """Connections made by ``connect``, shared by the threads of one process.

    Up to ``size`` idle connections are kept; up to ``size + overflow`` are open at once, and a
    checkout beyond that waits up to ``timeout`` seconds for one to come back (then
    :class:`PoolTimeout`). The defaults are SQLAlchemy's (5, 10, 30 s), which reqrunner ran
    with until now: enough for a worker's few threads and a site's request threads, and a
    bound on what one process takes of the server's ``max_connections``.
    """

    def __init__(
        self,
        connect: Callable[[], C],
        *,
        size: int = 5,
        overflow: int = 10,
        timeout: float = 30.0,
    ) -> None:
        self._connect = connect
        self._size = size
        self._limit = size + overflow
        self._timeout = timeout
        self._idle: list[PooledConnection[C]] = []
        self._open = 0
        # A connection's generation: dispose() and fork() start a new one, and a connection
        # of an older one is not pooled again.
        self._generation = (os.getpid(), 0)
        self._changed = threading.Condition(threading.Lock())
        # A pool dropped without dispose() closes its idle connections (psycopg warns of a
        # connection collected open); the list is never replaced, only emptied.
        weakref.finalize(self, _close_idle, self._idle)

    def checkout(self) -> PooledConnection[C]:
        """An idle connection (the one used last: its server process is warmest), else a new
        one."""
        with self._changed:
            if self._generation[0] != os.getpid():
                self._forget_parent()
            deadline = time.monotonic() + self._timeout
            while not self._idle and self._open >= self._limit:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise PoolTimeout(
                        f"all {self._limit} connections to the job database are in use, "
                        f"and none came back within {self._timeout:g} s"
                    )
                self._changed.wait(left)
            if self._idle:
                pooled = self._idle.pop()
                pooled._out = True
                return pooled
            self._open += 1
        try:
            pooled = PooledConnection(self, self._connect())
        except BaseException:
            with self._changed:
                self._open -= 1
                self._changed.notify()
            raise
        pooled._out = True
        return pooled

    @property
    def idle(self) -> int:
        """How many connections wait in the pool."""
        return len(self._idle)

    @property
    def open(self) -> int:
        """How many connections the pool has open, idle or checked out."""
        return self._open

    def dispose(self) -> None:
        """Close the idle connections; those checked out are closed when they come back."""
        with self._changed:
            idle = self._idle[:]
            self._idle.clear()
            pid, generation = self._generation
            self._generation = (pid, generation + 1)
        for pooled in idle:
            pooled.invalidate()

    def _checkin(self, pooled: PooledConnection[C]) -> None:
        connection = pooled.driver_connection
        if connection is None:
            return
        if pooled._born != self._generation:
            pooled.invalidate()
            return
        try:
            # What SQLAlchemy's pool does on return: whatever the holder left open ends here,
            # never in the next holder's transaction (free when nothing is open: psycopg
            # sends nothing then).
            connection.rollback()
        except Exception:
            pooled.invalidate()
            return
        with self._changed:
            if len(self._idle) < self._size and pooled._born == self._generation:
                self._idle.append(pooled)
                self._changed.notify()
                return
        pooled.invalidate()

    def _discard(self, pooled: PooledConnection[C], connection: C) -> None:
        if pooled._born[0] != os.getpid():
            # The parent's connection, inherited through fork(): closing it here would end
            # the parent's session (the close is a message on the socket they share).
            return
        # A dead connection may fail to close; it is gone all the same.
        with contextlib.suppress(Exception):
            connection.close()
        with self._changed:
            if pooled._born[0] == self._generation[0]:
                self._open -= 1
            self._changed.notify()

    def _forget_parent(self) -> None:
        # In a child of fork(): the idle connections are the parent's, and so are the counts.
        for pooled in self._idle:
            pooled.driver_connection = None
        self._idle.clear()
        self._open = 0
        self._generation = (os.getpid(), 0)


def _close_idle(idle: list[PooledConnection[Any]]) -> None:
    for pooled in idle:
        connection = pooled.driver_connection
        if connection is not None and pooled._born[0] == os.getpid():
            with contextlib.suppress(Exception):
                connection.close()
    idle.clear()
