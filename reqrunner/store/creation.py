"""Creating what is missing of the schema: tables, the columns and indexes a newer reqrunner
added to a database an older one made (and the first count of its jobs per state), and the
schema version row.

Imported only when a database lacks something (``layout.is_current`` said so): it needs the
SQLAlchemy description of the tables (``schema.py``) and SQLAlchemy's DDL compiler.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.schema import CreateColumn

from ..errors import StoreError
from .counts import STATES, recount
from .dialects import JOBS
from .layout import REPLACED_INDEXES
from .schema import SCHEMA_VERSION, metadata

if TYPE_CHECKING:
    from .database import Database
    from .dialects import Cursor

__all__ = ["create_missing"]

log = logging.getLogger("reqrunner.store")


def create_missing(db: Database, cur: Cursor) -> None:
    """Create in ``cur``'s transaction (the caller holds the schema lock) whatever of the
    schema the database lacks, and refuse a database a newer reqrunner made."""
    # Indexes are created when missing too, not only with their table: a database made by
    # an older reqrunner gets the indexes a newer one adds the first time it opens it.
    dialect = db.dialect
    existing = dialect.existing_tables(cur)
    indexes = dialect.existing_indexes(cur)
    for table in metadata.sorted_tables:
        if table.name not in existing:
            cur.execute(dialect.create_table(table))
            log.info("created table %s in %s", table.name, db.safe_url)
        else:
            _add_missing_columns(db, cur, table)
        for index in table.indexes:
            if index.name not in indexes:
                cur.execute(dialect.create_index(index))
                if table.name in existing:
                    log.info("created index %s in %s", index.name, db.safe_url)
    for name, table_name in REPLACED_INDEXES.items():
        if name in indexes:
            cur.execute(dialect.drop_index(name, table_name))
            log.info("dropped index %s, replaced, in %s", name, db.safe_url)
    if STATES not in existing and JOBS in existing:
        # Jobs stored before their states were counted: count them once, now, under the
        # schema lock (every later move is counted as it happens).
        log.info("counted the jobs per state in %s: %s", db.safe_url, recount(cur, dialect))
    q = dialect.q
    cur.execute(q("SELECT value FROM reqrunner_meta WHERE name = ?"), ("schema_version",))
    row = cur.fetchone()
    if row is None:
        # Ignoring a duplicate: a process that created the tables just before us may not
        # have committed its row yet when its lock was released (MySQL's lock belongs to
        # the session, and is let go before the commit).
        cur.execute(
            dialect.insert_ignore("reqrunner_meta", "name, value"),
            ("schema_version", str(SCHEMA_VERSION)),
        )
    elif int(row[0]) > SCHEMA_VERSION:
        raise StoreError(
            f"the job database has schema version {row[0]}, newer than this reqrunner "
            f"understands ({SCHEMA_VERSION}); upgrade reqrunner"
        )


def _add_missing_columns(db: Database, cur: Cursor, table: sa.Table) -> None:
    # A column a newer reqrunner added (always a NULL-able one) is added to a table an
    # older one made; ``ADD COLUMN`` is written alike on every supported database.
    cur.execute(f"SELECT * FROM {table.name} WHERE 1 = 0")
    present = {str(column[0]).lower() for column in cur.description or ()}
    for column in table.columns:
        if column.name not in present:
            ddl = CreateColumn(column).compile(dialect=db.engine.dialect)
            cur.execute(f"ALTER TABLE {table.name} ADD COLUMN {ddl}")
            log.info("added column %s.%s in %s", table.name, column.name, db.safe_url)
