"""The job database's tables, as SQLAlchemy Core metadata.

Times are stored as seconds since the epoch in double-precision columns: the same type and the
same comparisons on SQLite, PostgreSQL and MySQL/MariaDB, and no time-zone surprises.
``layout.py`` names the same tables, columns and indexes without SQLAlchemy (and holds the
schema version), for the check made each time a process opens the database: a table, column or
index added here is added there too.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles

from .layout import SCHEMA_VERSION

__all__ = [
    "SCHEMA_VERSION",
    "counters",
    "jobs",
    "leases",
    "meta",
    "metadata",
    "periodic",
    "results",
    "states",
]

metadata = sa.MetaData()

# SQLite needs INTEGER PRIMARY KEY (a rowid alias) with AUTOINCREMENT so that ids of deleted jobs
# are never handed out again: a job id a caller holds must not come to name another job.
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class LongText(sa.Text):
    """Text of any length: ``TEXT``, and ``LONGTEXT`` on MySQL/MariaDB, whose ``TEXT`` holds
    64 KB. Its own compile rule, not ``with_variant(mysql.LONGTEXT())``, which would import
    the MySQL dialect on every database."""

    cache_ok = True


@compiles(LongText)
def _text(type_: LongText, compiler: Any, **kw: Any) -> str:
    return "TEXT"


@compiles(LongText, "mysql")
@compiles(LongText, "mariadb")
def _longtext(type_: LongText, compiler: Any, **kw: Any) -> str:
    return "LONGTEXT"


# SQLite's and PostgreSQL's text holds a gigabyte, MySQL's TEXT 64 KB: LONGTEXT there, so a
# payload, a traceback or a description fits the same on every database.
_TEXT = LongText()


# Tables and indexes carry their per-database options in ``info`` rather than as SQLAlchemy's
# ``mysql_engine=``-style keywords: those load every named database's SQLAlchemy dialect when
# this module is imported, which a process using SQLite pays for nothing.
_MYSQL = {"engine": "InnoDB", "charset": "utf8mb4"}

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
    # so each index here serves a query that would otherwise grow with the table. The claim
    # index gives the claim its order and the reserved jobs (lease recovery, the running list);
    # with ``state`` fixed its ``available_at`` is no range bound (priority comes first), so
    # "is anything due", the earliest due time and the empty claim have an index of their own,
    # holding only waiting jobs where the database has partial indexes.
    # On PostgreSQL it holds the due time alone: the planner drops a condition the partial
    # predicate implies from the index scan, so a leading ``state`` column would leave
    # ``available_at`` no bound and every waiting job would be read. SQLite keeps ``state``
    # first (without it, its planner prefers the claim index's ``state``), and so does MySQL,
    # which has no partial indexes, so that finished jobs stay out of the range.
    sa.Index(
        "ix_reqrunner_jobs_waiting",
        "available_at",
        info={
            "where": {"sqlite": "state = 'waiting'", "postgresql": "state = 'waiting'"},
            "columns": {"sqlite": ("state", "available_at"), "mysql": ("state", "available_at")},
        },
    ),
    # Failed and done jobs by the time they finished: the newest-first lists and the prune.
    # Jobs that have not finished stay out of it where the database has partial indexes.
    sa.Index(
        "ix_reqrunner_jobs_finished",
        "state",
        "finished_at",
        "id",
        info={
            "where": {
                "sqlite": "finished_at IS NOT NULL",
                "postgresql": "finished_at IS NOT NULL",
            }
        },
    ),
    # The unique index holds only the jobs that have a key (MySQL has no partial indexes, but
    # lets any number of rows share NULL).
    sa.Index(
        "ux_reqrunner_jobs_unique_slot",
        "unique_slot",
        unique=True,
        info={
            "where": {"sqlite": "unique_slot IS NOT NULL", "postgresql": "unique_slot IS NOT NULL"}
        },
    ),
    # Options per database, applied by the database's dialect when it creates the table, so
    # that declaring them loads no other database's SQLAlchemy dialect.
    info={
        "options": {
            "sqlite": {"autoincrement": True},
            # A queue table churns: every job is inserted, updated twice and deleted. Vacuum it
            # early so dead index entries do not slow the SKIP LOCKED scans, and leave room
            # for HOT updates.
            "postgresql": {
                "with": {
                    "fillfactor": "80",
                    "autovacuum_vacuum_scale_factor": "0.02",
                    "autovacuum_vacuum_cost_delay": "0",
                }
            },
            "mysql": _MYSQL,
        }
    },
)

meta = sa.Table(
    "reqrunner_meta",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", _TEXT, nullable=False),
    info={"options": {"mysql": _MYSQL}},
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
    info={"options": {"mysql": _MYSQL}},
)


results = sa.Table(
    "reqrunner_results",
    metadata,
    # What a finished job left behind (its return value as JSON, or its error), kept until
    # expires_at even when the job's own row is deleted, so that a caller holding the id can
    # still ask how it ended. A table of its own: the jobs table stays as narrow as the claim
    # path wants it, and a database made before results existed gains it on first use.
    sa.Column("job_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("queue", sa.String(64), nullable=False),
    sa.Column("state", sa.String(10), nullable=False),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("payload", _TEXT, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("max_attempts", sa.Integer, nullable=False),
    sa.Column("value", _TEXT),
    sa.Column("error_type", sa.String(255)),
    sa.Column("error_message", _TEXT),
    sa.Column("error_traceback", _TEXT),
    sa.Column("history", _TEXT),
    sa.Column("description", _TEXT),
    sa.Column("unique_key", sa.String(255)),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("started_at", sa.Double),
    sa.Column("finished_at", sa.Double, nullable=False),
    sa.Column("expires_at", sa.Double, nullable=False),
    sa.Index("ix_reqrunner_results_expires", "expires_at"),
    sa.Index("ix_reqrunner_results_unique_key", "unique_key"),
    info={"options": {"mysql": _MYSQL}},
)

counters = sa.Table(
    "reqrunner_counters",
    metadata,
    # Outcomes per 5-minute bucket (epoch seconds of its start): finished jobs are deleted by
    # default, so "how many ran in the last hour" has to be counted as they finish.
    sa.Column("bucket", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("outcome", sa.String(16), primary_key=True),
    sa.Column("n", sa.BigInteger, nullable=False),
    info={"options": {"mysql": _MYSQL}},
)

states = sa.Table(
    "reqrunner_states",
    metadata,
    # How many jobs are in each state, kept by every transaction that moves a job in, out or
    # between states, so that the counts never cost a pass over the table, however long the
    # history grows. A server database spreads each state over a few rows (``shard``) that
    # concurrent transactions pick at random: one row per state would make every dispatch and
    # every claim wait for the last one's commit. A count is the sum over its rows.
    sa.Column("state", sa.String(10), primary_key=True),
    sa.Column("shard", sa.SmallInteger, primary_key=True, autoincrement=False),
    sa.Column("n", sa.BigInteger, nullable=False),
    info={
        "options": {
            # Updated by nearly every transaction: room on each page for the new row versions
            # (HOT updates, pruned in place), and vacuumed as soon as a few thousand are dead.
            "postgresql": {
                "with": {
                    "fillfactor": "50",
                    "autovacuum_vacuum_scale_factor": "0",
                    "autovacuum_vacuum_threshold": "2000",
                }
            },
            "mysql": _MYSQL,
        }
    },
)

periodic = sa.Table(
    "reqrunner_periodic",
    metadata,
    # One row per schedule: the latest slot taken (epoch seconds) and the job dispatched for it.
    # The slot only moves forward, by a compare-and-set UPDATE, so however many processes see
    # a slot come, one of them takes it: the (name, slot) pair is dispatched at most once.
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("slot", sa.Double, nullable=False),
    sa.Column("job_id", sa.BigInteger),
    sa.Column("taken_at", sa.Double, nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    info={"options": {"mysql": _MYSQL}},
)
