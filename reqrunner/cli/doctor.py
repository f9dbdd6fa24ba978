"""``reqrunner doctor``: will jobs actually run on this host? Prints the checks of
:mod:`reqrunner.web.doctor` in plain words (or ``--json``); exits 1 when one of them stops jobs
from running.

``--app`` may name the site's middleware object (``mysite.wsgi:application``), which knows the
mode, ``self_url``, the path and the limits, or a ``JobQueue``, which tells less.
"""

from __future__ import annotations

import argparse
import os

from ..queue import JobQueue
from ..web.base import Middleware
from ..web.doctor import Report, diagnose
from .app import EXIT_FAILURE, EXIT_OK, UsageError, import_object, load_queue
from .output import Output

__all__ = ["doctor", "render"]

MARKS = {"ok": "ok", "warn": "WARN", "fail": "FAIL", "unknown": "??"}


def _target(args: argparse.Namespace) -> Middleware[object] | JobQueue:
    spec = args.app or os.environ.get("REQRUNNER_APP")
    if spec is None or args.db:
        return load_queue(args.app, args.db, need_jobs=False)
    target = import_object(spec)
    if not isinstance(target, Middleware | JobQueue):
        raise UsageError(
            f"--app {spec!r} is a {type(target).__name__}: give the middleware your server runs "
            "(e.g. mysite.wsgi:application, wrapped in reqrunner.WSGIMiddleware) or a JobQueue"
        )
    return target


def render(report: Report) -> list[str]:
    """The report as lines of text: one per check, its advice indented below it."""
    lines: list[str] = []
    for area, checks in report.areas().items():
        lines.append(area)
        for check in checks:
            lines.append(f"  [{MARKS[check.status]:>4}] {check.title}: {check.found}")
            if check.advice:
                lines.append(f"         -> {check.advice}")
    verdict = (
        "Nothing here stops jobs from running."
        if report.ok
        else "Something above stops jobs from running (FAIL): fix it first."
    )
    counts = ", ".join(f"{report.count(s)} {s}" for s in ("ok", "warn", "fail", "unknown"))
    lines.append(f"{verdict} ({counts})")
    return lines


def doctor(args: argparse.Namespace, out: Output) -> int:
    """Check the site (or queue) ``--app`` names; 0 when nothing stops jobs, else 1."""
    if args.url is not None and not args.url.startswith(("http://", "https://")):
        raise UsageError(f"--url {args.url!r}: give the site's address, e.g. https://example.org")
    target = _target(args)
    try:
        report = diagnose(target, url=args.url, timeout=args.timeout)
    finally:
        (target if isinstance(target, JobQueue) else target.core.queue).close()
    if out.json:
        out.data(report.to_dict())
    else:
        for line in render(report):
            out.line(line)
    return EXIT_OK if report.ok else EXIT_FAILURE
