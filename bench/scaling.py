"""How reqrunner's queries grow with the table: the same operations on an empty table and on
tables holding many delayed jobs and many finished (failed and done) jobs.

For each database and each size N the table is filled with N delayed jobs (due in a year) and
N history rows (half failed, half done, finished over the last 30 days); then each operation
is timed (median of repeated calls, in ms): the due check (``has_due``), ``next_due_in``, an
empty claim, ``stats()``, a page of ``list_jobs`` for failed and delayed jobs, the admin
overview's reads and ``api/status``'s, and the claim + finish rate of a run draining a batch
of no-op jobs (jobs/s). A table per database, one column per size.

    python bench/scaling.py [--sizes 0,100000,1000000] [--quick] [--repeat N] [--only DB]
                            [--pg URL] [--mysql URL] [--split | --alternate]

``--split`` asks which rows slow the claim + finish rate instead: on a new database, its empty
rate, then with N delayed jobs alone, then with N history rows added; and on another new
database the other way round, history first (N is the largest size).

``--alternate`` measures the claim + finish ratio side by side: an empty database and one
holding N delayed jobs and N history rows, on the same server, drained in turn (7 pairs), and
the median of each pair's ratio (N is the largest size).

``--quick`` uses sizes 0 and 2,000 and few repetitions (what CI runs to keep the bench alive).
A server database is skipped when its URL is empty or it does not answer.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import reqrunner  # noqa: E402
from reqrunner.store.database import resolve_engine  # noqa: E402
from reqrunner.store.dialects import JOBS  # noqa: E402
from reqrunner.store.records import NewJob  # noqa: E402

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DEFAULT_MYSQL = "mysql+pymysql://root@127.0.0.1:3306/test"
BENCH_DB = "reqrunner_bench_scaling"
FILL_CHUNK = 10_000
DRAIN_JOBS = 10_000
SETTLED = 1_000
"""The purge backlog (undo logs) and dirty pages below which MySQL counts as settled."""
KINDS = ("delayed", "history")

OPERATIONS = (
    "due check (has_due)",
    "next_due_in",
    "empty claim",
    "stats()",
    "list_jobs(failed), a page",
    "list_jobs(delayed), a page",
    "admin overview reads",
    "api/status reads",
    "claim + finish, jobs/s",
)


def _rows(state: str, n: int, now: float) -> list[NewJob]:
    year = 365 * 86400.0
    return [
        NewJob(
            "bench.noop", "default", state, 0, f'[[], {{"n": {i}}}]',
            now + year + i if state == "waiting" else now - 86400.0 * 30 * i / max(n, 1),
            1, 3, 300.0, 5.0, None, None, now - 86400.0 * 30,
        )
        for i in range(n)
    ]  # fmt: skip


def fill(queue: reqrunner.JobQueue, n: int, kinds: tuple[str, ...] = KINDS) -> None:
    """Add ``n`` delayed jobs and ``n`` finished ones (half failed, half done), or only the
    ``kinds`` named ("delayed", "history")."""
    now = time.time()
    counts = [("waiting", n)] if "delayed" in kinds else []
    if "history" in kinds:
        counts += [("failed", n // 2), ("done", n - n // 2)]
    for state, count in counts:
        done = 0
        while done < count:
            step = min(FILL_CHUNK, count - done)
            queue.store.enqueue_many(_rows(state, step, now))
            done += step
    if "history" in kinds:
        with queue.store.db.write() as cur:
            # History rows finish when they became available (spread over the last 30 days).
            cur.execute(
                f"UPDATE {JOBS} SET finished_at = available_at "
                "WHERE state IN ('failed', 'done') AND finished_at IS NULL"
            )


def analyze(queue: reqrunner.JobQueue) -> None:
    """Refresh the planner's statistics of the jobs table (PostgreSQL and MySQL)."""
    statement = {"postgresql": f"ANALYZE {JOBS}", "mysql": f"ANALYZE TABLE {JOBS}"}
    sql = statement.get(queue.dialect.name)
    if sql:
        with queue.store.db.write() as cur:
            cur.execute(sql)
            if queue.dialect.name == "mysql":
                cur.fetchall()


def settle(queue: reqrunner.JobQueue) -> None:
    """Wait until MySQL/MariaDB has purged the old row versions that the fill's 1M-row update
    left, then (for at most half a minute) until it has written back the pages the fill
    dirtied: a live table's history was written over months, its purge and page writes keeping
    up as it went, and the operations are timed against such a table, not against a backlog
    one minute old."""
    if queue.dialect.name != "mysql":
        return
    _wait_for_status(queue, "Innodb_history_list_length", 180.0)
    _wait_for_status(queue, "Innodb_buffer_pool_pages_dirty", 30.0)


def _wait_for_status(queue: reqrunner.JobQueue, name: str, timeout: float) -> None:
    # Until the server's status variable ``name`` is below SETTLED, or ``timeout`` seconds.
    deadline = time.monotonic() + timeout
    value = 0
    while time.monotonic() < deadline:
        with queue.store.db.read() as cur:
            cur.execute(f"SHOW GLOBAL STATUS LIKE '{name}'")
            value = int(cur.fetchone()[1])
        if value < SETTLED:
            return
        time.sleep(1.0)
    print(f"  mysql's {name} is still {value} after {timeout:.0f} s", file=sys.stderr)


def timed(fn: Callable[[], Any], repeat: int) -> float:
    """Median milliseconds of ``fn()``."""
    fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def measure(queue: reqrunner.JobQueue, repeat: int) -> dict[str, float]:
    from reqrunner.web.admin.data import overview  # noqa: PLC0415 (the web side, only here)

    def admin_overview() -> None:
        overview(queue)
        queue.list_jobs(state="reserved", limit=10)
        queue.list_jobs(state="failed", limit=5)

    figures = {
        "due check (has_due)": timed(queue.has_due, repeat),
        "next_due_in": timed(queue.next_due_in, repeat),
        "empty claim": timed(lambda: queue.store.cycle([], claim=10), repeat),
        "stats()": timed(queue.stats, repeat),
        "list_jobs(failed), a page": timed(lambda: queue.list_jobs(state="failed"), repeat),
        "list_jobs(delayed), a page": timed(lambda: queue.list_jobs(state="delayed"), repeat),
        "admin overview reads": timed(admin_overview, max(3, repeat // 4)),
        "api/status reads": timed(queue.stats, repeat),
    }
    figures["claim + finish, jobs/s"] = drain_rate(queue, 3)
    return figures


def drain_rate(queue: reqrunner.JobQueue, rounds: int) -> float:
    """The median jobs/s of ``rounds`` runs, each claiming and finishing DRAIN_JOBS no-ops."""
    noop = queue.jobs["bench.noop"]
    rates = []
    for _ in range(rounds):
        noop.dispatch_many([{"n": i} for i in range(DRAIN_JOBS)])
        start = time.perf_counter()
        report = queue.run(max_jobs=DRAIN_JOBS, max_time=120)
        rates.append(report.ran / (time.perf_counter() - start))
    return statistics.median(rates)


def new_queue(url: str) -> reqrunner.JobQueue:
    queue = reqrunner.JobQueue(url)

    @queue.job(name="bench.noop")
    def noop(n: int) -> None:
        pass

    return queue


def server_url(base: str, name: str = BENCH_DB) -> str | None:
    """A fresh database of our own on the server at ``base``; None when it does not answer."""
    import sqlalchemy as sa  # noqa: PLC0415

    try:
        admin = resolve_engine(base)
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
        admin.dispose()
    except sa.exc.SQLAlchemyError as exc:
        print(f"skipping {base}: {exc.__class__.__name__}", file=sys.stderr)
        return None
    return admin.url.set(database=name).render_as_string(hide_password=False)


def run_database(
    label: str, url: str, sizes: list[int], repeat: int, *, settled: bool = True
) -> dict[int, dict[str, float]]:
    results: dict[int, dict[str, float]] = {}
    queue = new_queue(url)
    queue.stats()  # creates the tables
    have = 0
    for n in sizes:
        fill(queue, n - have)
        have = n
        # A live database's planner statistics follow its table (autovacuum analyzes it as it
        # grows); a table filled in seconds has none yet, and plans made for the empty table
        # would be timed instead. Fresh statistics also make new plans of prepared statements.
        analyze(queue)
        if settled:
            settle(queue)
        start = time.perf_counter()
        results[n] = measure(queue, repeat)
        print(f"  {label} {n:,} rows: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    queue.close()
    return results


def run_alternate(label: str, empty_url: str, full_url: str, n: int, pairs: int) -> str:
    """Drain an empty database and one with ``n`` delayed and ``n`` history rows in turn,
    ``pairs`` times: the rates and each pair's ratio, medians with their ranges."""
    empty, full = new_queue(empty_url), new_queue(full_url)
    empty.stats()  # creates the tables
    fill(full, n)
    analyze(full)
    settle(full)
    rates: dict[str, list[float]] = {"empty": [], "full": []}
    for pair in range(pairs):
        # Which goes first alternates, so that neither always drains after the other.
        order = (("empty", empty), ("full", full))
        for key, queue in order if pair % 2 == 0 else order[::-1]:
            rates[key].append(drain_rate(queue, 1))
    empty.close()
    full.close()
    ratios = [f / e for e, f in zip(rates["empty"], rates["full"], strict=True)]

    def cell(values: list[float], spec: str) -> str:
        return f"{statistics.median(values):{spec}} [{min(values):{spec}}–{max(values):{spec}}]"

    return "\n".join(
        [
            f"| {label}, claim + finish, {pairs} pairs of drains in turn | median [range] |",
            "|---|---|",
            f"| empty table, jobs/s | {cell(rates['empty'], ',.0f')} |",
            f"| {n:,} delayed + {n:,} history, jobs/s | {cell(rates['full'], ',.0f')} |",
            f"| each pair's ratio | {cell(ratios, '.2f')}× |",
        ]
    )


def new_databases(tmp: str, base: str | None) -> Callable[[], str]:
    """What makes a new database at each call: a new SQLite file in ``tmp`` (``base`` None),
    else the bench's database on the server at ``base``, dropped and made again."""
    files = itertools.count(1)

    def fresh() -> str:
        if base is None:
            return f"sqlite:///{tmp}/split-{next(files)}.sqlite3"
        url = server_url(base)
        if url is None:
            raise SystemExit(f"{base} stopped answering")
        return url

    return fresh


def run_split(
    label: str, fresh: Callable[[], str], n: int, rounds: int, *, settled: bool = True
) -> str:
    """The claim + finish rate on two new databases, each empty, then with ``n`` rows of one
    kind, then of both: a table of the rates against each database's empty one."""
    lines = [f"| {label}, claim + finish | jobs/s | against its empty table |", "|---|---|---|"]
    for order in (KINDS, KINDS[::-1]):
        queue = new_queue(fresh())
        queue.stats()  # creates the tables
        empty = drain_rate(queue, rounds)
        lines.append(f"| empty | {empty:,.0f} | 1.00× |")
        for step, kind in enumerate(order):
            fill(queue, n, (kind,))
            analyze(queue)
            if settled:
                settle(queue)
            rate = drain_rate(queue, rounds)
            what = f"{n:,} {kind}" if step == 0 else f"and {n:,} {kind}"
            lines.append(f"| {what} | {rate:,.0f} | {rate / empty:.2f}× |")
        queue.close()
    return "\n".join(lines)


def table(label: str, sizes: list[int], results: dict[int, dict[str, float]]) -> str:
    head = f"| {label}, with N delayed + N history rows | " + " | ".join(f"{n:,}" for n in sizes)
    lines = [head + " |", "|---" * (len(sizes) + 1) + "|"]
    for op in OPERATIONS:
        cells = []
        for n in sizes:
            value = results[n][op]
            cells.append(f"{value:,.0f}" if op.endswith("jobs/s") else f"{value:.2f} ms")
        lines.append(f"| {op} | " + " | ".join(cells) + " |")
    rate = "claim + finish, jobs/s"
    ratios = [f"{results[n][rate] / results[sizes[0]][rate]:.2f}×" for n in sizes]
    lines.append(f"| claim + finish against {sizes[0]:,} rows | " + " | ".join(ratios) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="0,100000,1000000")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--pg", default=os.environ.get("REQRUNNER_TEST_POSTGRES_URL", DEFAULT_PG))
    parser.add_argument(
        "--mysql", default=os.environ.get("REQRUNNER_TEST_MYSQL_URL", DEFAULT_MYSQL)
    )
    parser.add_argument("--only", choices=["sqlite", "postgresql", "mysql"])
    parser.add_argument("--repeat", type=int, help="calls per median (default 41; 5 quick)")
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--split", action="store_true", help="which rows slow claim + finish")
    how.add_argument("--alternate", action="store_true", help="claim + finish side by side")
    args = parser.parse_args()
    sizes = [0, 2_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    repeat = args.repeat or (5 if args.quick else 41)
    print(f"# reqrunner scaling, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"load average at start: {os.getloadavg()[0]:.2f}\n")
    bases: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        targets = {"sqlite": f"sqlite:///{tmp}/scaling.sqlite3"}
        for name, base in (("postgresql", args.pg), ("mysql", args.mysql)):
            if base and (args.only in (None, name)):
                url = server_url(base)
                if url is not None:
                    targets[name] = url
                    bases[name] = base
        for name, url in targets.items():
            if args.only not in (None, name):
                continue
            if args.alternate:
                base = bases.get(name)
                other = (
                    f"sqlite:///{tmp}/empty.sqlite3"
                    if base is None
                    else server_url(base, f"{BENCH_DB}_empty")
                )
                if other is None:
                    continue
                pairs = 2 if args.quick else 7
                print(run_alternate(name, other, url, max(sizes), pairs) + "\n")
                continue
            if args.split:
                fresh = new_databases(tmp, bases.get(name))
                rounds = 1 if args.quick else 5
                print(run_split(name, fresh, max(sizes), rounds, settled=not args.quick) + "\n")
                continue
            # The quick mode's tables are small, and only the figures need a settled server.
            results = run_database(name, url, sizes, repeat, settled=not args.quick)
            print(table(name, sizes, results) + "\n")
            if name == "sqlite":
                size = Path(f"{tmp}/scaling.sqlite3").stat().st_size
                print(f"SQLite file: {size / 1e6:.1f} MB\n")


if __name__ == "__main__":
    main()
