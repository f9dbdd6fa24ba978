"""The queries that must not grow with the table are served by an index, on every database.

Each operation runs for real on a table holding delayed and finished jobs, its statements are
recorded as they go to the driver, and each statement on the jobs table is then EXPLAINed:
no full scan of the jobs table and no sort of its rows. A change that drops or bypasses an
index fails here, not on a big site.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import reqrunner
from reqrunner.store.dialects import JOBS
from tests.store.history import add_rows

OPERATIONS: dict[str, Callable[[reqrunner.JobQueue], object]] = {
    "has_due": lambda q: q.has_due(),
    "next_due_in": lambda q: q.next_due_in(),
    "next_due_in(queues)": lambda q: q.next_due_in(["default"]),
    "empty claim": lambda q: q.store.cycle([], claim=10),
    "stats": lambda q: q.stats(),
    "list failed": lambda q: q.list_jobs(state="failed"),
    "list done": lambda q: q.list_jobs(state="done"),
    "list delayed": lambda q: q.list_jobs(state="delayed"),
    "list due": lambda q: q.list_jobs(state="due"),
    "list waiting": lambda q: q.list_jobs(state="waiting"),
    "list reserved": lambda q: q.list_jobs(state="reserved"),
    "list all": lambda q: q.list_jobs(),
    "prune": lambda q: q.prune(failed_older_than=timedelta(days=180), done_older_than=None),
    "automatic prune step": lambda q: q._retention.step(q.store.db),
}


class Recording:
    """A driver cursor that notes every statement it executes."""

    def __init__(self, cur: Any, log: list[tuple[str, tuple[Any, ...]]]) -> None:
        self._cur, self._log = cur, log

    def execute(self, sql: str, params: Any = ()) -> Any:
        self._log.append((sql, tuple(params)))
        return self._cur.execute(sql, params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cur, name)


def filled(db_url: str) -> reqrunner.JobQueue:
    """A queue with 3,000 delayed, 1,500 failed and 1,500 done jobs, analysed."""
    queue = reqrunner.JobQueue(db_url, keep_done=True)
    add_rows(queue, "waiting", 3_000)
    add_rows(queue, "failed", 1_500, finished_ago=86400.0)
    add_rows(queue, "done", 1_500, finished_ago=86400.0)
    analyze(queue)
    return queue


def analyze(queue: reqrunner.JobQueue) -> None:
    """Give the planner statistics, as a live database has."""
    statement = {"sqlite": None, "postgresql": f"ANALYZE {JOBS}", "mysql": f"ANALYZE TABLE {JOBS}"}
    sql = statement[queue.dialect.name]
    if sql:
        with queue.store.db.write() as cur:
            cur.execute(sql)
            if queue.dialect.name == "mysql":
                cur.fetchall()


def statements(queue: reqrunner.JobQueue, operation: Callable[[reqrunner.JobQueue], object]):
    log: list[tuple[str, tuple[Any, ...]]] = []
    dialect = queue.dialect
    begin = dialect.begin

    def recording_begin(*, write: bool) -> tuple[Any, Any]:
        connection, cur = begin(write=write)
        return connection, Recording(cur, log)

    dialect.begin = recording_begin  # type: ignore[method-assign]
    try:
        operation(queue)
    finally:
        del dialect.begin
    return [(sql, params) for sql, params in log if JOBS in sql]


def problems_sqlite(cur: Any, sql: str, params: tuple[Any, ...]) -> tuple[list[str], str]:
    cur.execute("EXPLAIN QUERY PLAN " + sql, params)
    details = [str(row[-1]) for row in cur.fetchall()]
    problems = [
        d
        for d in details
        if (d.startswith("SCAN") and JOBS in d) or "TEMP B-TREE FOR ORDER BY" in d
    ]
    return problems, " ".join(details)


def problems_postgresql(cur: Any, sql: str, params: tuple[Any, ...]) -> tuple[list[str], str]:
    # With sequential scans and sorts priced out, the plan still shows one only where no
    # index can serve the query.
    cur.execute("SET LOCAL enable_seqscan = off")
    cur.execute("SET LOCAL enable_sort = off")
    cur.execute("EXPLAIN (FORMAT JSON) " + sql, params)
    raw = cur.fetchone()[0]
    plan = raw if isinstance(raw, list) else json.loads(raw)
    found: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        kind = node["Node Type"]
        if (kind == "Seq Scan" and node.get("Relation Name") == JOBS) or kind in (
            "Sort",
            "Incremental Sort",
        ):
            found.append(f"{kind} {node.get('Relation Name', '')}")
        for child in node.get("Plans", ()):
            walk(child)

    walk(plan[0]["Plan"])
    return found, json.dumps(plan)


def problems_mysql(cur: Any, sql: str, params: tuple[Any, ...]) -> tuple[list[str], str]:
    cur.execute("EXPLAIN " + sql, params)
    names = [c[0] for c in cur.description]
    found = []
    rows = cur.fetchall()
    for row in rows:
        line = dict(zip(names, row, strict=True))
        if line.get("table") == JOBS and (
            line.get("type") == "ALL" or "filesort" in str(line.get("Extra") or "")
        ):
            found.append(f"{line.get('type')} {line.get('key')} {line.get('Extra')}")
    return found, repr(rows)


#: The index an operation's plans must name: the one made for it.
MUST_USE = {
    "empty claim": "ix_reqrunner_jobs_waiting",
    "has_due": "ix_reqrunner_jobs_waiting",
    "next_due_in": "ix_reqrunner_jobs_waiting",
    "next_due_in(queues)": "ix_reqrunner_jobs_waiting",
    "list failed": "ix_reqrunner_jobs_finished",
    "list done": "ix_reqrunner_jobs_finished",
    "prune": "ix_reqrunner_jobs_finished",
    "automatic prune step": "ix_reqrunner_jobs_finished",
}

PROBLEMS = {"sqlite": problems_sqlite, "postgresql": problems_postgresql, "mysql": problems_mysql}


#: A page of all jobs reads the primary key in order and stops at the page's end.
PRIMARY_KEY_PAGE = "ORDER BY id LIMIT ? OFFSET ?"


def test_every_query_of_every_operation_uses_an_index(db_url: str) -> None:
    queue = filled(db_url)
    check = PROBLEMS[queue.dialect.name]
    failures = []
    for operation, run in OPERATIONS.items():
        recorded = statements(queue, run)
        if not recorded:
            failures.append(f"{operation}: ran no statement on {JOBS}")
        plans = []
        for sql, params in recorded:
            with queue.store.db.read() as cur:
                found, plan = check(cur, sql, params)
            plans.append(plan)
            if queue.dialect.name == "sqlite" and queue.dialect.q(PRIMARY_KEY_PAGE) in sql:
                found = [f for f in found if f != f"SCAN {JOBS}"]
            if found:
                failures.append(f"{operation}: {sql}\n    {found}")
        index = MUST_USE.get(operation)
        if index and not any(index in plan for plan in plans):
            failures.append(f"{operation} does not use {index}: {plans}")
    queue.close()
    assert not failures, "\n".join(failures)


#: The operations every run, page view or poll of a site pays: their cost must not grow with
#: the jobs waiting for later or the history kept.
EVERY_RUN = ("has_due", "next_due_in", "empty claim", "stats")


def read_cost(queue: reqrunner.JobQueue, sql: str, params: tuple[Any, ...]) -> int:
    """What running ``sql`` reads, in a unit no machine load disturbs: SQLite's virtual-machine
    steps (in hundreds), PostgreSQL's buffers, MySQL's handler reads and index entries."""
    name = queue.dialect.name
    with queue.store.db.read() as cur:
        if name == "sqlite":
            steps = 0

            def step() -> int:
                nonlocal steps
                steps += 1
                return 0

            con = queue.dialect.connection()  # type: ignore[attr-defined]
            con.set_progress_handler(step, 100)
            try:
                cur.execute(sql, params)
                cur.fetchall()
            finally:
                con.set_progress_handler(None, 100)
            return steps
        if name == "postgresql":
            cur.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, params)
            raw = cur.fetchone()[0]
            top = (raw if isinstance(raw, list) else json.loads(raw))[0]["Plan"]
            return int(top["Shared Hit Blocks"]) + int(top["Shared Read Blocks"])
        cur.execute("FLUSH STATUS")
        cur.execute(sql, params)
        cur.fetchall()
        # Index entries the storage engine filters itself (index condition pushdown) are not
        # handler reads: they are counted as ICP attempts.
        cur.execute(
            "SHOW SESSION STATUS WHERE Variable_name LIKE 'Handler_read%%' "
            "OR Variable_name = 'Handler_icp_attempts'"
        )
        return sum(int(value) for _, value in cur.fetchall())


def test_what_every_run_pays_does_not_grow_with_delayed_jobs_or_history(db_url: str) -> None:
    queue = filled(db_url)

    def costs() -> dict[str, int]:
        return {
            operation: sum(read_cost(queue, sql, p) for sql, p in statements(queue, run))
            for operation, run in OPERATIONS.items()
            if operation in EVERY_RUN
        }

    small = costs()
    add_rows(queue, "waiting", 30_000)
    add_rows(queue, "failed", 10_000, finished_ago=86400.0)
    analyze(queue)
    big = costs()
    queue.close()
    # Ten times the jobs: a scan of them would read ten times as much. A deeper index reads a
    # page or two more, the kept counts a few more of their rows (the lease recovery that runs
    # with a claim at most once a second may come in either measurement).
    grown = {
        operation: (small[operation], big[operation])
        for operation in EVERY_RUN
        if big[operation] > 2 * small[operation] + 3
    }
    assert not grown, grown
