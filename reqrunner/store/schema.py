"""The job database's tables, as SQLAlchemy Core metadata.

Times are stored as seconds since the epoch in double-precision columns: the same type and the
same comparisons on SQLite, PostgreSQL and MySQL/MariaDB, and no time-zone surprises.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

__all__ = ["SCHEMA_VERSION", "counters", "jobs", "leases", "meta", "metadata"]

SCHEMA_VERSION = 1

metadata = sa.MetaData()

# SQLite needs INTEGER PRIMARY KEY (a rowid alias) with AUTOINCREMENT so that ids of deleted jobs
# are never handed out again: a job id a caller holds must not come to name another job.
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# MySQL's TEXT holds 64 KB, SQLite's and PostgreSQL's text a gigabyte: LONGTEXT there, so a
# payload, a traceback or a description fits the same on every database.
_TEXT = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")

jobs = sa.Table(
    "reqrunner_jobs",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("queue", sa.String(64), nullable=False),
    sa.Column("state", sa.String(10), nullable=False),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("payload", _TEXT, nullable=False),
    sa.Column("available_at", sa.Double, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("max_attempts", sa.Integer, nullable=False),
    sa.Column("ttr", sa.Double, nullable=False),
    sa.Column("backoff", sa.Double, nullable=False),
    sa.Column("token", sa.String(32)),
    sa.Column("reserved_until", sa.Double),
    # The hash of the unique key while the job is unclaimed, NULL otherwise: a plain unique index
    # over it gives "at most one unclaimed job per key" on every dialect, MySQL included, which
    # has no partial indexes.
    sa.Column("unique_slot", sa.String(64)),
    # The slot a claim cleared, kept so that a retry or a release can take it back (or, when
    # another unclaimed job holds it by then, give way to that job).
    sa.Column("unique_hash", sa.String(64)),
    sa.Column("unique_key", sa.String(255)),
    sa.Column("progress", sa.Double),
    sa.Column("label", sa.String(255)),
    sa.Column("description", _TEXT),
    sa.Column("error_type", sa.String(255)),
    sa.Column("error_message", _TEXT),
    sa.Column("error_traceback", _TEXT),
    sa.Column("history", _TEXT),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("started_at", sa.Double),
    sa.Column("finished_at", sa.Double),
    sa.Index(
        "ix_reqrunner_jobs_claim",
        "state",
        sa.text("priority DESC"),
        "available_at",
        "id",
    ),
    # Every index entry costs each insert, claim and delete about as much as the row itself,
    # so the claim index is the only one every job gets: its (state, …) prefix also serves
    # "is anything due?", the lease recovery and the scans of failed and done jobs.
    # The unique index holds only the jobs that have a key (MySQL has no partial indexes, but
    # lets any number of rows share NULL).
    sa.Index(
        "ux_reqrunner_jobs_unique_slot",
        "unique_slot",
        unique=True,
        sqlite_where=sa.text("unique_slot IS NOT NULL"),
        postgresql_where=sa.text("unique_slot IS NOT NULL"),
    ),
    sqlite_autoincrement=True,
    # A queue table churns: every job is inserted, updated twice and deleted. Vacuum it early so
    # dead index entries do not slow the SKIP LOCKED scans, and leave room for HOT updates.
    postgresql_with={
        "fillfactor": "80",
        "autovacuum_vacuum_scale_factor": "0.02",
        "autovacuum_vacuum_cost_delay": "0",
    },
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)

meta = sa.Table(
    "reqrunner_meta",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", _TEXT, nullable=False),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)

leases = sa.Table(
    "reqrunner_leases",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("token", sa.String(32)),
    sa.Column("expires_at", sa.Double, nullable=False),
    # Who holds it (host, PID namespace, PID), so that a lease whose holder died on this host
    # is taken over at once rather than after it expires.
    sa.Column("holder", sa.String(255)),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)

counters = sa.Table(
    "reqrunner_counters",
    metadata,
    # Outcomes per 5-minute bucket (epoch seconds of its start): finished jobs are deleted by
    # default, so "how many ran in the last hour" has to be counted as they finish.
    sa.Column("bucket", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("outcome", sa.String(16), primary_key=True),
    sa.Column("n", sa.BigInteger, nullable=False),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)
