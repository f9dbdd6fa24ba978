"""The Queue Manager's pages, rendered to HTML strings.

Nothing here touches the database or the request: :mod:`reqrunner.web.admin.site` reads what a
page shows and hands it over. The bodies are the files in ``templates/``; every value is escaped
by :func:`~reqrunner.web.admin.markup.render`. The pages work without JavaScript; the script only
refreshes counts and progress and asks for confirmation before the bulk actions. Elements a test
or a script looks for carry ``data-*`` attributes, so the markup around them may change.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ...models import JobInfo, JobState
from ..health import Health
from . import parts
from .data import Finished, Overview
from .doctor_view import doctor_section
from .markup import Safe, ago, duration, esc, join, render, template, url
from .parts import LIST_STATES, Listing, Page

if TYPE_CHECKING:
    from ..doctor import Report

__all__ = ["detail_page", "list_page", "message_page", "overview_page"]

_NOTHING = Safe("")

OVERDUE_WARNING = 3600.0
"""Seconds: a due job older than this means nothing is running the queue often enough."""

_MODES = {
    "sync": "sync: runs in this process after the response",
    "async": "async: a signed self-request to the run endpoint, in-process if it fails",
    "js": "js: the visitor's browser calls the run endpoint",
    "auto": "auto: in-process after the response (the visitor's browser under CGI)",
}


def overview_page(
    page: Page,
    data: Overview,
    health: Health,
    *,
    tick_url: str,
    reserved: Sequence[JobInfo],
    failed: Sequence[JobInfo],
    query: Mapping[str, str],
    doctor: Report | None = None,
    periodic: Safe = _NOTHING,
) -> str:
    """The landing page: counts, the periodic jobs (``periodic``, rendered by
    :mod:`~reqrunner.web.admin.schedules`), throughput, health, doctor's latest report, what
    runs now, the latest failures."""
    stats = data.stats
    counts = {
        "waiting": stats.waiting,
        "delayed": stats.delayed,
        "reserved": stats.reserved,
        "failed": stats.failed,
        "done": stats.done,
    }
    tiles = join(
        render(
            '<a class="tile {state}" href="{href}"><span class="n" data-count="{state}">{n}</span>'
            '<span class="what">{label}</span></a>',
            state=state,
            href=url(page.base, "/jobs", state=state),
            n=counts[state] if state != "done" or data.keep_done else "—",
            label=label if state != "done" or data.keep_done else "Done (not kept)",
        )
        for state, label in LIST_STATES.items()
    )
    body = template(
        "overview.html",
        flash=parts.flash(query),
        tiles=tiles,
        due=_due(data, health),
        periodic=periodic,
        actions=_overview_actions(page, stats.failed),
        health=_health(page, data, health, tick_url),
        hour=_finished("hour", "Last hour", data.last_hour),
        day=_finished("day", "Last 24 hours", data.last_day),
        reserved=parts.rows(page, reserved) if reserved else render("<p>No job is reserved.</p>"),
        failed=parts.rows(page, failed) if failed else render("<p>No failed jobs.</p>"),
        doctor=doctor_section(page, doctor),
    )
    return parts.layout(page, "Overview", body, active="overview", refresh=True)


def _due(data: Overview, health: Health) -> Safe:
    stats = data.stats
    oldest = stats.oldest_due_age
    if oldest is None:
        due = render("<p>Nothing is due.</p>")
    elif oldest > OVERDUE_WARNING:
        due = render(
            '<p class="flash warn" role="alert">The oldest due job has waited '
            "<b data-oldest-due>{age}</b>. Nothing has run the queue for a while: check the "
            "health below, raise <code>run_rate</code>, or add a cron line or a worker.</p>",
            age=duration(oldest),
        )
    else:
        due = render(
            "<p>The oldest due job has waited <b data-oldest-due>{age}</b>.</p>",
            age=duration(oldest),
        )
    if health.run_rate <= 0 and not data.workers and stats.waiting + stats.delayed:
        due = render(
            '{due}<p class="flash warn" role="alert">Page views do not run jobs here '
            "(<code>run_rate=0</code>) and no worker has reported in the last 35 s: unless a "
            "cron line runs <code>reqrunner run</code>, these jobs wait.</p>",
            due=due,
        )
    return due


def _finished(span: str, label: str, counts: Finished) -> Safe:
    rate = counts.failure_rate
    return render(
        '<tr data-finished="{span}"><th>{label}</th><td>{done}</td><td>{retried}</td>'
        "<td>{failed}</td><td>{rate}</td></tr>",
        span=span,
        label=label,
        done=counts.done,
        retried=counts.retried,
        failed=counts.failed,
        rate="—" if rate is None else f"{rate:.0%}",
    )


def _overview_actions(page: Page, failed: int) -> Safe:
    actions = [parts.button(page, "/run", "Run a batch now", back="", style="primary")]
    if failed:
        actions.append(
            parts.button(
                page,
                "/failed/retry",
                f"Retry all failed ({failed})",
                back="",
                confirm=f"Retry all {failed} failed jobs?",
            )
        )
        actions.append(
            parts.button(
                page,
                "/failed/delete",
                f"Delete all failed ({failed})",
                back="",
                style="danger",
                confirm=f"Delete all {failed} failed jobs? This cannot be undone.",
            )
        )
    return join(actions)


def _last_run(page: Page, run: Mapping[str, object] | None) -> Safe:
    if run is None:
        return render("none recorded yet")
    return render(
        "{when} via {via}: {ran} ran, {ok} succeeded, {retried} retried, {failed} failed "
        "in {elapsed}; stopped by {stopped}",
        when=ago(parts.number(run.get("at")), page.now),
        via=run.get("via", "?"),
        ran=run.get("ran", "?"),
        ok=run.get("succeeded", "?"),
        retried=run.get("retried", "?"),
        failed=run.get("failed", "?"),
        elapsed=duration(parts.number(run.get("elapsed"))),
        stopped=run.get("stopped_by", "?"),
    )


def _self_request(page: Page, sr: Mapping[str, object] | None) -> Safe:
    if sr is None:
        return render("no failure recorded")
    return render(
        "{when} to <code>{url}</code>: {result}",
        when=ago(parts.number(sr.get("at")), page.now),
        url=sr.get("url", "?"),
        result="OK (202)" if sr.get("ok") else f"failed ({sr.get('error', 'unknown error')})",
    )


def _memory(max_memory: float | str | None) -> str:
    if max_memory is None:
        return "no memory limit"
    if isinstance(max_memory, str):
        return f"{max_memory} of memory"
    return f"{max_memory:g} % of the process's memory limit"


def _health(page: Page, data: Overview, health: Health, tick_url: str) -> Safe:
    mode = _MODES.get(health.mode, health.mode)
    if health.run_rate <= 0:
        mode = "off: run_rate=0, page views never run jobs"
    if health.breaker_open:
        breaker = render(
            '<span class="bad">open</span>: this process runs jobs in-process instead ({err})',
            err=health.breaker_error or "the last self-request failed",
        )
    else:
        breaker = render('<span class="good">closed</span>: self-requests are tried')
    workers = (
        join(
            render(
                "<li><code>{host}</code> pid {pid}, {queues}, up {up}, seen {seen}</li>",
                host=w.host,
                pid=w.pid,
                queues="all queues" if w.queues is None else "queues " + ", ".join(w.queues),
                up=duration(page.now - w.started),
                seen=ago(w.seen, page.now),
            )
            for w in data.workers
        )
        if data.workers
        else Safe("<li>none in the last 35 s</li>")
    )
    return template(
        "health.html",
        mode=mode,
        rate=f"{health.run_rate:g}",
        jobs="unlimited" if health.max_jobs is None else health.max_jobs,
        time="no time limit" if health.max_time is None else f"{health.max_time:g} s",
        memory=_memory(health.max_memory),
        last_run=_last_run(page, data.last_run),
        self_request=_self_request(page, data.self_request),
        breaker_state="open" if health.breaker_open else "closed",
        breaker=breaker,
        workers=workers,
        db=data.database,
        tick=tick_url,
    )


def list_page(
    page: Page,
    listing: Listing,
    *,
    jobs: Sequence[JobInfo],
    total: int,
    per_page: int,
    query: Mapping[str, str],
) -> str:
    """One state's jobs, filtered by name and queue, a page at a time."""
    state, name, queue, page_number = listing.state, listing.name, listing.queue, listing.number
    label = LIST_STATES[state]
    back = url("", "/jobs", state=state, name=name, queue=queue, page=page_number)
    first = (page_number - 1) * per_page + 1
    last = first + len(jobs) - 1
    pages = max(1, -(-total // per_page))

    def link(number: int, text: str) -> Safe:
        if number < 1 or number > pages or number == page_number:
            return render('<span class="disabled">{text}</span>', text=text)
        return render(
            '<a href="{href}">{text}</a>',
            href=url(page.base, "/jobs", state=state, name=name, queue=queue, page=number),
            text=text,
        )

    paging = render(
        '<nav class="paging" aria-label="Pages">{prev}<span>{where}</span>{next}</nav>',
        prev=link(page_number - 1, "← Newer" if state in ("failed", "done") else "← Previous"),
        where=f"{first}–{last} of {total}" if jobs else f"0 of {total}",
        next=link(page_number + 1, "Older →" if state in ("failed", "done") else "Next →"),
    )
    bulk = Safe("")
    if state == "failed" and total:
        retry = parts.button(
            page, "/failed/retry", "Retry all failed", back=back, confirm="Retry every failed job?"
        )
        delete = parts.button(
            page,
            "/failed/delete",
            "Delete all failed",
            back=back,
            style="danger",
            confirm="Delete every failed job? This cannot be undone.",
        )
        bulk = join((retry, delete))
    body = template(
        "list.html",
        label=label,
        flash=parts.flash(query),
        action=url(page.base, "/jobs"),
        state=state,
        name=name,
        queue=queue,
        bulk=bulk,
        table=parts.rows(page, jobs) if jobs else render('<p class="empty">No jobs here.</p>'),
        paging=paging,
    )
    return parts.layout(page, f"{label} jobs", body, active=state)


def _json(value: object) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def _job_actions(page: Page, job: JobInfo) -> Safe:
    back = f"/jobs/{job.id}"
    buttons = []
    if job.state in (JobState.FAILED, JobState.WAITING):
        again = "Retry" if job.state is JobState.FAILED else "Make due now"
        buttons.append(
            parts.button(page, f"/jobs/{job.id}/retry", again, back=back, style="primary")
        )
    if job.state is JobState.RESERVED:
        buttons.append(
            parts.button(
                page,
                f"/jobs/{job.id}/release",
                "Release",
                back=back,
                confirm="Release this job? If its runner is still alive, the job may run twice.",
            )
        )
    buttons.append(
        parts.button(
            page,
            f"/jobs/{job.id}/delete",
            "Delete",
            back="",
            style="danger",
            confirm=f"Delete job #{job.id}? This cannot be undone.",
        )
    )
    return join(buttons)


def _history(page: Page, job: JobInfo) -> Safe:
    if not job.history:
        return Safe("<p>No failed attempts.</p>")
    rows = join(
        render(
            '<tr><td data-label="Attempt">{n}</td><td data-label="When">{at}</td>'
            '<td data-label="Outcome">{outcome}</td>'
            '<td data-label="Error" class="error">{error}</td></tr>',
            n=label,
            at=ago(parts.number(entry.get("at")), page.now),
            outcome=entry.get("outcome", "?"),
            error=entry.get("error", ""),
        )
        for label, entry in zip(parts.attempt_labels(job.history), job.history, strict=True)
    )
    return template("history.html", rows=rows)


def detail_page(page: Page, job: JobInfo, *, query: Mapping[str, str]) -> str:
    """One job: its actions, facts, arguments, error with traceback, and attempt history."""
    state = parts.state_name(job)
    error = Safe("")
    if job.error is not None:
        error = template(
            "error.html",
            type=job.error.type,
            message=job.error.message,
            tb=job.error.traceback or "(no traceback recorded)",
        )
    facts = [
        ("State", render('<span class="badge {s}" data-state-text>{s}</span>', s=state)),
        ("Queue", esc(job.queue)),
        ("Priority", esc(job.priority)),
        ("Attempts", render("{a} of {m}", a=job.attempts, m=job.max_attempts)),
        ("Time to run (ttr)", esc(duration(job.ttr))),
        ("Created", ago(job.created_at, page.now)),
        ("Due", ago(job.available_at, page.now)),
        ("Lease until", ago(job.reserved_until, page.now)),
        ("Finished", ago(job.finished_at, page.now)),
        ("Progress", parts.progress(job) or Safe("—")),
        ("Unique key", esc(job.unique_key or "—")),
    ]
    body = template(
        "detail.html",
        list=url(page.base, "/jobs", state=state),
        list_label=LIST_STATES.get(state, state.title()),
        id=job.id,
        name=job.name,
        desc=job.description,
        flash=parts.flash(query),
        watch=parts.watch(job),
        buttons=_job_actions(page, job),
        facts=join(render("<dt>{k}</dt><dd>{v}</dd>", k=k, v=v) for k, v in facts),
        error=error,
        args=_json({"args": list(job.args), "kwargs": job.kwargs}),
        history=_history(page, job),
    )
    return parts.layout(page, f"Job #{job.id}", body, active=state)


def message_page(page: Page, title: str, text: str) -> str:
    """A page that only says something: a missing job, a refused form."""
    body = template("message.html", title=title, text=text, home=page.base)
    return parts.layout(page, title, body)
