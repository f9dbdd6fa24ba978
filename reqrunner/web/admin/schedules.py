"""The overview's "Periodic jobs" section: each schedule, the triggers' latest runs, and a
warning (with the tick URL) when runs are too rare for the schedules or the due jobs.

Like the other views it renders what it is handed and reads nothing itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from ...periodic import ScheduleInfo
from ...triggers import TriggerRun
from .markup import Safe, ago, join, render, template
from .parts import Page

__all__ = ["section"]

_OUTCOMES = {
    "dispatched": "dispatched",
    "skipped": "missed slots skipped (catch_up='skip')",
    "overlap": "skipped: the last run was still waiting or running",
    "started": "first seen; no slot yet",
}


def section(
    page: Page,
    schedules: Sequence[ScheduleInfo],
    runs: Mapping[str, TriggerRun],
    warnings: Sequence[str],
    tick_url: str,
) -> Safe:
    """The section, or nothing when the site declares no schedule and no warning applies."""
    if not schedules and not warnings:
        return Safe("")
    rows = join(_row(page, info) for info in schedules) or render(
        '<tr><td colspan="5">No periodic jobs are declared.</td></tr>'
    )
    triggers = join(
        render(
            '<li data-trigger="{via}"><code>{via}</code>: {when}, {ran} job(s) ran</li>',
            via=via,
            when=ago(run.at, page.now),
            ran=run.ran,
        )
        for via, run in sorted(runs.items(), key=lambda item: -item[1].at)
    ) or render("<li>no run recorded yet</li>")
    warned = join(
        render('<p class="flash warn" role="alert" data-trigger-warning>{text}</p>', text=text)
        for text in warnings
    )
    if warnings:
        warned = render(
            "{warned}<p>A quiet site needs a clock: give an uptime monitor (or a remote cron) "
            "this URL to fetch every minute: <code data-periodic-tick-url>{tick}</code></p>",
            warned=warned,
            tick=tick_url,
        )
    return template("periodic.html", warnings=warned, rows=rows, triggers=triggers)


def _row(page: Page, info: ScheduleInfo) -> Safe:
    if info.last_slot is None or info.last_outcome is None:
        last, outcome = render("—"), render("—")
    else:
        last = _when(info.last_slot, page)
        outcome = render("{what}", what=_OUTCOMES.get(info.last_outcome, info.last_outcome))
        if info.last_job_id is not None:
            outcome = render(
                '{outcome}; job <a href="{href}">#{id}</a> {state}',
                outcome=outcome,
                href=f"{page.base}/jobs/{info.last_job_id}",
                id=info.last_job_id,
                state=info.last_job_state,
            )
    return render(
        '<tr data-schedule="{name}"><td><code>{name}</code></td><td data-expression>'
        "<code>{expression}</code></td><td data-next-slot>{next}</td><td>{last}</td>"
        "<td data-outcome>{outcome}</td></tr>",
        name=info.name,
        expression=info.expression,
        next=_when(info.next_slot, page),
        last=last,
        outcome=outcome,
    )


def _when(value: datetime, page: Page) -> Safe:
    return render(
        "{text} ({rel})", text=value.strftime("%Y-%m-%d %H:%M:%S UTC"), rel=ago(value, page.now)
    )
