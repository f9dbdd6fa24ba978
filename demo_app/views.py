"""The demo's pages as plain functions returning a :class:`Reply`, so that the Starlette site
(``asgi_app.py``) and the Flask site (``wsgi_app.py``) only route and translate."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from html import escape
from urllib.parse import quote

from reqrunner import JobInfo, JobState
from reqrunner.web.doctor import Report
from reqrunner.web.policy import Mode

from . import markup
from .jobs import outbox, queue, wiki
from .wiki import save_page

__all__ = ["MODES", "Reply", "current_mode"]

MODES: tuple[Mode, ...] = ("auto", "sync", "async", "js")
RUN_PATH = "/_reqrunner"

_STYLE = """
body{font:16px/1.5 system-ui,sans-serif;max-width:62rem;margin:0 auto;padding:0 1rem;color:#222}
nav{display:flex;gap:1rem;align-items:center;border-bottom:1px solid #ccc;padding:.5rem 0}
nav form{margin-left:auto} table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #eee;padding:.2rem .4rem;text-align:left;font-size:.9rem}
.note{background:#fff6d6;padding:.4rem .8rem;border-left:4px solid #e0b000}
.state-done{color:#171} .state-failed{color:#b00} .state-reserved{color:#05a}
textarea{width:100%;height:16rem;font-family:monospace} footer{color:#777;margin:2rem 0}
progress{width:6rem}
"""


@dataclass(frozen=True, kw_only=True, slots=True)
class Reply:
    status: int = 200
    body: str = ""
    location: str | None = None
    content_type: str = "text/html; charset=utf-8"


def current_mode() -> Mode:
    """The mode chosen on the settings page (kept in the wiki's database)."""
    chosen = wiki.setting("mode", "auto")
    return next((mode for mode in MODES if mode == chosen), "auto")


def _layout(title: str, body: str, *, server: str, head: str = "") -> Reply:
    mode = current_mode()
    nav = (
        '<a href="/">Main Page</a><a href="/pages">All pages</a>'
        '<a href="/activity">Activity</a><a href="/settings">Settings</a>'
        f'<a href="{RUN_PATH}/admin">Queue admin</a>'
        '<form action="/search"><input name="q" placeholder="Search" aria-label="Search">'
        "</form>"
    )
    footer = (
        f'Jobs run in mode <b id="mode">{escape(mode)}</b> on this {escape(server)} server. '
        f"Served at {time.strftime('%H:%M:%S')}."
    )
    return Reply(
        body=f"<!doctype html><html><head><meta charset=utf-8><title>{escape(title)} – demo "
        f"wiki</title><style>{_STYLE}</style>{head}</head><body><nav>{nav}</nav>"
        f"<h1>{escape(title)}</h1>{body}<footer>{footer}</footer></body></html>"
    )


def _href(title: str) -> str:
    return "/wiki/" + quote(markup.slug(title))


def page(title: str, *, server: str, saved: str = "") -> Reply:
    found = wiki.get(title)
    if found is None:
        create = f'<a href="/edit/{quote(markup.slug(title))}">Create it</a>'
        body = f"<p>There is no page called {escape(title)}. {create}.</p>"
        return Reply(status=404, body=_layout(title, body, server=server).body)
    notes = ""
    if saved:
        notes += f'<p class="note" id="saved">{escape(saved)}</p>'
    if found.stale_since is not None:
        notes += (
            '<p class="note" id="stale">A template on this page changed '
            f"{time.time() - found.stale_since:.0f} s ago; this copy is waiting for its "
            "refresh job.</p>"
        )
    edit = f'<p><a href="/edit/{quote(markup.slug(title))}">Edit this page</a></p>'
    return _layout(title, notes + f'<div id="content">{found.html}</div>' + edit, server=server)


def edit_form(title: str, *, server: str) -> Reply:
    found = wiki.get(title)
    source = found.source if found else ""
    users = wiki.users_of(title)
    hint = (
        f"<p>{len(users)} pages include this template; saving queues a refresh job for each.</p>"
        if users
        else ""
    )
    body = (
        f'{hint}<form method="post"><textarea name="source">{escape(source)}</textarea>'
        '<p><label>Your name <input name="editor" value="Visitor"></label> '
        '<label>Watch with email <input name="watch" type="email"></label></p>'
        '<p><button type="submit">Save</button></p></form>'
        "<p>Markup: <code>= Heading =</code>, <code>'''bold'''</code>, <code>''italic''</code>, "
        "<code>* item</code>, <code>[[Page]]</code>, <code>{{Template name}}</code>.</p>"
    )
    return _layout(f"Editing {title}", body, server=server)


def save(title: str, form: dict[str, str]) -> Reply:
    saved = save_page(
        title,
        form.get("source", "").replace("\r\n", "\n"),
        editor=form.get("editor", "").strip() or "Visitor",
        watch=form.get("watch", "").strip(),
    )
    message = f"Saved. Queued: search update, {saved.emails} emails, {saved.refreshes} refreshes."
    # See-other to a GET: the page view that follows is what may run the queued jobs.
    return Reply(status=303, location=f"{_href(title)}?saved={quote(message)}")


def all_pages(*, server: str) -> Reply:
    items = "".join(f'<li><a href="{_href(t)}">{escape(t)}</a></li>' for t in wiki.titles())
    return _layout("All pages", f"<ul>{items}</ul>", server=server)


def search(query: str, *, server: str) -> Reply:
    hits = wiki.search(query)
    rows = "".join(
        f'<li><a href="{_href(t)}">{escape(t)}</a>: {escape(snippet)}</li>' for t, snippet in hits
    )
    body = (
        f'<p id="hits">{len(hits)} pages match “{escape(query)}”. The index is updated by jobs, '
        f"so an edit shows up here once they ran.</p><ul>{rows}</ul>"
    )
    return _layout("Search", body, server=server)


def _job_row(job: JobInfo) -> str:
    args = ", ".join(json.dumps(a) for a in job.args) or ", ".join(
        f"{k}={json.dumps(v)}" for k, v in job.kwargs.items() if k != "edited_at"
    )
    progress = ""
    if job.progress is not None:
        progress = f'<progress value="{job.progress:.2f}"></progress> {escape(job.label or "")}'
    error = f"<br><small>{escape(job.error.message)}</small>" if job.error else ""
    return (
        f'<tr class="job state-{job.state.value}" data-name="{escape(job.name)}" '
        f'data-state="{job.state.value}"><td>{job.id}</td><td>{escape(job.name)}</td>'
        f"<td>{escape(args)}</td><td>{job.state.value}{error}</td><td>{progress}</td>"
        f"<td>{job.attempts}/{job.max_attempts}</td></tr>"
    )


_VIA = {
    "sync": "this server after a page's response",
    "async": f"the site's own signed POST to {RUN_PATH}/run",
    "js": f"a visitor's browser (the page's script posting to {RUN_PATH}/run)",
    "tick": f"the tick URL ({RUN_PATH}/tick)",
    "endpoint": f"a signed POST to {RUN_PATH}/run (reqrunner ping or doctor)",
    "admin": "the Queue Manager's button",
}


def _jobs(n: int) -> str:
    return f"{n} job" if n == 1 else f"{n} jobs"


def _last_run() -> str:
    raw = queue.get_meta("reqrunner.health.last_run")
    if raw is None:
        return '<p id="last-run">No run yet.</p>'
    run = json.loads(raw)
    via = _VIA.get(str(run["via"]), str(run["via"]))
    return (
        f'<p id="last-run" data-via="{escape(str(run["via"]))}">Last run '
        f"{time.time() - float(run['at']):.0f} s ago, started by {escape(via)}: "
        f"{_jobs(int(run['ran']))} ({run['succeeded']} ok, {run['failed']} failed) in "
        f"{float(run['elapsed']):.2f} s, stopped by {escape(str(run['stopped_by']))}.</p>"
    )


def activity(*, server: str, watch: bool = False) -> Reply:
    stats = queue.stats()
    pending = stats.waiting + stats.delayed + stats.reserved
    counts = " · ".join(
        f'{name} <b id="count-{name}">{getattr(stats, name)}</b>'
        for name in ("waiting", "delayed", "reserved", "failed", "done")
    )
    jobs = [
        *queue.list_jobs(state=JobState.RESERVED, limit=10),
        *queue.list_jobs(state=JobState.WAITING, limit=30),
        *queue.list_jobs(state=JobState.FAILED, limit=10),
        *queue.list_jobs(state=JobState.DONE, limit=30),
    ]
    rows = "".join(_job_row(j) for j in sorted(jobs, key=lambda j: j.id, reverse=True))
    emails = outbox.emails()
    mail = "".join(
        f'<li class="email"><a href="/outbox/{quote(e.name)}">{escape(e.subject)}</a> '
        f"to {escape(e.to)}</li>"
        for e in emails
    )
    body = (
        "<p>Jobs are run after page views like this one: reload, browse a few pages, or "
        '<a href="/activity?watch=1">let this page reload itself</a> while jobs are pending, '
        f"and watch them move.</p><p>{counts}</p>{_last_run()}"
        "<table><tr><th>id</th><th>job</th><th>arguments</th><th>state</th><th>progress</th>"
        f"<th>attempts</th></tr>{rows}</table>"
        f'<h2>Outbox (<span id="outbox-count">{len(emails)}</span>)</h2>'
        f"<p>Notification emails are written to {escape(str(outbox.path))}, not sent.</p>"
        f"<ul>{mail}</ul>"
    )
    # Each reload is a page view, so a watching page also drives the queue until it is empty.
    refresh = '<meta http-equiv="refresh" content="2">' if watch and pending else ""
    return _layout("Activity", body, server=server, head=refresh)


def email(name: str, *, server: str) -> Reply:
    try:
        found = outbox.read(name)
    except FileNotFoundError:
        return Reply(status=404, body=_layout("No such email", "", server=server).body)
    body = f"<p>To: {escape(found.to)}</p><pre>{escape(found.body)}</pre>"
    return _layout(found.subject, body, server=server)


def _doctor(report: Report | None) -> str:
    button = '<form method="post"><input type="hidden" name="doctor" value="1">'
    button += "<p><button>Check this site</button></p></form>"
    if report is None:
        return (
            '<h2>Will jobs run here?</h2><p id="doctor">Not checked yet: the button runs '
            "<code>reqrunner doctor</code>'s checks against this site.</p>" + button
        )
    verdict = "Nothing stops jobs from running." if report.ok else "Something stops jobs."
    items = "".join(
        f'<li data-check="{escape(c.id)}" data-status="{c.status}"><b>{c.status}</b> '
        f"{escape(c.title)}: {escape(c.found)}"
        + (f"<br><i>What to do:</i> {escape(c.advice)}" if c.advice else "")
        + "</li>"
        for c in report.checks
    )
    return (
        f'<h2>Will jobs run here?</h2><p id="doctor" data-ok="{int(report.ok)}">{verdict} '
        f"Checked {time.time() - report.at:.0f} s ago.</p><ul>{items}</ul>{button}"
    )


def settings(query_mode: str | None, *, server: str, report: Report | None = None) -> Reply:
    if query_mode is not None:
        if query_mode not in MODES:
            return Reply(status=400, body=f"mode must be one of {', '.join(MODES)}")
        wiki.set_setting("mode", query_mode)
    mode = current_mode()
    options = "".join(
        f'<label><input type="radio" name="mode" value="{m}"{" checked" if m == mode else ""}>'
        f" {m}</label><br>"
        for m in MODES
    )
    body = (
        '<form method="post">'
        f"{options}<p><button>Save</button></p></form>"
        "<ul><li><b>auto</b>: reqrunner picks (sync wherever the server process outlives "
        "the response, js under CGI).</li>"
        "<li><b>sync</b>: this process runs the jobs after it sent the page.</li>"
        f"<li><b>async</b>: the server POSTs a signed token to its own {RUN_PATH}/run.</li>"
        "<li><b>js</b>: a script in the page makes the visitor's browser do that POST.</li>"
        "</ul><p>Also as a link: <code>/settings?mode=js</code>.</p>"
        f"{_doctor(report)}"
    )
    return _layout("Settings", body, server=server)


def save_settings(form: dict[str, str]) -> Reply:
    mode = form.get("mode", "")
    if mode not in MODES:
        return Reply(status=400, body=f"mode must be one of {', '.join(MODES)}")
    wiki.set_setting("mode", mode)
    return Reply(status=303, location="/settings")
