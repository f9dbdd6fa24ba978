"""Dispatch inside the app's own transaction: ``job.using(connection=conn).dispatch(...)``.

The job's INSERT goes through the app's SQLAlchemy ``Connection`` (or a ``Session``'s
connection) and so commits or rolls back with the app's own rows: an order email is never
queued for an order that was rolled back, nor run before the order is visible. On PostgreSQL
the NOTIFY that wakes a listening ``reqrunner work`` is sent in the same transaction and so
delivered at its commit. The process's "are jobs due" listeners are told after the commit, not
before (a dispatch that may still roll back is nothing due).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .database import Database
from .operations import NewJob, Store

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

__all__ = ["InTransaction"]


class _Pending:
    """What one connection's open transaction holds for us: whether its database was checked,
    and whom to tell when it commits."""

    __slots__ = ("callbacks", "checked")

    def __init__(self) -> None:
        self.checked = False
        self.callbacks: list[Callable[[], None]] = []


_pending: weakref.WeakKeyDictionary[Connection, _Pending] = weakref.WeakKeyDictionary()
_hooked: weakref.WeakSet[Connection] = weakref.WeakSet()


class InTransaction:
    """Stores jobs through connections the app owns, on the job database of ``store``."""

    def __init__(self, db: Database, store: Store) -> None:
        self._db = db
        self._store = store
        self._identity: tuple[object, ...] | None = None

    def enqueue(
        self, connection: object, batch: Sequence[NewJob], on_commit: Callable[[], None]
    ) -> list[int]:
        """Insert ``batch`` in ``connection``'s transaction (begun if none is); their ids.
        ``on_commit`` is called once that transaction has committed."""
        conn = _connection_of(connection)
        db = self._db
        if conn.dialect.name not in db.dialect.backends:
            raise ValueError(self._elsewhere(conn, f"a {conn.dialect.name} database"))
        if not conn.in_transaction():
            conn.begin()
        pending = _pending.get(conn)
        if pending is None:
            pending = _pending[conn] = _Pending()
        cur: Any = conn.connection.cursor()
        try:
            try:
                if not pending.checked:
                    if db.dialect.identity(cur) != self._own_identity():
                        raise ValueError(self._elsewhere(conn, "another database"))
                    pending.checked = True
                db.ensure_schema_for(conn.connection.dbapi_connection, cur)
                ids = self._store.insert_with(cur, batch)
            except db.driver_errors as exc:
                raise db.store_error(exc) from exc
        finally:
            cur.close()
        if on_commit not in pending.callbacks:
            pending.callbacks.append(on_commit)
        _hook(conn)
        return ids

    def _own_identity(self) -> tuple[object, ...]:
        if self._identity is None:
            self._identity = self._db.dialect.own_identity()
        return self._identity

    def _elsewhere(self, conn: Connection, what: str) -> str:
        url = conn.engine.url.render_as_string(hide_password=True)
        return (
            f"using(connection=...) needs a connection to the job database {self._db.safe_url}; "
            f"this one ({url}) is to {what}. Dispatch without connection=, or build the queue "
            "on the app's engine: JobQueue(engine)"
        )


def _connection_of(connection: object) -> Connection:
    # Imported here: a queue that never dispatches this way never loads SQLAlchemy (SQLite)
    # or its ORM.
    from sqlalchemy.engine import Connection  # noqa: PLC0415
    from sqlalchemy.orm import Session  # noqa: PLC0415

    if isinstance(connection, Session):
        return connection.connection()
    if isinstance(connection, Connection):
        return connection
    name = type(connection).__name__
    if name in ("AsyncSession", "AsyncConnection"):
        raise TypeError(
            f"using(connection=...) takes a sync Connection or Session, not an {name}; "
            "call it inside run_sync: await session.run_sync(lambda s: "
            "job.using(connection=s).dispatch(...))"
        )
    raise TypeError(
        f"using(connection=...) takes a SQLAlchemy Connection or Session, not {connection!r}"
    )


def _hook(conn: Connection) -> None:
    if conn in _hooked:
        return
    from sqlalchemy import event  # noqa: PLC0415 (only apps that dispatch this way need it)

    event.listen(conn, "commit", _committing)
    event.listen(conn, "rollback", _rolled_back)
    _hooked.add(conn)


def _committing(conn: Connection) -> None:
    pending = _pending.pop(conn, None)
    if pending is None or not pending.callbacks:
        return
    # SQLAlchemy tells a connection's listeners of a commit just before it commits. The
    # listeners must hear of the jobs once they are visible to other connections (a run they
    # start would not find them before, and on SQLite would wait for this transaction's write
    # lock), so the driver's transaction is committed here; SQLAlchemy's own commit, right
    # after, finds nothing left to do.
    conn.connection.dbapi_connection.commit()  # type: ignore[union-attr]
    for callback in pending.callbacks:
        callback()


def _rolled_back(conn: Connection) -> None:
    _pending.pop(conn, None)
