"""Site-wide state kept in the job database: settings, the shared secret and named leases.

Every process of a site sees the same database, so this is where a value that must be the same
for all of them lives (the generated secret), and where "at most N at once across all
processes" is enforced (a lease row with a token and an expiry, like PKP's cross-request lock).
"""

from __future__ import annotations

import os
import secrets
import socket
import time

from .database import Database

__all__ = ["Meta"]


class Meta:
    """Named values and leases in the ``reqrunner_meta`` and ``reqrunner_leases`` tables."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.dialect = db.dialect
        self._pruned = 0.0

    def get(self, name: str) -> str | None:
        with self.db.read() as cur:
            cur.execute(self.dialect.q("SELECT value FROM reqrunner_meta WHERE name = ?"), (name,))
            row = cur.fetchone()
        return None if row is None else str(row[0])

    def set(self, name: str, value: str) -> None:
        _check_name(name)
        with self.db.write() as cur:
            cur.execute(self.dialect.upsert_meta(), (name, value))

    def delete(self, name: str) -> None:
        with self.db.write() as cur:
            cur.execute(self.dialect.q("DELETE FROM reqrunner_meta WHERE name = ?"), (name,))

    def get_prefixed(self, prefix: str) -> dict[str, str]:
        """All values whose name starts with ``prefix``."""
        with self.db.read() as cur:
            # LIKE reads ``_`` and ``%`` in the prefix as wildcards, and escaping differs per
            # dialect; the superset it returns is narrowed here.
            cur.execute(
                self.dialect.q("SELECT name, value FROM reqrunner_meta WHERE name LIKE ?"),
                (prefix + "%",),
            )
            rows = cur.fetchall()
        return {str(n): str(v) for n, v in rows if str(n).startswith(prefix)}

    def setdefault(self, name: str, value: str) -> str:
        """Store ``value`` unless ``name`` has one; return the stored value (race-free)."""
        _check_name(name)
        with self.db.write() as cur:
            cur.execute(self.dialect.insert_ignore("reqrunner_meta", "name, value"), (name, value))
            cur.execute(self.dialect.q("SELECT value FROM reqrunner_meta WHERE name = ?"), (name,))
            return str(cur.fetchone()[0])

    def generated_secret(self) -> str:
        """The site's secret, generated on first use and shared by every process."""
        return self.setdefault("secret", secrets.token_urlsafe(32))

    # -- leases ---------------------------------------------------------------------------------

    def acquire(self, name: str, ttl: float) -> str | None:
        """Take the lease ``name`` for ``ttl`` seconds; its token, or None if someone holds it.

        A lease held by a process of this host that no longer exists (killed, or ended by a
        job's ``os._exit``) is taken over at once instead of after it expires.
        """
        _check_name(name)
        token = secrets.token_hex(16)
        now = time.time()
        me = holder()
        with self.db.write() as cur:
            cur.execute(
                self.dialect.q(
                    "UPDATE reqrunner_leases SET token = ?, expires_at = ?, holder = ? "
                    "WHERE name = ? AND expires_at < ?"
                ),
                (token, now + ttl, me, name, now),
            )
            if cur.rowcount == 1:
                return token
            cur.execute(
                self.dialect.insert_ignore("reqrunner_leases", "name, token, expires_at, holder"),
                (name, token, now + ttl, me),
            )
            if cur.rowcount == 1:
                return token
            cur.execute(
                self.dialect.q("SELECT token, holder FROM reqrunner_leases WHERE name = ?"),
                (name,),
            )
            row = cur.fetchone()
            if row is None or row[0] is None or not is_dead(row[1]):
                return None
            cur.execute(
                self.dialect.q(
                    "UPDATE reqrunner_leases SET token = ?, expires_at = ?, holder = ? "
                    "WHERE name = ? AND token = ?"
                ),
                (token, now + ttl, me, name, row[0]),
            )
            return token if cur.rowcount == 1 else None

    def renew(self, name: str, token: str, ttl: float) -> bool:
        with self.db.write() as cur:
            cur.execute(
                self.dialect.q(
                    "UPDATE reqrunner_leases SET expires_at = ? WHERE name = ? AND token = ?"
                ),
                (time.time() + ttl, name, token),
            )
            return bool(cur.rowcount == 1)

    def release(self, name: str, token: str) -> None:
        with self.db.write() as cur:
            cur.execute(
                self.dialect.q(
                    "UPDATE reqrunner_leases SET token = NULL, expires_at = 0 "
                    "WHERE name = ? AND token = ?"
                ),
                (name, token),
            )

    # -- things done once -------------------------------------------------------------------------

    def use_once(self, name: str, until: float) -> bool:
        """Record ``name`` as used until ``until`` (epoch seconds); True the first time, False
        for every later call before then (race-free: the row's primary key decides)."""
        _check_name(ONCE_PREFIX + name)
        now = time.time()
        with self.db.write() as cur:
            if now - self._pruned >= ONCE_PRUNE_EVERY:
                self._pruned = now
                cur.execute(
                    self.dialect.q(
                        "DELETE FROM reqrunner_leases WHERE name LIKE ? AND expires_at < ?"
                    ),
                    (ONCE_PREFIX + "%", now),
                )
            cur.execute(
                self.dialect.insert_ignore("reqrunner_leases", "name, token, expires_at"),
                (ONCE_PREFIX + name, None, until),
            )
            return bool(cur.rowcount == 1)


def holder() -> str:
    """This process, as a lease records it: ``host/PID namespace/PID``."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return f"{socket.gethostname()}/{namespace}/{os.getpid()}"[-255:]


def is_dead(recorded: str | None) -> bool:
    """Whether the lease holder ``recorded`` (see :func:`holder`) is a process of this host
    and PID namespace that no longer exists. A holder elsewhere is never judged dead."""
    if not recorded:
        return False
    where, _, pid_text = recorded.rpartition("/")
    mine, _, _ = holder().rpartition("/")
    if where != mine or not mine.split("/", 1)[-1] or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # it exists (owned by another user) or cannot be asked
    return False


#: Names of :meth:`Meta.use_once` records in the leases table (never taken as a lease).
ONCE_PREFIX = "once."
#: Seconds between deletions of expired :meth:`Meta.use_once` records, per process.
ONCE_PRUNE_EVERY = 60.0


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not 0 < len(name) <= 64:
        raise ValueError(f"a meta or lease name is a string of 1 to 64 characters, not {name!r}")
