"""The overview's "Will jobs run here?" section: the latest ``reqrunner doctor`` report.

The checks make requests to the site itself, so they never run while a page is being answered:
the button's POST schedules them after its response and stores the report, and the overview
shows the report stored last (whichever process made it), with when it was made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import parts
from .markup import Safe, ago, join, render, template
from .parts import Page

if TYPE_CHECKING:
    from ..doctor import Report, Status

__all__ = ["doctor_section"]

_LABELS = {"ok": "OK", "warn": "Warning", "fail": "Stops jobs", "unknown": "Can't tell"}


def _areas(report: Report) -> Safe:
    sections = []
    for area, checks in report.areas().items():
        rows = join(
            render(
                '<li class="check {status}" data-check="{id}" data-status="{status}">'
                '<span class="verdict">{label}</span> <b>{title}</b>: {found}{advice}</li>',
                status=check.status,
                id=check.id,
                label=_LABELS[check.status],
                title=check.title,
                found=check.found,
                advice=render('<span class="advice">What to do: {a}</span>', a=check.advice)
                if check.advice
                else Safe(""),
            )
            for check in checks
        )
        sections.append(
            render('<h3>{area}</h3><ul class="checks">{rows}</ul>', area=area, rows=rows)
        )
    return join(sections)


def doctor_section(page: Page, report: Report | None) -> Safe:
    """The section: the stored report (or a note that none was made) and a "check now" button."""
    button = parts.button(
        page, "/doctor", "Check now" if report is None else "Check again", back=""
    )
    if report is None:
        return template(
            "doctor.html",
            state="none",
            summary="No check has been made yet. It looks at the job store, how page views run "
            "jobs on this server, the memory limit and recent activity (the same report as "
            "reqrunner doctor).",
            areas=Safe(""),
            button=button,
        )
    words: tuple[tuple[Status, str], ...] = (
        ("fail", "stopping jobs"),
        ("warn", "to look at"),
        ("unknown", "not known from here"),
    )
    counts = ", ".join(f"{report.count(s)} {word}" for s, word in words if report.count(s))
    verdict = (
        "Nothing stops jobs from running" if report.ok else "Something stops jobs from running"
    )
    summary = render(
        '<b class="{cls}">{verdict}</b>{counts}. Checked {when}.',
        cls="good" if report.ok else "bad",
        verdict=verdict,
        counts=f" ({counts})" if counts else "",
        when=ago(report.at, page.now),
    )
    return template(
        "doctor.html",
        state="ok" if report.ok else "fail",
        summary=summary,
        areas=_areas(report),
        button=button,
    )
