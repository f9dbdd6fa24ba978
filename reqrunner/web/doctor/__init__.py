"""``reqrunner doctor``: will jobs actually run on this host? The checks, framework-neutral.

:func:`diagnose` looks at a site's middleware (or a bare :class:`~reqrunner.JobQueue`, which
tells less) and answers a :class:`Report` of plain-worded checks, each with what to do. The
console script prints it (:mod:`reqrunner.cli.doctor`) and the admin's overview shows it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ...models import Limits
from .limits import activity_checks, last_runs, limit_checks
from .report import Check, Report, Status
from .site import site_checks
from .store import store_checks

if TYPE_CHECKING:
    from ...queue import JobQueue
    from ..core import MiddlewareCore

__all__ = [
    "REPORT_RECORD", "Check", "Report", "Status", "diagnose", "last_runs", "refresh", "stored",
]  # fmt: skip

REPORT_RECORD = "reqrunner.doctor.report"
"""Where the admin keeps the latest report, so every process's overview shows it."""


def _core(target: object) -> MiddlewareCore | None:
    from ..core import MiddlewareCore  # noqa: PLC0415 (the import cycle core -> doctor)

    core = getattr(target, "core", target)
    return core if isinstance(core, MiddlewareCore) else None


def diagnose(target: Any, *, url: str | None = None, timeout: float = 5.0) -> Report:
    """Check the site ``target`` runs: an :class:`~reqrunner.ASGIMiddleware` or
    :class:`~reqrunner.WSGIMiddleware` (or its core), or a :class:`~reqrunner.JobQueue` alone.

    ``url`` is the site's public address (``"https://example.org"``, with the app's mount point):
    the reachability checks fetch it, falling back to the middleware's ``self_url``. They
    start a bounded run of due jobs, as any tick does. Raises :class:`TypeError` for anything
    else than those objects.
    """
    from ...queue import JobQueue  # noqa: PLC0415

    core = _core(target)
    if core is None and not isinstance(target, JobQueue):
        raise TypeError(
            f"doctor needs the site's middleware (ASGIMiddleware/WSGIMiddleware) or a JobQueue, "
            f"not {type(target).__name__}"
        )
    queue: JobQueue = core.queue if core is not None else target
    checks: list[Check] = store_checks(queue)
    facts = None
    if core is not None:
        site, facts = site_checks(core, url, timeout=timeout)
        checks.extend(site)
        limits = core.options.limits
    else:
        checks.append(
            Check(
                id="run.site",
                area="Running from page views",
                title="The site",
                status="unknown",
                found="Given a JobQueue alone, doctor cannot see how the site runs jobs.",
                advice="Pass the object your server runs, e.g. "
                "reqrunner --app mysite.wsgi:application doctor --url https://your.site",
            )
        )
        limits = Limits()
    checks.extend(limit_checks(limits, facts))
    if queue_usable(checks):
        checks.extend(
            activity_checks(queue, run_rate=None if core is None else core.options.run_rate)
        )
    return Report.of(checks)


def queue_usable(checks: list[Check]) -> bool:
    """Whether the store answered, so that reading its activity makes sense."""
    reachable = next((c for c in checks if c.id == "store.reachable"), None)
    return reachable is not None and reachable.status == "ok"


def refresh(core: MiddlewareCore, url: str) -> Report:
    """:func:`diagnose` the site at ``url`` and keep the report for the admin's overview."""
    report = diagnose(core, url=url)
    core.queue.set_meta(REPORT_RECORD, json.dumps(report.to_dict()))
    return report


def stored(queue: JobQueue) -> Report | None:
    """The report the admin stored last, or ``None``."""
    raw = queue.get_meta(REPORT_RECORD)
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return Report.from_dict(value) if isinstance(value, dict) else None
