"""The framework-neutral core shared by :class:`~reqrunner.ASGIMiddleware` and
:class:`~reqrunner.WSGIMiddleware`.

It decides, once for both adapters, what happens to a page view's response (:meth:`decide`
answers with a :class:`Plan`: pass it on, run after it, or add the script), owns the per-process
state (the due cache, the circuit breaker, the lazily fetched secret) and does the blocking work:
answering reqrunner's own routes, and what happens after a triggering response, a bounded run in
this process under the run lease or a self-request that falls back to one. The adapters only
translate: they describe the response as a :class:`~reqrunner.web.policy.PageView`, carry the
plan out in their protocol, and choose *where* the blocking work runs (a worker thread, never
the event loop).

Whatever goes wrong in here is logged on the ``reqrunner`` logger and swallowed: the site's page
is always served as the app made it.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import httpx

from ..deferred import Deferred
from ..errors import StoreError
from ..models import Limits, RunReport
from . import health
from .background import stopping
from .http import Request, Response
from .policy import (
    Concrete,
    PageView,
    Qualify,
    RunPolicy,
    ServerKind,
    default_qualify,
    resolve_auto,
)
from .quiet import warn_store
from .routes import RUN_PURPOSE, TICK_PURPOSE, Router
from .runlease import RunLease
from .signing import Signer
from .trigger import CircuitBreaker, can_inject, post_run, run_url, script_tag

if TYPE_CHECKING:
    from ..queue import JobQueue
    from .base import Options
    from .doctor import Report

__all__ = ["ASK", "PASS", "MiddlewareCore", "Origin", "Plan"]

logger = logging.getLogger("reqrunner")

SELF_REQUEST_TOKEN_TTL = 60.0
"""A self-request's token is used within milliseconds; a minute absorbs clock steps."""
SCRIPT_TOKEN_TTL = 600.0
"""A page's script token must outlive a slow page load and a tab restored from memory."""
TICK_TOKEN_TTL = 365 * 24 * 3600.0
"""A tick URL is pasted into an uptime monitor's settings once: it lasts a year (or until the
site's secret changes)."""
MAX_ROUTE_BODY = 64 * 1024
"""reqrunner's own routes take small forms; larger bodies are cut off, not buffered."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Origin:
    """Where a page view arrived, for deriving the self-request's URL."""

    scheme: str
    host: str
    """``host[:port]`` as the request addressed it (a visitor's choice: never a target)."""
    root_path: str
    """Where the app is mounted (ASGI ``root_path``, WSGI ``SCRIPT_NAME``)."""
    server: str | None = None
    """``host:port`` where the server reaches itself (see
    :func:`~reqrunner.web.trigger.own_address`); the self-request's target without ``self_url``."""


@dataclass(frozen=True, slots=True)
class Plan:
    """What an adapter does with one response, as :meth:`MiddlewareCore.decide` answers.

    - ``pass``: send it on untouched; nothing happens after it.
    - ``run_after``: send it on; once its last byte is out, call
      :meth:`MiddlewareCore.after_response` with ``mode`` (off any event loop), which runs the
      due jobs, if there still are any. ``measure``: the response has no ``Content-Length``
      and the server needs one (``ServerKind.needs_length``): hold the body back, and send it
      with its length.
    - ``inject``: add ``tag`` before the body's last ``</body>`` (see
      :class:`~reqrunner.web.trigger.Injector`); the body grows by exactly ``len(tag)``.
    - ``ask``: only from an adapter that may not wait (an event loop): the answer needs the
      database or the secret, so call :meth:`MiddlewareCore.settle` in a worker thread.
    """

    action: Literal["pass", "run_after", "inject", "ask"]
    mode: Concrete = "sync"
    tag: bytes = b""
    measure: bool = False


PASS = Plan("pass")
ASK = Plan("ask")


class MiddlewareCore:
    """The decision, per-process state and the blocking work of the middleware.

    Built by :class:`~reqrunner.web.base.Middleware` from its checked :class:`Options`.
    """

    def __init__(self, queue: JobQueue, options: Options) -> None:
        self.queue = queue
        self.options = options
        self.path = options.path
        self.lease_ttl = 2.0 * float(options.limits.max_time or 0.0)
        self.qualify: Qualify = options.qualify or default_qualify
        self.policy = RunPolicy(queue)
        limits = options.limits
        # A request's own after-response jobs all run (no max_jobs), within the site's time
        # and memory bounds; what those leave unstarted stays queued.
        self.deferred_limits = Limits(
            max_jobs=None, max_time=limits.max_time, max_memory=limits.max_memory
        )
        self.breaker = CircuitBreaker()
        self.quiet = self.policy.quiet
        """This middleware's repeated database warnings, said once a minute."""
        site = None
        if options.admin is not None:
            # Imported here, so that a site without the admin never loads its pages.
            from .admin.site import AdminSite  # noqa: PLC0415

            site = AdminSite(self, options.admin)
        self.router = Router(
            signer=self.signer,
            run=self.run_from_endpoint,
            use_once=queue.use_once,
            admin=site,
            probe=self.probe,
        )
        self._signer: Signer | None = None
        self._signer_lock = threading.Lock()
        self._client: httpx.Client | None = None
        self._self_request_worked = False

    # -- paths and routes ---------------------------------------------------------------------

    def own_subpath(self, path: str, root_path: str = "") -> str | None:
        """The part of ``path`` below reqrunner's mount point, or ``None`` if it is not ours."""
        if root_path and path.startswith(root_path):
            path = path[len(root_path) :]
        if path == self.path:
            return ""
        if path.startswith(self.path + "/"):
            return path[len(self.path) :]
        return None

    def route(self, request: Request) -> Response:
        """Answer a request to one of reqrunner's own routes (blocking)."""
        try:
            return self.router(request)
        except StoreError as exc:
            warn_store(logger, f"could not answer {request.method} {request.path}", exc, self.quiet)
            return Response(
                status=503, body=b"Service Unavailable", headers=(("retry-after", "5"),)
            )
        except Exception:
            logger.exception("reqrunner failed to answer %s %s", request.method, request.path)
            return Response(status=500, body=b"Internal Server Error")

    # -- the secret -----------------------------------------------------------------------------

    @property
    def signer_ready(self) -> bool:
        """Whether :meth:`signer` answers without a database call."""
        return self._signer is not None

    def signer(self) -> Signer:
        """The signer keyed with the site's secret (blocking the first time: it may be stored)."""
        with self._signer_lock:
            if self._signer is None:
                secret = (
                    self.options.secret or os.environ.get("REQRUNNER_SECRET") or self.queue.secret
                )
                self._signer = Signer(secret)
            return self._signer

    # -- the decision ---------------------------------------------------------------------------

    def concrete_mode(self, server: ServerKind) -> Concrete:
        """The mode used for a page view on this kind of server."""
        mode = self.options.mode
        return resolve_auto(server) if mode == "auto" else mode

    def qualifies(self, view: PageView) -> bool:
        """Apply the qualification rule; a rule that raises counts as "no" and is logged."""
        try:
            return bool(self.qualify(view))
        except Exception:
            logger.exception("reqrunner's qualify callable raised; not triggering a run")
            return False

    def decide(self, view: PageView, server: ServerKind, origin: Origin) -> Plan:
        """What the adapter does with the response of a page view that rolled the die.

        First the qualification rule, then what the mode and the response allow, then whether
        jobs are due (and, for ``js``, the script). Where ``server.waits`` is false (an event
        loop) this never waits for the database: it answers :data:`ASK` when the script needs
        it, and leaves the "are jobs due" of a run to :meth:`after_response`.
        """
        if not self.qualifies(view):
            return PASS
        return self.settle(view, server, origin, server.waits)

    def settle(self, view: PageView, server: ServerKind, origin: Origin, wait: bool = True) -> Plan:
        """:meth:`decide` for a page view that qualified; blocking unless ``wait`` is false."""
        mode = self.concrete_mode(server)
        headers = view.response_headers
        if mode == "js":
            if server.pathsend or not can_inject(view.status, headers):
                return PASS
            if not wait and (self.policy.cached_due() is None or not self.signer_ready):
                return ASK
            tag = self._script_tag(view, origin)
            return PASS if tag is None else Plan("inject", mode, tag=tag)
        due = self.policy.jobs_due() if wait else self.policy.cached_due()
        if due is False:
            return PASS
        measure = server.needs_length and "content-length" not in headers
        return Plan("run_after", mode, measure=measure)

    def _script_tag(self, view: PageView, origin: Origin) -> bytes | None:
        # The script tag for a js page if jobs are due, else None (may block).
        try:
            if not self.policy.jobs_due():
                return None
            base = self.options.self_url.rstrip("/") if self.options.self_url else origin.root_path
            token = self.signer().sign(RUN_PURPOSE, ttl=SCRIPT_TOKEN_TTL)
            return script_tag(
                src=f"{base}{self.path}/trigger.js",
                url=f"{base}{self.path}/run",
                token=token,
                csp=view.response_headers.get("content-security-policy", ""),
            )
        except Exception:
            logger.exception("reqrunner could not prepare its script; serving the page as is")
            return None

    # -- after the response ---------------------------------------------------------------------

    def after_response(self, mode: Concrete, origin: Origin) -> None:
        """What a triggering page view does once its response is complete (blocking).

        If jobs are (still) due: ``async`` tries the self-request first; every other mode runs
        here. Never raises: reqrunner's own failures are logged.
        """
        try:
            if not self.policy.jobs_due():
                return
            if mode == "async" and not self.breaker.is_open and self._self_request(origin):
                return
            # In this process after the page: "sync", whatever the mode (an async self-request
            # that was taken is recorded as "async" by the run it started).
            self.run_bounded(via="sync")
        except StoreError as exc:
            warn_store(logger, "could not run jobs after a response", exc, self.quiet)
        except Exception:
            logger.exception("reqrunner's after-response run failed")

    def finish(self, deferred: Deferred | None, plan: Plan, origin: Origin | None) -> None:
        """Everything after a complete response (blocking, never raises): first the jobs the
        request dispatched with ``after_response`` (in dispatch order, without the run lease:
        they are this request's own work, and each is still claimed, so no one else runs it
        too), then the run the plan asked for."""
        if deferred:
            try:
                deferred.run(self.deferred_limits, stopping)
            except Exception:
                logger.exception("reqrunner could not run the jobs of this response")
            finally:
                self.policy.invalidate()
        if plan.action == "run_after" and origin is not None:
            self.after_response(plan.mode, origin)

    def _self_request(self, origin: Origin) -> bool:
        # POST a signed token to {path}/run; whether it was taken (202).
        url = run_url(
            self_url=self.options.self_url,
            scheme=origin.scheme,
            server=origin.server,
            root_path=origin.root_path,
            path=self.path,
        )
        if url is None:
            return False  # no address of its own to call: run here
        token = self.signer().sign(RUN_PURPOSE, ttl=SELF_REQUEST_TOKEN_TTL)
        error = post_run(url, token, client=self._http_client())
        if error is None:
            # Recorded the first time per process and on recovery, not on every run.
            if self.breaker.last_error is not None or not self._self_request_worked:
                self.breaker.succeeded()
                self._self_request_worked = True
                health.record(self.queue, health.SELF_REQUEST, {"url": url, "ok": True})
            return True
        if self.breaker.failed(url, error):
            record = {"url": url, "ok": False, "error": error}
            health.record(self.queue, health.SELF_REQUEST, record)
        return False

    def _http_client(self) -> httpx.Client:
        # One client per process, shared by threads (httpx.Client is thread-safe): building one
        # per self-request costs ~100 ms of TLS context set-up even for plain http.
        with self._signer_lock:
            if self._client is None:
                self._client = httpx.Client(trust_env=False)
            return self._client

    def tick_url(self, base_url: str) -> str:
        """The signed ``{path}/tick`` URL of the site at ``base_url`` (scheme, host and the
        app's mount point, e.g. ``"https://example.org"``), valid for a year."""
        token = self.signer().sign(TICK_PURPOSE, ttl=TICK_TOKEN_TTL)
        return f"{base_url.rstrip('/')}{self.path}/tick?token={token}"

    def health(self) -> health.Health:
        """How this process runs jobs from page views, for the admin's overview."""
        limits = self.options.limits
        return health.Health(
            mode=self.options.mode,
            run_rate=self.options.run_rate,
            max_jobs=limits.max_jobs,
            max_time=limits.max_time,
            breaker_open=self.breaker.is_open,
            breaker_error=self.breaker.last_error,
            max_memory=limits.max_memory,
        )

    def diagnose(self, base_url: str) -> Report:
        """Run doctor's checks against this site at ``base_url``; the report is also stored
        for the admin's overview (blocking: it requests the site)."""
        from .doctor import refresh  # noqa: PLC0415 (only when asked)

        return refresh(self, base_url)

    def probe(self, request: Request) -> Response:
        """``{path}/doctor``'s answer: what this process knows of itself (token checked)."""
        from .doctor.probe import answer  # noqa: PLC0415 (only when doctor asks)

        return answer(self, request)

    def run_from_endpoint(self, via: str = "endpoint") -> None:
        """The bounded run promised by a ``202`` of ``{path}/run`` or ``{path}/tick``, ``via``
        naming the trigger (blocking, never raises)."""
        try:
            self.run_bounded(via=via)
        except StoreError as exc:
            warn_store(logger, "could not run jobs after {path}/run", exc, self.quiet)
        except Exception:
            logger.exception("reqrunner's run after {path}/run failed")

    def run_bounded(self, *, via: str) -> RunReport | None:
        """Run a bounded batch under one of the ``max_concurrent_runs`` leases.

        Returns ``None`` without running when every lease is held: another process (or thread)
        is already draining the queue. The lease is renewed while the run lasts, long jobs
        included, and a run that lost it (or whose process is stopping) stops after its
        current job.
        """
        queue = self.queue
        lease = RunLease.take(queue, self.options.max_concurrent_runs, self.lease_ttl)
        if lease is None:
            return None

        def should_stop() -> bool:
            # Asked before every job: the lease is kept by its own thread, so this is free.
            return stopping() or lease.lost

        try:
            with lease:
                report = queue.run(self.options.limits, should_stop=should_stop, via=via)
        finally:
            self.policy.invalidate()
        summary: dict[str, object] = {
            "via": via,
            "ran": report.ran,
            "succeeded": report.succeeded,
            "retried": report.retried,
            "failed": report.failed,
            "elapsed": round(report.elapsed, 3),
            "stopped_by": report.stopped_by,
        }
        health.record(queue, health.LAST_RUN, summary)
        return report
