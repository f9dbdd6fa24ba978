"""The pieces every Queue Manager page is built from: the layout, forms, rows and flashes.

Pure functions from values to escaped HTML (:mod:`reqrunner.web.admin.markup`); the pages in
:mod:`reqrunner.web.admin.views` put them together.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ...models import JobInfo, JobState
from .markup import Safe, ago, join, render, template, url

__all__ = [
    "LIST_STATES",
    "MESSAGES",
    "attempt_labels",
    "Listing",
    "Page",
    "button",
    "first_line",
    "flash",
    "layout",
    "number",
    "progress",
    "rows",
    "state_name",
    "watch",
    "when",
]

LIST_STATES: dict[str, str] = {
    "waiting": "Waiting",
    "delayed": "Delayed",
    "reserved": "Reserved",
    "failed": "Failed",
    "done": "Done",
}
"""The lists, by URL name; ``waiting`` means due now, as in the overview's counts."""

MESSAGES: dict[str, str] = {
    "retried": "Job #{job} will run again.",
    "not-retried": "Job #{job} was not retried: only failed or waiting jobs can be.",
    "deleted": "Job #{job} was deleted.",
    "not-deleted": "Job #{job} was already gone.",
    "released": "Job #{job} was released and is due again.",
    "not-released": "Job #{job} was not released: it is no longer reserved.",
    "retried-all": "{n} failed job(s) will run again.",
    "deleted-all": "{n} failed job(s) were deleted.",
    "run-started": "A run starts now within the batch limits, unless one is already going.",
    "doctor-started": "The checks run now: reload this page in a few seconds to see them.",
}
"""Flash messages after an action, by code: the redirect carries only the code and numbers, so
a link cannot make the page say anything else."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Page:
    """What every page needs from the request."""

    base: str
    """The admin's URL path, e.g. ``/_reqrunner/admin``."""
    token: str
    """The CSRF token for this browser's forms."""
    now: float
    asset_version: str
    """Appended to the CSS and JS URLs so a new release is not served from a stale cache."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Listing:
    """Which jobs a list page shows: a state's, filtered, one page of them."""

    state: str
    """One of :data:`LIST_STATES`."""
    name: str
    """Only jobs whose name contains this ("" for all)."""
    queue: str
    """Only jobs of this queue ("" for all)."""
    number: int
    """The page, from 1."""

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> Listing:
        """The list a query string asks for; what does not make sense falls back to the first
        page of the waiting jobs, unfiltered."""
        state = query.get("state", "waiting")
        number = query.get("page", "1")
        return cls(
            state=state if state in LIST_STATES else "waiting",
            name=query.get("name", "").replace("\x00", "").strip()[:255],
            queue=query.get("queue", "").replace("\x00", "").strip()[:64],
            number=int(number) if is_number(number, 6) and int(number) > 0 else 1,
        )


# -- building blocks ------------------------------------------------------------------------------


def is_number(text: str, digits: int) -> bool:
    """Whether ``text`` is a plain decimal number of at most ``digits`` digits (``"²"`` passes
    ``str.isdigit`` but not ``int``; twenty digits overflow a database's integer)."""
    return text.isascii() and text.isdigit() and len(text) <= digits


def layout(page: Page, title: str, body: Safe, *, active: str = "", refresh: bool = False) -> str:
    """A whole HTML document around ``body``; ``refresh`` makes the script keep counts current."""
    nav = join(
        render(
            '<a href="{href}"{current}>{label}</a>',
            href=page.base if state == "overview" else url(page.base, "/jobs", state=state),
            current=Safe(' aria-current="page"') if state == active else Safe(""),
            label=label,
        )
        for state, label in (("overview", "Overview"), *LIST_STATES.items())
    )
    return template(
        "layout.html",
        title=title,
        css=url(page.base, "/static/admin.css", v=page.asset_version),
        js=url(page.base, "/static/admin.js", v=page.asset_version),
        api=url(page.base, "/api/status"),
        refresh=Safe(' data-refresh="1"') if refresh else Safe(""),
        home=page.base,
        nav=nav,
        body=body,
    )


def button(
    page: Page, action: str, label: str, *, back: str, style: str = "", confirm: str = ""
) -> Safe:
    """A POST form of one button, carrying the CSRF token and where to come back to."""
    return render(
        '<form method="post" action="{action}"{confirm}>'
        '<input type="hidden" name="csrf" value="{token}">'
        '<input type="hidden" name="next" value="{back}">'
        '<button type="submit" class="{style}">{label}</button></form>',
        action=url(page.base, action),
        confirm=render(' data-confirm="{text}"', text=confirm) if confirm else Safe(""),
        token=page.token,
        back=back,
        style=style,
        label=label,
    )


def flash(query: Mapping[str, str]) -> Safe:
    """The message for the action code in ``query``, if it is one of :data:`MESSAGES`."""
    code = query.get("done", "")
    if code not in MESSAGES:
        return Safe("")
    numbers = {k: query.get(k, "") for k in ("job", "n")}
    if not all(is_number(v, 18) or v == "" for v in numbers.values()):
        return Safe("")
    failed = code.startswith("not-")
    return render(
        '<p class="flash{kind}" role="status">{text}</p>',
        kind=" warn" if failed else "",
        text=MESSAGES[code].format(**numbers),
    )


def progress(job: JobInfo) -> Safe:
    """A progress bar with its label, for a running job or one that reported progress."""
    if job.state is not JobState.RESERVED and job.progress is None:
        return Safe("")
    value = "" if job.progress is None else f"{max(0.0, min(job.progress, 1.0)):.3f}"
    return render(
        '<span class="progress"><progress max="1"{value} data-progress></progress>'
        '<span class="label" data-label>{label}</span></span>',
        value=render(' value="{v}"', v=value) if value else Safe(""),
        label=job.label or ("" if job.progress is None else f"{job.progress:.0%}"),
    )


def first_line(job: JobInfo) -> str:
    """``Type: first line of the message`` of the last error, shortened for a table."""
    if job.error is None:
        return ""
    message = job.error.message.strip().splitlines()
    text = f"{job.error.type}: {message[0]}" if message else job.error.type
    return text if len(text) <= 160 else text[:159] + "…"


def state_name(job: JobInfo) -> str:
    """The state as the lists name it (``delayed`` for a waiting job that is not due)."""
    return "delayed" if job.delayed else job.state.value


def when(job: JobInfo, now: float) -> Safe:
    """The time that matters in the job's state: due, lease end or finish."""
    if job.state is JobState.RESERVED:
        return render("lease until {t}", t=ago(job.reserved_until, now))
    if job.state in (JobState.DONE, JobState.FAILED):
        return render("finished {t}", t=ago(job.finished_at, now))
    return render("due {t}", t=ago(job.available_at, now))


def watch(job: JobInfo) -> Safe:
    """Attributes that make the script follow a job that may still change by itself."""
    if job.state in (JobState.WAITING, JobState.RESERVED):
        return render(' data-watch="{id}" data-state="{state}"', id=job.id, state=state_name(job))
    return Safe("")


def rows(page: Page, jobs: Sequence[JobInfo]) -> Safe:
    """A table of jobs; on a phone each row becomes a card (see the stylesheet)."""
    rows = (
        template(
            "job_row.html",
            watch=watch(job),
            href=url(page.base, f"/jobs/{job.id}"),
            id=job.id,
            name=job.name,
            desc=job.description,
            queue=job.queue,
            priority=job.priority,
            attempts=job.attempts,
            max=job.max_attempts,
            when=when(job, page.now),
            progress=progress(job),
            error=first_line(job),
        )
        for job in jobs
    )
    return template("jobs.html", rows=join(rows))


def number(value: object) -> float | None:
    """A number from a JSON health record, or ``None`` if it holds something else."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def attempt_labels(history: Sequence[Mapping[str, object]]) -> list[str]:
    """How the attempt history numbers its rows: in order, saying where a retry started the
    count of attempts afresh (the stored counts read 1, 2, 1, 2 after one)."""
    labels, previous, retries = [], 0.0, 0
    for n, entry in enumerate(history, 1):
        attempt = number(entry.get("attempt"))
        if attempt is not None and attempt <= previous:
            retries += 1
        previous = attempt if attempt is not None else previous
        again = f" (attempt {attempt:g} after retry {retries})" if retries and attempt else ""
        labels.append(f"{n}{again}")
    return labels
