"""The Queue Manager's pages, rendered to HTML strings.

Nothing here touches the database or the request: :mod:`reqrunner.admin.site` reads what a page
shows and hands it over. Every value is escaped by :func:`~reqrunner.admin.markup.render`.
The pages work without JavaScript; the script only refreshes counts and progress and asks for
confirmation before the bulk actions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ...models import JobInfo, JobState
from . import parts
from .data import Finished, Overview
from .markup import Safe, ago, duration, esc, join, render, url
from .parts import LIST_STATES, Page

__all__ = [
    "Health",
    "detail_page",
    "list_page",
    "message_page",
    "overview_page",
]

OVERDUE_WARNING = 3600.0
"""Seconds: a due job older than this means nothing is running the queue often enough."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Health:
    """What this process knows about how the middleware runs jobs."""

    mode: str
    run_rate: float
    max_jobs: int | None
    max_time: float | None
    breaker_open: bool
    breaker_error: str | None
    database: str
    tick_url: str
    """The signed URL that makes a quiet site run its due jobs when fetched."""


# -- pages ----------------------------------------------------------------------------------------


def overview_page(
    page: Page,
    data: Overview,
    health: Health,
    *,
    reserved: Sequence[JobInfo],
    failed: Sequence[JobInfo],
    query: Mapping[str, str],
) -> str:
    """The landing page: counts, throughput, health, what runs now, the latest failures."""
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
    oldest = stats.oldest_due_age
    if oldest is None:
        due = render("<p>Nothing is due.</p>")
    elif oldest > OVERDUE_WARNING:
        due = render(
            '<p class="flash warn" role="alert">The oldest due job has waited <b>{age}</b>. '
            "Nothing has run the queue for a while: check the health below, raise "
            "<code>run_rate</code>, or add a cron line or a worker.</p>",
            age=duration(oldest),
        )
    else:
        due = render("<p>The oldest due job has waited <b>{age}</b>.</p>", age=duration(oldest))
    if health.run_rate <= 0 and not data.workers and stats.waiting + stats.delayed:
        due = render(
            '{due}<p class="flash warn" role="alert">Page views do not run jobs here '
            "(<code>run_rate=0</code>) and no worker has reported in the last 35 s: unless a "
            "cron line runs <code>reqrunner run</code>, these jobs wait.</p>",
            due=due,
        )

    def finished(label: str, span: Finished) -> Safe:
        rate = span.failure_rate
        return render(
            "<tr><th>{label}</th><td>{done}</td><td>{retried}</td><td>{failed}</td>"
            "<td>{rate}</td></tr>",
            label=label,
            done=span.done,
            retried=span.retried,
            failed=span.failed,
            rate="—" if rate is None else f"{rate:.0%}",
        )

    throughput = render(
        '<section><h2>Finished jobs</h2><div class="table"><table class="compact">'
        "<thead><tr><th></th><th>Done</th><th>Retried</th><th>Failed</th>"
        "<th>Failure rate</th></tr></thead>"
        "<tbody>{hour}{day}</tbody></table></div></section>",
        hour=finished("Last hour", data.last_hour),
        day=finished("Last 24 hours", data.last_day),
    )
    actions = join(
        (
            parts.button(
                page,
                "/run",
                "Run a batch now",
                back="",
                style="primary",
            ),
            parts.button(
                page,
                "/failed/retry",
                f"Retry all failed ({stats.failed})",
                back="",
                confirm=f"Retry all {stats.failed} failed jobs?",
            )
            if stats.failed
            else Safe(""),
            parts.button(
                page,
                "/failed/delete",
                f"Delete all failed ({stats.failed})",
                back="",
                style="danger",
                confirm=f"Delete all {stats.failed} failed jobs? This cannot be undone.",
            )
            if stats.failed
            else Safe(""),
        )
    )
    body = render(
        "<h1>Queue Manager</h1>{flash}"
        '<section class="tiles">{tiles}</section>{due}'
        '<section class="actions">{actions}</section>'
        '<div class="columns">{health}{throughput}</div>'
        "<section><h2>Running now</h2>{reserved}</section>"
        "<section><h2>Latest failures</h2>{failed}</section>",
        flash=parts.flash(query),
        tiles=tiles,
        due=due,
        actions=actions,
        health=_health(page, data, health),
        throughput=throughput,
        reserved=parts.rows(page, reserved) if reserved else render("<p>No job is reserved.</p>"),
        failed=parts.rows(page, failed) if failed else render("<p>No failed jobs.</p>"),
    )
    return parts.layout(page, "Overview", body, active="overview", refresh=True)


def _health(page: Page, data: Overview, health: Health) -> Safe:
    mode = {
        "sync": "sync: runs in this process after the response",
        "async": "async: a signed self-request to the run endpoint, in-process if it fails",
        "js": "js: the visitor's browser calls the run endpoint",
        "auto": "auto: in-process after the response (the visitor's browser under CGI)",
    }.get(health.mode, health.mode)
    if health.run_rate <= 0:
        mode = "off: run_rate=0, page views never run jobs"
    run = data.last_run
    if run is None:
        last_run = render("none recorded yet")
    else:
        last_run = render(
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
    sr = data.self_request
    if sr is None:
        self_request = render("no failure recorded")
    else:
        self_request = render(
            "{when} to <code>{url}</code>: {result}",
            when=ago(parts.number(sr.get("at")), page.now),
            url=sr.get("url", "?"),
            result="OK (202)" if sr.get("ok") else f"failed ({sr.get('error', 'unknown error')})",
        )
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
    return render(
        '<section><h2>Health</h2><dl class="facts">'
        "<dt>Run mode</dt><dd>{mode}</dd>"
        "<dt>Run rate</dt><dd>{rate}</dd>"
        "<dt>Batch limits</dt><dd>{jobs} jobs, {time}</dd>"
        "<dt>Last in-request run</dt><dd>{last_run}</dd>"
        "<dt>Last self-request</dt><dd>{self_request}</dd>"
        "<dt>Circuit breaker (this process)</dt><dd>{breaker}</dd>"
        '<dt>Workers seen</dt><dd><ul class="plain">{workers}</ul></dd>'
        "<dt>Database</dt><dd><code>{db}</code></dd>"
        "<dt>Tick URL</dt><dd>for quiet sites: point an uptime monitor or a remote cron at "
        '<code class="tick">{tick}</code>; each fetch runs a bounded batch of due jobs '
        "(valid for a year, or until the site's secret changes)</dd></dl></section>",
        mode=mode,
        rate=f"{health.run_rate:g}",
        jobs="unlimited" if health.max_jobs is None else health.max_jobs,
        time="no time limit" if health.max_time is None else f"{health.max_time:g} s",
        last_run=last_run,
        self_request=self_request,
        breaker=breaker,
        workers=workers,
        db=health.database,
        tick=health.tick_url,
    )


def list_page(
    page: Page,
    *,
    state: str,
    jobs: Sequence[JobInfo],
    total: int,
    page_number: int,
    per_page: int,
    name: str,
    queue: str,
    query: Mapping[str, str],
) -> str:
    """One state's jobs, filtered by name and queue, a page at a time."""
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
        bulk = join(
            (
                parts.button(
                    page,
                    "/failed/retry",
                    "Retry all failed",
                    back=back,
                    confirm="Retry every failed job?",
                ),
                parts.button(
                    page,
                    "/failed/delete",
                    "Delete all failed",
                    back=back,
                    style="danger",
                    confirm="Delete every failed job? This cannot be undone.",
                ),
            )
        )
    body = render(
        "<h1>{label} jobs</h1>{flash}"
        '<form class="filter" method="get" action="{action}">'
        '<input type="hidden" name="state" value="{state}">'
        '<label>Name contains <input name="name" value="{name}" type="search"></label>'
        '<label>Queue <input name="queue" value="{queue}" type="search"></label>'
        '<button type="submit">Filter</button></form>'
        '<section class="actions">{bulk}</section>{table}{paging}',
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


def detail_page(page: Page, job: JobInfo, *, query: Mapping[str, str]) -> str:
    """One job: its actions, facts, arguments, error with traceback, and attempt history."""
    state = parts.state_name(job)
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
    error = Safe("")
    if job.error is not None:
        error = render(
            '<section><h2>Last error</h2><p class="error-text">{type}: {message}</p>'
            '<details class="traceback"><summary>Traceback</summary><pre>{tb}</pre></details>'
            "</section>",
            type=job.error.type,
            message=job.error.message,
            tb=job.error.traceback or "(no traceback recorded)",
        )
    history = Safe("<p>No failed attempts.</p>")
    if job.history:
        history = render(
            '<div class="table"><table class="cards compact"><thead><tr><th>Attempt</th>'
            "<th>When</th><th>Outcome</th><th>Error</th></tr></thead><tbody>{rows}</tbody>"
            "</table></div>",
            rows=join(
                render(
                    '<tr><td data-label="Attempt">{n}</td><td data-label="When">{at}</td>'
                    '<td data-label="Outcome">{outcome}</td>'
                    '<td data-label="Error" class="error">{error}</td></tr>',
                    n=entry.get("attempt", "?"),
                    at=ago(parts.number(entry.get("at")), page.now),
                    outcome=entry.get("outcome", "?"),
                    error=entry.get("error", ""),
                )
                for entry in job.history
            ),
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
    body = render(
        '<article{watch}><p class="crumbs"><a href="{list}">{list_label} jobs</a></p>'
        "<h1>Job #{id} <code>{name}</code></h1>"
        '<p class="desc">{desc}</p>{flash}'
        '<section class="actions">{buttons}</section>'
        '<dl class="facts">{facts}</dl>{error}'
        "<section><h2>Arguments</h2><pre>{args}</pre></section>"
        "<section><h2>Attempts history</h2>{history}</section></article>",
        list=url(page.base, "/jobs", state=state),
        list_label=LIST_STATES.get(state, state.title()),
        id=job.id,
        name=job.name,
        desc=job.description,
        flash=parts.flash(query),
        watch=parts.watch(job),
        buttons=join(buttons),
        facts=join(render("<dt>{k}</dt><dd>{v}</dd>", k=k, v=v) for k, v in facts),
        error=error,
        args=_json({"args": list(job.args), "kwargs": job.kwargs}),
        history=history,
    )
    return parts.layout(page, f"Job #{job.id}", body, active=state)


def message_page(page: Page, title: str, text: str) -> str:
    """A page that only says something: a missing job, a refused form."""
    body = render(
        '<h1>{title}</h1><p>{text}</p><p><a href="{home}">Back to the overview</a></p>',
        title=title,
        text=text,
        home=page.base,
    )
    return parts.layout(page, title, body)
