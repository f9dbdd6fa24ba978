"""How the console script shows things: rich in a terminal, plain text in a pipe, or JSON.

The verbs in :mod:`reqrunner.cli` compute values (``JobInfo``, ``QueueStats``, ``RunReport``) and
hand them to one :class:`Output`, which alone decides how they look. ``--json`` output is meant
for scripts: one JSON document per command on stdout, times as ISO 8601 in UTC.

rich is imported only when something is drawn on a terminal: a cron line or a pipe never loads it.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any, TextIO

from ..models import JobInfo, QueueStats, RunReport, WorkerSeen

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

__all__ = [
    "Output",
    "RunProgress",
    "job_to_dict",
    "on_terminal",
    "stats_to_dict",
    "stderr_console",
]


def on_terminal(stream: TextIO) -> bool:
    """Whether rich would draw on ``stream``. rich is asked (and imported) only when the answer
    can be yes: the stream is a terminal, or rich's ``TTY_COMPATIBLE`` / ``FORCE_COLOR`` say to
    treat it as one."""
    if "TTY_COMPATIBLE" not in os.environ and "FORCE_COLOR" not in os.environ:
        try:
            if not stream.isatty():
                return False
        except (AttributeError, ValueError):  # no isatty, or a closed stream
            return False
    from rich.console import Console  # noqa: PLC0415 (only for a terminal)

    return Console(file=stream).is_terminal


@cache
def stderr_console() -> Console:
    """The one rich console on stderr, shared by the log handler and the progress bar so that
    log lines print above the bar instead of through it. Only for a terminal (see
    :func:`on_terminal`)."""
    from rich.console import Console  # noqa: PLC0415 (only for a terminal)

    return Console(stderr=True, highlight=False)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def job_to_dict(job: JobInfo) -> dict[str, Any]:
    """A JSON-ready dict of one job: every ``JobInfo`` field, plus ``delayed``."""
    return {
        "id": job.id,
        "name": job.name,
        "queue": job.queue,
        "state": job.state.value,
        "delayed": job.delayed,
        "args": list(job.args),
        "kwargs": job.kwargs,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "priority": job.priority,
        "ttr": job.ttr,
        "available_at": _iso(job.available_at),
        "reserved_until": _iso(job.reserved_until),
        "progress": job.progress,
        "label": job.label,
        "description": job.description,
        "error": None
        if job.error is None
        else {
            "type": job.error.type,
            "message": job.error.message,
            "traceback": job.error.traceback,
        },
        "history": list(job.history),
        "created_at": _iso(job.created_at),
        "finished_at": _iso(job.finished_at),
        "unique_key": job.unique_key,
    }


def stats_to_dict(stats: QueueStats, workers: Sequence[WorkerSeen]) -> dict[str, Any]:
    """A JSON-ready dict of the queue's counts and the workers seen recently."""
    return {
        "waiting": stats.waiting,
        "delayed": stats.delayed,
        "reserved": stats.reserved,
        "failed": stats.failed,
        "done": stats.done,
        "total": stats.total,
        "oldest_due_age": stats.oldest_due_age,
        "workers": [
            {
                "host": w.host,
                "pid": w.pid,
                "started": datetime.fromtimestamp(w.started, UTC).isoformat(),
                "seen": datetime.fromtimestamp(w.seen, UTC).isoformat(),
                "queues": None if w.queues is None else list(w.queues),
            }
            for w in workers
        ],
    }


def _ago(seconds: float) -> str:
    """``90`` -> ``"1m 30s"``: short and readable at a glance, for tables."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60}s"
    if seconds < 86400:
        return f"{seconds // 3600}h {seconds % 3600 // 60}m"
    return f"{seconds // 86400}d {seconds % 86400 // 3600}h"


def _when(value: datetime | None, now: float) -> str:
    if value is None:
        return "-"
    delta = value.timestamp() - now
    return f"in {_ago(delta)}" if delta > 0.5 else f"{_ago(-delta)} ago"


def _state(job: JobInfo) -> str:
    return "delayed" if job.delayed else job.state.value


def _progress(job: JobInfo) -> str:
    if job.progress is None:
        return "-"
    text = f"{job.progress * 100:.0f}%"
    return f"{text} {job.label}" if job.label else text


def _error(job: JobInfo) -> str:
    return "" if job.error is None else f"{job.error.type}: {job.error.message}".splitlines()[0]


class Output:
    """Renders the CLI's results on ``stream`` (stdout) in one of three styles.

    ``json=True`` writes JSON; otherwise rich tables when ``stream`` is a terminal and aligned
    plain text when it is not (a pipe, a log file, cron's mail).
    """

    def __init__(self, *, json: bool = False, stream: TextIO | None = None) -> None:
        self.json = json
        self.stream = stream if stream is not None else sys.stdout
        self.rich = not json and on_terminal(self.stream)
        self._console: Console | None = None
        if self.rich:
            from rich.console import Console  # noqa: PLC0415 (only for a terminal)

            self._console = Console(file=self.stream, highlight=False, soft_wrap=False)

    def data(self, value: Any) -> None:
        """Write ``value`` as one JSON document (``--json``)."""
        json_text = json.dumps(value, indent=2, sort_keys=False, default=str)
        self.stream.write(json_text + "\n")
        self.stream.flush()

    def line(self, text: str) -> None:
        """A one-line human message (ignored in JSON mode, where ``data`` says it all)."""
        if self.json:
            return
        if self._console is not None:
            self._console.print(text, markup=False)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[str]], title: str = "") -> None:
        """A table: rich in a terminal, columns padded with spaces otherwise."""
        if self._console is not None:
            from rich.table import Table  # noqa: PLC0415 (only for a terminal)

            table = Table(title=title or None, title_justify="left")
            for header in headers:
                table.add_column(header, overflow="fold")
            for row in rows:
                table.add_row(*row)
            self._console.print(table)
            return
        widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
        lines = [headers, *rows]
        for row in lines:
            text = "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
            self.stream.write(text + "\n")
        self.stream.flush()

    def jobs(self, jobs: Sequence[JobInfo], *, empty: str = "No jobs.") -> None:
        """A list of jobs, one row each."""
        if self.json:
            self.data([job_to_dict(job) for job in jobs])
            return
        if not jobs:
            self.line(empty)
            return
        now = time.time()
        rows = [
            [
                str(job.id),
                _state(job),
                job.queue,
                job.name,
                f"{job.attempts}/{job.max_attempts}",
                _when(job.available_at, now),
                _progress(job),
                _error(job),
            ]
            for job in jobs
        ]
        headers = ["ID", "STATE", "QUEUE", "NAME", "TRIES", "DUE", "PROGRESS", "ERROR"]
        self.table(headers, rows)

    def job(self, job: JobInfo) -> None:
        """Everything about one job, traceback and history included."""
        if self.json:
            self.data(job_to_dict(job))
            return
        now = time.time()
        arguments = ", ".join(
            [json.dumps(a) for a in job.args]
            + [f"{k}={json.dumps(v)}" for k, v in job.kwargs.items()]
        )
        fields: Mapping[str, str] = {
            "id": str(job.id),
            "name": job.name,
            "arguments": f"({arguments})",
            "queue": job.queue,
            "state": _state(job),
            "attempts": f"{job.attempts} of {job.max_attempts}",
            "priority": str(job.priority),
            "progress": _progress(job),
            "description": job.description or "-",
            "created": f"{_iso(job.created_at)} ({_when(job.created_at, now)})",
            "due": f"{_iso(job.available_at)} ({_when(job.available_at, now)})",
            "reserved until": _iso(job.reserved_until) or "-",
            "finished": _iso(job.finished_at) or "-",
            "unique key": job.unique_key or "-",
        }
        self.table(["FIELD", "VALUE"], [[k, v] for k, v in fields.items()], title=f"Job {job.id}")
        if job.history:
            rows = [
                [
                    str(entry.get("attempt", "")),
                    datetime.fromtimestamp(float(entry.get("at", 0)), UTC).isoformat(),
                    str(entry.get("outcome", "")),
                    str(entry.get("error", "")),
                ]
                for entry in job.history
            ]
            self.table(["ATTEMPT", "AT", "OUTCOME", "ERROR"], rows, title="History")
        if job.error is not None:
            self.line(f"Last error: {job.error.type}: {job.error.message}")
            if job.error.traceback:
                self.line(job.error.traceback.rstrip())

    def stats(self, stats: QueueStats, workers: Sequence[WorkerSeen]) -> None:
        """Counts per state, the oldest due job's age and the workers seen recently."""
        if self.json:
            self.data(stats_to_dict(stats, workers))
            return
        oldest = "-" if stats.oldest_due_age is None else _ago(stats.oldest_due_age)
        rows = [
            ["waiting (due)", str(stats.waiting)],
            ["delayed", str(stats.delayed)],
            ["reserved", str(stats.reserved)],
            ["failed", str(stats.failed)],
            ["done", str(stats.done)],
            ["oldest due job", oldest],
            ["workers seen", str(len(workers))],
        ]
        self.table(["", "COUNT"], rows, title="Queue")
        if workers:
            now = time.time()
            worker_rows = [
                [
                    w.host,
                    str(w.pid),
                    "all" if w.queues is None else ",".join(w.queues),
                    f"{_ago(now - w.started)} ago",
                    f"{_ago(now - w.seen)} ago",
                ]
                for w in workers
            ]
            self.table(["HOST", "PID", "QUEUES", "STARTED", "SEEN"], worker_rows, title="Workers")

    def report(self, report: RunReport) -> None:
        """The outcome of one ``run``."""
        if self.json:
            self.data(
                {
                    "ran": report.ran,
                    "succeeded": report.succeeded,
                    "retried": report.retried,
                    "failed": report.failed,
                    "interrupted": report.interrupted,
                    "elapsed": report.elapsed,
                    "stopped_by": report.stopped_by,
                }
            )
            return
        self.line(
            f"Ran {report.ran} job(s) in {report.elapsed:.2f}s: {report.succeeded} succeeded, "
            f"{report.retried} retried, {report.failed} failed, {report.interrupted} interrupted "
            f"recovered; stopped by {report.stopped_by}."
        )

    @contextmanager
    def progress(self, due: int) -> Iterator[RunProgress]:
        """A progress bar on stderr (jobs done / due, current job) in a terminal; else a no-op.

        The bar's caption is the runner's latest log line, which names the job it started.
        """
        if self.json or not on_terminal(sys.stderr):
            yield RunProgress(None)
            return
        from rich.progress import (  # noqa: PLC0415 (only for a terminal)
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        bar = Progress(
            TextColumn("[bold]running"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.description}", markup=False),
            console=stderr_console(),
            transient=True,
        )
        tracker = RunProgress(bar)
        bar.add_task("", total=max(due, 1))
        runner_log = logging.getLogger("reqrunner.runner")
        runner_log.addHandler(tracker)
        try:
            with bar:
                yield tracker
        finally:
            runner_log.removeHandler(tracker)


class RunProgress(logging.Handler):
    """What ``Output.progress`` yields: pass :meth:`tick` as the run's ``should_stop``."""

    def __init__(self, bar: Progress | None) -> None:
        super().__init__(logging.INFO)
        self._bar = bar
        self._calls = 0

    def tick(self) -> bool:
        """Called by the runner before each job: the calls so far, minus one, are jobs done."""
        self._calls += 1
        if self._bar is not None and self._calls > 1:
            task = self._bar.tasks[0]
            done = self._calls - 1
            # More jobs may have come due since the count was taken.
            self._bar.update(task.id, completed=done, total=max(task.total or 0, done))
        return False

    def emit(self, record: logging.LogRecord) -> None:
        if self._bar is not None:
            self._bar.update(self._bar.tasks[0].id, description=record.getMessage())
