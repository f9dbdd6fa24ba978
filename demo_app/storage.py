"""The wiki's own data: pages, template links, watchers, settings and the search index in one
SQLite file, and the outbox folder the notification emails are written to.

This database is the site's, not reqrunner's: the job store is a separate file (see
``jobs.py``), as it would be on a real site whose jobs move to PostgreSQL while its content stays.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path

__all__ = ["Email", "Outbox", "Page", "Wiki", "data_dir"]

DATA_ENV = "DEMO_DATA"
"""Where the demo keeps its files; ``python -m demo_app --data DIR`` sets it."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pages (
    title TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    html TEXT NOT NULL,
    updated_at REAL NOT NULL,
    rendered_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS templatelinks (
    page TEXT NOT NULL,
    template TEXT NOT NULL,
    PRIMARY KEY (template, page)
);
CREATE TABLE IF NOT EXISTS watchers (
    page TEXT NOT NULL,
    email TEXT NOT NULL,
    PRIMARY KEY (page, email)
);
CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE VIRTUAL TABLE IF NOT EXISTS search USING fts5(title UNINDEXED, body);
"""


def data_dir() -> Path:
    """The demo's data directory: ``$DEMO_DATA``, else ``./demo-data``."""
    return Path(os.environ.get(DATA_ENV) or "demo-data").resolve()


@dataclass(frozen=True, kw_only=True, slots=True)
class Page:
    title: str
    source: str
    html: str
    updated_at: float
    rendered_at: float
    stale_since: float | None
    """When a template this page includes changed after the page was last rendered."""


class Wiki:
    """The wiki's tables in ``wiki.sqlite3`` under ``root``; one short connection per call, so
    request threads and the runner's thread never share one."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / "wiki.sqlite3"

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=10)
        try:
            with conn:
                yield conn
        finally:
            conn.close()

    def create(self) -> bool:
        """Create the tables; returns whether the wiki was empty (and needs its first pages)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            # WAL lets a page be read while a job writes, as the job store does.
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            return int(db.execute("SELECT COUNT(*) FROM pages").fetchone()[0]) == 0

    # -- pages --------------------------------------------------------------------------------

    def source_of(self, title: str) -> str | None:
        with self._db() as db:
            row = db.execute("SELECT source FROM pages WHERE title = ?", (title,)).fetchone()
        return None if row is None else str(row[0])

    def get(self, title: str) -> Page | None:
        with self._db() as db:
            row = db.execute(
                "SELECT p.title, p.source, p.html, p.updated_at, p.rendered_at,"
                " (SELECT MIN(t.updated_at) FROM templatelinks l JOIN pages t"
                "   ON t.title = l.template"
                "  WHERE l.page = p.title AND t.updated_at > p.rendered_at)"
                " FROM pages p WHERE p.title = ?",
                (title,),
            ).fetchone()
        if row is None:
            return None
        return Page(
            title=row[0],
            source=row[1],
            html=row[2],
            updated_at=row[3],
            rendered_at=row[4],
            stale_since=row[5],
        )

    def titles(self) -> list[str]:
        with self._db() as db:
            return [r[0] for r in db.execute("SELECT title FROM pages ORDER BY title")]

    def save(self, title: str, source: str, html: str, templates: Iterable[str]) -> float:
        """Store an edit, rendered; returns its time."""
        now = time.time()
        with self._db() as db:
            db.execute(
                "INSERT INTO pages (title, source, html, updated_at, rendered_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (title) DO UPDATE SET"
                " source = excluded.source, html = excluded.html,"
                " updated_at = excluded.updated_at, rendered_at = excluded.rendered_at",
                (title, source, html, now, now),
            )
            self._links(db, title, templates)
        return now

    def store_render(self, title: str, html: str, templates: Iterable[str]) -> None:
        """Store a fresh rendering of a page whose source did not change (the refresh job)."""
        with self._db() as db:
            db.execute(
                "UPDATE pages SET html = ?, rendered_at = ? WHERE title = ?",
                (html, time.time(), title),
            )
            self._links(db, title, templates)

    @staticmethod
    def _links(db: sqlite3.Connection, title: str, templates: Iterable[str]) -> None:
        db.execute("DELETE FROM templatelinks WHERE page = ?", (title,))
        db.executemany(
            "INSERT INTO templatelinks (page, template) VALUES (?, ?)",
            [(title, t) for t in sorted(templates)],
        )

    def users_of(self, template: str) -> list[str]:
        """The pages that include ``template``, directly or through another template."""
        with self._db() as db:
            rows = db.execute(
                "SELECT page FROM templatelinks WHERE template = ? ORDER BY page", (template,)
            )
            return [r[0] for r in rows]

    # -- watchers and settings ----------------------------------------------------------------

    def watch(self, title: str, email: str) -> None:
        with self._db() as db:
            db.execute("INSERT OR IGNORE INTO watchers (page, email) VALUES (?, ?)", (title, email))

    def watchers(self, title: str) -> list[str]:
        with self._db() as db:
            rows = db.execute("SELECT email FROM watchers WHERE page = ? ORDER BY email", (title,))
            return [r[0] for r in rows]

    def setting(self, name: str, default: str) -> str:
        with self._db() as db:
            row = db.execute("SELECT value FROM settings WHERE name = ?", (name,)).fetchone()
        return default if row is None else str(row[0])

    def set_setting(self, name: str, value: str) -> None:
        with self._db() as db:
            db.execute(
                "INSERT INTO settings (name, value) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (name, value),
            )

    # -- search (FTS5) ------------------------------------------------------------------------

    def index(self, title: str, text: str) -> None:
        with self._db() as db:
            db.execute("DELETE FROM search WHERE title = ?", (title,))
            db.execute("INSERT INTO search (title, body) VALUES (?, ?)", (title, text))

    def search(self, query: str, limit: int = 20) -> list[tuple[str, str]]:
        """Pages matching ``query`` (plain words; FTS syntax is quoted away), with a snippet."""
        words = re.findall(r"\w+", query)
        if not words:
            return []
        match = " ".join(f'"{w}"' for w in words)
        with self._db() as db:
            rows = db.execute(
                "SELECT title, snippet(search, 1, '[', ']', ' … ', 12) FROM search"
                " WHERE search MATCH ? ORDER BY rank LIMIT ?",
                (match, limit),
            )
            return [(r[0], r[1]) for r in rows]


@dataclass(frozen=True, kw_only=True, slots=True)
class Email:
    name: str
    to: str
    subject: str
    body: str
    written_at: float


class Outbox:
    """Notification emails, written as ``.eml`` files instead of being sent."""

    def __init__(self, root: Path) -> None:
        self.path = root / "outbox"

    def write(self, *, to: str, subject: str, body: str, key: str) -> Path:
        """Write one email. ``key`` names the file, so a retried job overwrites its own email
        instead of sending a second one."""
        self.path.mkdir(parents=True, exist_ok=True)
        message = EmailMessage()
        message["From"] = "wiki@demo.invalid"
        message["To"] = to
        message["Subject"] = subject
        message.set_content(body)
        target = self.path / f"{re.sub(r'[^A-Za-z0-9.@_-]', '_', key)}.eml"
        part = target.with_suffix(".part")
        part.write_bytes(message.as_bytes())
        part.replace(target)  # atomic, so the outbox page never lists a half-written email
        return target

    def emails(self, limit: int = 50) -> list[Email]:
        if not self.path.is_dir():
            return []
        files = sorted(self.path.glob("*.eml"), key=lambda p: p.stat().st_mtime, reverse=True)
        return [self.read(p.name) for p in files[:limit]]

    def read(self, name: str) -> Email:
        """One email by file name (only names inside the outbox)."""
        path = self.path / Path(name).name
        message = BytesParser(policy=default_policy).parsebytes(path.read_bytes())
        body = message.get_body(("plain",))
        return Email(
            name=path.name,
            to=str(message["To"]),
            subject=str(message["Subject"]),
            body="" if body is None else str(body.get_content()),
            written_at=path.stat().st_mtime,
        )
