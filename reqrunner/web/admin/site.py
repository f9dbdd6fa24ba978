"""The Queue Manager as one framework-neutral handler of ``{path}/admin`` and below.

Routes (below ``{path}/admin``)::

    GET  /                      overview: counts, throughput, health, running jobs, failures
    GET  /jobs?state=&name=&queue=&page=   one state's jobs
    GET  /jobs/<id>             one job
    GET  /api/status?ids=1,2    JSON: counts, and the state and progress of those jobs
    GET  /static/<file>         the stylesheet and the script
    POST /jobs/<id>/retry | /jobs/<id>/delete | /jobs/<id>/release
    POST /failed/retry | /failed/delete | /run
    POST /doctor                run doctor's checks after the response; the overview shows them

Every route checks access first, so nothing of the admin (not even its stylesheet) answers a
request that is not allowed. Every POST needs the CSRF token of :mod:`reqrunner.web.admin.csrf` and
answers with a ``303`` back to a page of the admin (never elsewhere).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from ... import triggers
from ...errors import JobNotFound, StoreError
from ...models import JobInfo, JobState
from ..http import Request, Response
from . import parts, schedules, views
from .auth import AdminAccess, BasicAuth, allows
from .csrf import Csrf
from .data import overview
from .markup import url

if TYPE_CHECKING:
    from .host import Host

__all__ = ["AdminSite"]

logger = logging.getLogger("reqrunner.admin")

PER_PAGE = 25
MAX_WATCHED = 100
"""At most this many jobs' progress per status request, so the endpoint stays one cheap query
per job whatever a client asks for."""

_SECURITY_HEADERS = (
    # Nothing inline, nothing from elsewhere: the page's own stylesheet and script only, so an
    # escaping mistake could still not run a script.
    (
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
)
_JOB_ACTION = re.compile(r"/jobs/([0-9]{1,18})/(retry|delete|release)")
_JOB_PAGE = re.compile(r"/jobs/([0-9]{1,18})")
_STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}


@cache
def _static(name: str) -> bytes | None:
    if name not in ("admin.css", "admin.js"):
        return None
    return (resources.files(__package__) / "static" / name).read_bytes()


@cache
def _asset_version() -> str:
    digest = hashlib.sha256()
    for name in ("admin.css", "admin.js"):
        digest.update(_static(name) or b"")
    return digest.hexdigest()[:12]


def _response(
    status: int, body: bytes, content_type: str, *extra: tuple[str, str], cache: str = "no-store"
) -> Response:
    return Response(
        status=status,
        body=body,
        headers=(
            ("content-type", content_type),
            ("content-length", str(len(body))),
            ("cache-control", cache),
            *_SECURITY_HEADERS,
            *extra,
        ),
    )


def _safe_next(value: str) -> str:
    """A place in the admin to go back to after a POST: a path below it, never another site."""
    if value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return ""


class AdminSite:
    """The admin handler the middleware mounts at ``{path}/admin``.

    ``host`` is what the admin needs of the middleware (see :class:`~.host.Host`); ``access``
    decides who may use the admin.
    """

    def __init__(self, host: Host, access: AdminAccess) -> None:
        self._host = host
        self._access = access
        self._csrf = Csrf(host.signer)

    def __call__(self, request: Request) -> Response:
        """Answer one request below ``{path}/admin`` (blocking)."""
        if not allows(self._access, request):
            if isinstance(self._access, BasicAuth):
                return _response(
                    401,
                    b"Authentication required",
                    "text/plain; charset=utf-8",
                    ("www-authenticate", self._access.challenge),
                )
            return _response(403, b"Forbidden", "text/plain; charset=utf-8")
        path = request.path[len("/admin") :] or "/"
        if request.method not in ("GET", "POST"):
            return _response(
                405, b"Method Not Allowed", "text/plain; charset=utf-8", ("allow", "GET, POST")
            )
        try:
            if request.method == "POST":
                return self._post(request, path)
            return self._get(request, path)
        except StoreError as exc:
            # Said once per request, without a traceback: the database is down, not the admin.
            logger.warning("reqrunner's admin could not reach the job database: %s", exc)
            return _response(
                503,
                b"The job database cannot be reached right now; try again in a moment.",
                "text/plain; charset=utf-8",
                ("retry-after", "5"),
            )

    # -- reading ----------------------------------------------------------------------------------

    def _get(self, request: Request, path: str) -> Response:
        if path.startswith("/static/"):
            body = _static(path[len("/static/") :])
            if body is None:
                return _response(404, b"Not Found", "text/plain; charset=utf-8")
            suffix = path[path.rfind(".") :]
            # Versioned URLs: a browser may keep them, but only for this signed-in user.
            return _response(200, body, _STATIC_TYPES[suffix], cache="private, max-age=86400")
        if path == "/api/status":
            return self._status(request)
        page, set_cookie = self._page(request)
        extra = () if set_cookie is None else (("set-cookie", set_cookie),)
        query = request.query
        queue = self._host.queue
        if path == "/":
            # Here, not at the top: doctor reads the admin's worker records (a cycle).
            from ..doctor import stored  # noqa: PLC0415

            reserved = queue.list_jobs(state="reserved", limit=10)
            failed = queue.list_jobs(state="failed", limit=5)
            data = overview(queue)
            tick_url = self._tick_url(request)
            runs = triggers.last_runs(queue)
            warnings = triggers.assess(runs, data.stats, queue.periodic_jobs.tightest_interval())
            periodic = schedules.section(
                page, queue.periodic_jobs.describe(), runs, warnings, tick_url
            )
            html = views.overview_page(
                page,
                data,
                self._host.health(),
                tick_url=tick_url,
                reserved=reserved,
                failed=failed,
                query=query,
                doctor=stored(queue),
                periodic=periodic,
            )
            return _response(200, html.encode(), "text/html; charset=utf-8", *extra)
        if path == "/jobs":
            return _response(
                200, self._list(page, query).encode(), "text/html; charset=utf-8", *extra
            )
        match = _JOB_PAGE.fullmatch(path)
        job = queue.get(int(match.group(1))) if match else None
        if job is None:
            if match:
                title = "Job not found"
                text = (
                    "This job does not exist (any more): finished jobs are deleted unless the "
                    "queue keeps them, and deleted jobs are gone."
                )
            else:
                title, text = "Not found", "There is no such page in the Queue Manager."
            html = views.message_page(page, title, text)
            return _response(404, html.encode(), "text/html; charset=utf-8", *extra)
        html = views.detail_page(page, job, query=query)
        return _response(200, html.encode(), "text/html; charset=utf-8", *extra)

    def _page(self, request: Request) -> tuple[parts.Page, str | None]:
        base = request.root_path + "/admin"
        token, set_cookie = self._csrf.prepare(request, base)
        page = parts.Page(base=base, token=token, now=time.time(), asset_version=_asset_version())
        return page, set_cookie

    def _list(self, page: parts.Page, query: Mapping[str, str]) -> str:
        listing = parts.Listing.from_query(query)
        # "waiting" in the admin is what the overview counts as waiting: due now.
        stored = "due" if listing.state == "waiting" else listing.state
        filters: dict[str, Any] = {"name": listing.name or None, "queue": listing.queue or None}
        queue = self._host.queue
        total = queue.count_jobs(stored, **filters)
        offset = (listing.number - 1) * PER_PAGE
        jobs = queue.list_jobs(stored, limit=PER_PAGE, offset=offset, **filters)
        return views.list_page(
            page, listing, jobs=jobs, total=total, per_page=PER_PAGE, query=query
        )

    def _base_url(self, request: Request) -> str:
        # request.root_path is the app's mount point followed by reqrunner's own path.
        mount = request.root_path.removesuffix(self._host.path)
        return f"{request.scheme}://{request.host}{mount}"

    def _tick_url(self, request: Request) -> str:
        return self._host.tick_url(self._base_url(request))

    def _status(self, request: Request) -> Response:
        queue = self._host.queue
        stats = queue.stats()
        ids = [int(i) for i in request.query.get("ids", "").split(",") if parts.is_number(i, 18)]
        jobs: dict[str, dict[str, Any] | None] = {}
        for job_id in ids[:MAX_WATCHED]:
            job = queue.get(job_id)
            jobs[str(job_id)] = None if job is None else _job_status(job)
        body = {
            "counts": {
                "waiting": stats.waiting,
                "delayed": stats.delayed,
                "reserved": stats.reserved,
                "failed": stats.failed,
                "done": stats.done,
            },
            "oldest_due_age": stats.oldest_due_age,
            "jobs": jobs,
        }
        return _response(200, json.dumps(body).encode(), "application/json")

    # -- acting -----------------------------------------------------------------------------------

    def _post(self, request: Request, path: str) -> Response:
        form = request.form()
        if not self._csrf.check(request, form):
            page, set_cookie = self._page(request)
            extra = () if set_cookie is None else (("set-cookie", set_cookie),)
            html = views.message_page(
                page,
                "Form expired",
                "This action was refused because its form was too old or did not come from "
                "this page. Go back, reload the page and try again.",
            )
            return _response(403, html.encode(), "text/html; charset=utf-8", *extra)
        queue = self._host.queue
        back = _safe_next(form.get("next", ""))
        after = None
        match = _JOB_ACTION.fullmatch(path)
        if match:
            job_id, verb = int(match.group(1)), match.group(2)
            action = {"retry": queue.retry, "delete": queue.delete, "release": queue.release}
            try:
                ok = action[verb](job_id)
            except JobNotFound:
                ok = False  # gone already (another tab, a runner): the message says so
            past = {"retry": "retried", "delete": "deleted", "release": "released"}[verb]
            after = self._run_soon() if ok and verb == "retry" else None
            outcome = past if ok else f"not-{past}"
            flash: dict[str, object] = {"done": outcome, "job": job_id}
        elif path == "/failed/retry":
            n = queue.retry_failed()
            after = self._run_soon() if n else None
            flash = {"done": "retried-all", "n": n}
        elif path == "/failed/delete":
            flash = {"done": "deleted-all", "n": queue.delete_failed()}
        elif path == "/run":
            after = self._run_now
            flash = {"done": "run-started"}
        elif path == "/doctor":
            base = self._base_url(request)
            after = lambda: self._check(base)  # noqa: E731
            flash = {"done": "doctor-started"}
        else:
            return _response(404, b"Not Found", "text/plain; charset=utf-8")
        # Back to where the button was, keeping that list's filter and page; the outcome rides
        # along as a code and numbers for the flash message.
        back_path, _, back_query = back.partition("?")
        params: dict[str, object] = {
            k: v for k, v in parse_qsl(back_query) if k not in ("done", "job", "n")
        }
        target = url(request.root_path + "/admin", back_path, **params, **flash)
        return Response(
            status=303,
            body=b"",
            headers=(("location", target), ("content-length", "0"), ("cache-control", "no-store")),
            after=after,
        )

    def _run_soon(self) -> Callable[[], None] | None:
        # A retried job is due now. Where page views run jobs (run_rate > 0), run it after this
        # response as a page view would, so the admin sees it go through; where only workers
        # or cron run jobs, leave it to them.
        return self._run_now if self._host.health().run_rate > 0 else None

    def _check(self, base_url: str) -> None:
        # After the response: the checks request this very site, which may serve one request
        # at a time.
        try:
            self._host.diagnose(base_url)
        except Exception:
            logger.exception("reqrunner's doctor, started from the admin, failed")

    def _run_now(self) -> None:
        try:
            self._host.run_bounded(via="admin")
        except Exception:
            logger.exception("reqrunner's run started from the admin failed")


def _job_status(job: JobInfo) -> dict[str, Any]:
    return {
        "state": "delayed" if job.delayed else job.state.value,
        "progress": job.progress,
        "label": job.label,
        "attempts": job.attempts,
        "finished": job.state in (JobState.DONE, JobState.FAILED),
    }
