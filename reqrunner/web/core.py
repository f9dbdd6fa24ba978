"""The framework-neutral core shared by :class:`~reqrunner.ASGIMiddleware` and
:class:`~reqrunner.WSGIMiddleware`.

It validates the options once, owns the per-process state (the due cache, the circuit breaker, the
lazily fetched secret) and does all the blocking work: answering reqrunner's own routes, and what
happens after a triggering response — a bounded run in this process under the run lease, or a
self-request that falls back to one. The adapters decide *when* (after the last body byte) and
*where* (a worker thread, never the event loop); this module decides *what*.

Whatever goes wrong in here is logged on the ``reqrunner`` logger and swallowed: the site's page
is always served as the app made it.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

import httpx

from ..models import Limits, RunReport
from .admin import AdminAccess, AdminSite
from .http import Request, Response
from .policy import Mode, PageView, RunPolicy, ServerKind, default_qualify, resolve_auto
from .routes import RUN_PURPOSE, TICK_PURPOSE, Router
from .signing import Signer
from .trigger import CircuitBreaker, post_run, run_url, script_tag

if TYPE_CHECKING:
    from ..queue import JobQueue

__all__ = ["SHUTDOWN_GRACE", "Concrete", "MiddlewareCore", "Origin", "Qualify"]

logger = logging.getLogger("reqrunner")

Qualify = Callable[[PageView], bool]
"""A qualification rule: whether this page view may trigger a run."""
Concrete = Literal["sync", "async", "js"]
"""A mode once ``auto`` is resolved."""

SHUTDOWN_GRACE = 20.0
"""Seconds a stopping process waits for a background run to finish its current job (under
gunicorn's default 30 s ``graceful_timeout``, so the worker exits on its own)."""
SELF_REQUEST_TOKEN_TTL = 60.0
"""A self-request's token is used within milliseconds; a minute absorbs clock steps."""
SCRIPT_TOKEN_TTL = 600.0
TICK_TOKEN_TTL = 365 * 24 * 3600.0
"""A tick URL is pasted into an uptime monitor's settings once: it lasts a year (or until the
site's secret changes)."""
"""A page's script token must outlive a slow page load and a tab restored from memory."""
LEASE_RECHECK_SECONDS = 1.0
"""How often a run renews (and so re-checks) its lease between jobs."""
MAX_ROUTE_BODY = 64 * 1024
"""reqrunner's own routes take small forms; larger bodies are cut off, not buffered."""

_MODES = ("sync", "async", "js", "auto")
_LEASE_PREFIX = "reqrunner.run."
_HEALTH_RUN = "reqrunner.health.last_run"
_HEALTH_SELF_REQUEST = "reqrunner.health.self_request"


@dataclass(frozen=True, kw_only=True, slots=True)
class Origin:
    """Where a page view arrived, for deriving the self-request's URL."""

    scheme: str
    host: str
    """``host[:port]`` as the request addressed it."""
    root_path: str
    """Where the app is mounted (ASGI ``root_path``, WSGI ``SCRIPT_NAME``)."""


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, not {value!r}")
    return float(value)


def _check_path(path: object) -> str:
    if not isinstance(path, str):
        raise TypeError(f"path must be a string like '/_reqrunner', not {path!r}")
    if (
        not path.startswith("/")
        or path == "/"
        or path.endswith("/")
        or any(c in path for c in "?#")
    ):
        raise ValueError(
            f"path={path!r}: must start with '/', not end with '/' and hold no '?' or '#', "
            "e.g. '/_reqrunner'"
        )
    return path


def _check_self_url(url: object) -> str | None:
    if url is None:
        return None
    if not isinstance(url, str):
        raise TypeError(f"self_url must be a URL string or None, not {url!r}")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(
            f"self_url={url!r}: give the site's own base URL, e.g. 'http://127.0.0.1:8000' "
            "(http or https, a host, no query or fragment)"
        )
    return url


class MiddlewareCore:
    """Options, per-process state and the blocking work of the middleware.

    Built by the adapters with their keyword options; see :class:`~reqrunner.ASGIMiddleware` for
    what each option means.
    """

    def __init__(
        self,
        queue: JobQueue,
        *,
        run_rate: float = 1.0,
        mode: Mode = "auto",
        max_jobs: int | None = 30,
        max_time: float = 30.0,
        max_memory: int | float | str | None = 80,
        max_concurrent_runs: int = 1,
        path: str = "/_reqrunner",
        self_url: str | None = None,
        secret: str | None = None,
        qualify: Qualify | None = None,
        admin: AdminAccess | None = None,
    ) -> None:
        rate = _number("run_rate", run_rate)
        if not 0.0 <= rate <= 1.0:
            raise ValueError(
                f"run_rate={run_rate!r}: must be between 0 and 1 (the share of page views that "
                "may start a run; 0 turns in-request running off)"
            )
        if mode not in _MODES:
            raise ValueError(f"mode={mode!r}: must be one of {', '.join(map(repr, _MODES))}")
        if isinstance(max_concurrent_runs, bool) or not isinstance(max_concurrent_runs, int):
            raise TypeError(
                f"max_concurrent_runs must be a whole number, not {max_concurrent_runs!r}"
            )
        if max_concurrent_runs < 1:
            raise ValueError(f"max_concurrent_runs={max_concurrent_runs}: must be at least 1")
        if not _number("max_time", max_time) > 0:
            raise ValueError(f"max_time={max_time!r}: must be more than 0 seconds")
        if secret is not None and (not isinstance(secret, str) or not secret):
            raise ValueError("secret must be a non-empty string, or None to use the site's own")
        for name, hook in (("qualify", qualify), ("admin", admin)):
            if hook is not None and not callable(hook):
                raise TypeError(f"{name} must be callable or None, not {hook!r}")

        self.queue = queue
        self.mode: Mode = mode
        self.limits = Limits(max_jobs=max_jobs, max_time=max_time, max_memory=max_memory)
        self.lease_ttl = 2.0 * float(max_time)
        self.max_concurrent_runs = max_concurrent_runs
        self.path = _check_path(path)
        self.self_url = _check_self_url(self_url)
        self.qualify: Qualify = qualify or default_qualify
        self.policy = RunPolicy(queue, run_rate=rate)
        self.breaker = CircuitBreaker()
        # The admin needs this core (queue, options, signer, runs), so it is built last of
        # what it uses; it only reads them per request.
        site = None if admin is None else AdminSite(self, admin)
        self.router = Router(signer=self.signer, run=self.run_from_endpoint, admin=site)
        self._secret = secret
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
                secret = self._secret or os.environ.get("REQRUNNER_SECRET") or self.queue.secret
                self._signer = Signer(secret)
            return self._signer

    # -- the decision ---------------------------------------------------------------------------

    def concrete_mode(self, server: ServerKind) -> Concrete:
        """The mode used for a page view on this kind of server."""
        return resolve_auto(server) if self.mode == "auto" else self.mode

    def qualifies(self, view: PageView) -> bool:
        """Apply the qualification rule; a rule that raises counts as "no" and is logged."""
        try:
            return bool(self.qualify(view))
        except Exception:
            logger.exception("reqrunner's qualify callable raised; not triggering a run")
            return False

    def injection_tag(self, view: PageView, origin: Origin) -> bytes | None:
        """The script tag for a ``js`` page if jobs are due, else ``None`` (may block)."""
        try:
            if not self.policy.jobs_due():
                return None
            base = self.self_url.rstrip("/") if self.self_url else origin.root_path
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

        ``async`` tries the self-request first; every other mode runs here.

        Never raises: reqrunner's own failures are logged.
        """
        try:
            if not self.policy.jobs_due():
                return
            if mode == "async" and not self.breaker.is_open:
                url = run_url(
                    self_url=self.self_url,
                    scheme=origin.scheme,
                    host=origin.host,
                    root_path=origin.root_path,
                    path=self.path,
                )
                token = self.signer().sign(RUN_PURPOSE, ttl=SELF_REQUEST_TOKEN_TTL)
                error = post_run(url, token, client=self._http_client())
                if error is None:
                    # Recorded the first time per process and on recovery, not on every run.
                    if self.breaker.last_error is not None or not self._self_request_worked:
                        self.breaker.succeeded()
                        self._self_request_worked = True
                        self._record(_HEALTH_SELF_REQUEST, {"url": url, "ok": True})
                    return
                if self.breaker.failed(url, error):
                    self._record(_HEALTH_SELF_REQUEST, {"url": url, "ok": False, "error": error})
            self.run_bounded(via="sync")
        except Exception:
            logger.exception("reqrunner's after-response run failed")

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

    def run_from_endpoint(self) -> None:
        """The bounded run promised by ``{path}/run``'s ``202`` (blocking, never raises)."""
        try:
            self.run_bounded(via="endpoint")
        except Exception:
            logger.exception("reqrunner's run after {path}/run failed")

    def run_bounded(self, *, via: str) -> RunReport | None:
        """Run a bounded batch under one of the ``max_concurrent_runs`` leases.

        Returns ``None`` without running when every lease is held: another process (or thread)
        is already draining the queue. The lease is renewed between jobs, and a run that lost it
        (or whose process is stopping) stops after its current job.
        """
        queue = self.queue
        for slot in range(self.max_concurrent_runs):
            name = f"{_LEASE_PREFIX}{slot}"
            token = queue.acquire_lease(name, self.lease_ttl)
            if token is not None:
                break
        else:
            return None

        renewed = time.monotonic()

        def should_stop() -> bool:
            # Asked before every job. Renewing (and so re-checking) the lease every time would
            # add a write per job to a runner that batches its writes; once a second is plenty
            # for a lease that lives 2 x max_time.
            nonlocal renewed
            if _stopping.is_set():
                return True
            if time.monotonic() - renewed < LEASE_RECHECK_SECONDS:
                return False
            renewed = time.monotonic()
            return not queue.renew_lease(name, token, self.lease_ttl)

        try:
            report = queue.run(self.limits, should_stop=should_stop)
        finally:
            try:
                queue.release_lease(name, token)
            finally:
                self.policy.invalidate()
        self._record(
            _HEALTH_RUN,
            {
                "via": via,
                "ran": report.ran,
                "succeeded": report.succeeded,
                "retried": report.retried,
                "failed": report.failed,
                "elapsed": round(report.elapsed, 3),
                "stopped_by": report.stopped_by,
            },
        )
        return report

    def _record(self, name: str, value: dict[str, object]) -> None:
        # Health for the admin page, kept in the database so every process's latest shows.
        try:
            self.queue.set_meta(name, json.dumps({"at": time.time(), **value}))
        except Exception:
            logger.exception("reqrunner could not record %s", name)

    # -- background threads (WSGI) --------------------------------------------------------------

    @staticmethod
    def call_safely(work: Callable[[], None]) -> None:
        """Run after-response ``work`` (blocking); what it raises is logged, never raised."""
        try:
            work()
        except Exception:
            logger.exception("reqrunner's after-response work failed")

    def in_background(self, work: Callable[[], None], *, finish: bool = False) -> None:
        """Start ``work`` in a thread of this process, waited for (boundedly) at exit.

        ``finish``: the process serves one request and exits (CGI, ``wsgi.run_once``), so its
        exit is not a shutdown: the run is let finish, within twice its ``max_time``.
        """
        thread = threading.Thread(
            target=self.call_safely, args=(work,), name="reqrunner-run", daemon=True
        )
        with _threads_lock:
            if finish:
                _finishing[thread] = self.lease_ttl
            else:
                _threads.add(thread)
        thread.start()


_stopping = threading.Event()
_threads: weakref.WeakSet[threading.Thread] = weakref.WeakSet()
_finishing: weakref.WeakKeyDictionary[threading.Thread, float] = weakref.WeakKeyDictionary()
_threads_lock = threading.Lock()


@atexit.register
def _wait_for_runs() -> None:
    # Daemon threads so a stuck job never keeps a worker alive forever. A one-request (CGI)
    # process's run is what that process is for: wait for it. At any other exit, ask the runs
    # to stop after their current job and give that job SHUTDOWN_GRACE seconds.
    with _threads_lock:
        finishing = list(_finishing.items())
        threads = list(_threads)
    for thread, bound in finishing:
        thread.join(bound)
    _stopping.set()
    deadline = time.monotonic() + SHUTDOWN_GRACE
    for thread in threads:
        thread.join(max(deadline - time.monotonic(), 0.0))
