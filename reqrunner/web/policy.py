"""Per request: does this page view qualify, does it trigger a run, and in which mode.

Everything here is framework-neutral and cheap on the hot path. The ASGI and WSGI adapters
describe a finished page view as a :class:`PageView` and ask :class:`RunPolicy`.

The order of the questions keeps the common case free: the ``run_rate`` die (the middleware's
:attr:`~reqrunner.web.base.Middleware.die`) is cast before anything else (with
``run_rate=0.01``, 99 requests in 100 stop there without touching the response), the
qualification rule looks only at headers, and "are jobs due" is one indexed query whose answer
is cached for about a second per process and dropped when this process dispatches.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from ..errors import StoreError
from .quiet import Throttle, warn_store

__all__ = [
    "DUE_CACHE_SECONDS",
    "Concrete",
    "Mode",
    "PageView",
    "Qualify",
    "RunPolicy",
    "ServerKind",
    "default_qualify",
    "resolve_auto",
]

logger = logging.getLogger("reqrunner.policy")

Mode = Literal["sync", "async", "js", "auto"]
"""How a triggered run happens; ``auto`` is resolved per server by :func:`resolve_auto`."""
Concrete = Literal["sync", "async", "js"]
"""A mode once ``auto`` is resolved."""

DUE_CACHE_SECONDS = 1.0
"""How long one process trusts its last answer to "are jobs due"."""

_HTML_TYPES = ("text/html", "application/xhtml+xml")
# Sec-Fetch-Mode values a browser sends for fetch()/XHR; a page load is "navigate".
_SCRIPTED_FETCH_MODES = ("cors", "no-cors", "same-origin")


@dataclass(frozen=True, kw_only=True, slots=True)
class PageView:
    """One request and the start of the app's response, as the qualification rule sees them.

    Header names are lower case; repeated headers are joined with ``", "``.
    """

    method: str
    path: str
    request_headers: Mapping[str, str] = field(default_factory=dict)
    status: int = 200
    response_headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def content_type(self) -> str:
        """The response's media type, lower case, without parameters."""
        return self.response_headers.get("content-type", "").split(";")[0].strip().lower()


Qualify = Callable[[PageView], bool]
"""A qualification rule: whether this page view may trigger a run."""


def default_qualify(view: PageView) -> bool:
    """The default rule: an HTML page that a person's browser loaded and that did not fail.

    Not ``HEAD``/``OPTIONS``; not Ajax (``X-Requested-With: XMLHttpRequest``, or a
    ``Sec-Fetch-Mode`` that only scripts use); an HTML response; not a 5xx.
    """
    if view.method in ("HEAD", "OPTIONS"):
        return False
    headers = view.request_headers
    if headers.get("x-requested-with", "").lower() == "xmlhttprequest":
        return False
    if headers.get("sec-fetch-mode", "").lower() in _SCRIPTED_FETCH_MODES:
        return False
    if view.status >= 500:
        return False
    return view.content_type in _HTML_TYPES


class _Queue(Protocol):
    def has_due(self) -> bool: ...

    def on_dispatch(self, callback: Callable[[], None]) -> None: ...


class RunPolicy:
    """The per-process "are jobs due" cache.

    ``clock`` is a monotonic clock. Thread-safe: WSGI servers ask from many threads, ASGI from
    worker threads.
    """

    def __init__(
        self,
        queue: _Queue,
        *,
        clock: Callable[[], float] = time.monotonic,
        cache_seconds: float = DUE_CACHE_SECONDS,
    ) -> None:
        self._queue = queue
        self.quiet = Throttle()
        """Its repeated database warnings, said once a minute."""
        self._clock = clock
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._answer: tuple[bool, float] | None = None
        """The last answer to "are jobs due" and when it was had; one attribute, so that the
        hot path reads it whole without the lock."""
        self._generation = 0
        queue.on_dispatch(self.invalidate)

    def cached_due(self) -> bool | None:
        """The cached answer to "are jobs due", or ``None`` when it must be asked again.

        Lock-free (asked on every page view that rolled the die): the answer and its time are
        read as one tuple, and a reader that races :meth:`invalidate` sees the answer either
        just before or just after it, as it would with a lock.
        """
        answer = self._answer
        if answer is None or self._clock() - answer[1] >= self._cache_seconds:
            return None
        return answer[0]

    def nothing_due(self) -> bool:
        """Whether the cached answer says no job is due (no lock, no query): ``cached_due() is
        False`` in one call, as the adapters ask it of every page view that rolled the die.

        Then :meth:`~reqrunner.web.core.MiddlewareCore.decide` answers ``PASS`` whatever the
        rule, the mode or the response, so an adapter asks this first and skips describing the
        page.
        """
        answer = self._answer
        return (
            answer is not None
            and answer[0] is False
            and self._clock() - answer[1] < self._cache_seconds
        )

    def jobs_due(self) -> bool:
        """Whether jobs are due, from the cache or from one query (blocking: not on a loop).

        A failing query is logged and answers ``False`` for the cache period, so a database
        that is down costs one error line per second, not one per request.
        """
        cached = self.cached_due()
        if cached is not None:
            return cached
        with self._lock:
            generation = self._generation
        try:
            due = bool(self._queue.has_due())
        except StoreError as exc:
            what = "could not check for due jobs (pages are served, no job runs)"
            warn_store(logger, what, exc, self.quiet)
            due = False
        except Exception:
            logger.exception("reqrunner could not check for due jobs; pages served, no job runs")
            due = False
        with self._lock:
            # A dispatch that landed while the query ran may not be in its answer: keep that
            # answer out of the cache (a stale "nothing due" would hide the new job), and say
            # "due" — at worst a run starts and finds nothing.
            if generation == self._generation:
                self._answer = (due, self._clock())
            else:
                due = True
        return due

    def invalidate(self) -> None:
        """Forget the cached answer (after a local dispatch, or after a run drained the queue)."""
        with self._lock:
            self._answer = None
            self._generation += 1


@dataclass(frozen=True, kw_only=True, slots=True)
class ServerKind:
    """What the adapter knows about the server it runs in."""

    protocol: Literal["asgi", "wsgi"]
    run_once: bool = False
    """WSGI's ``wsgi.run_once``: the process serves this one request and exits (CGI)."""
    pathsend: bool = False
    """ASGI's ``http.response.pathsend``: the app may hand the server a file to send instead of
    a body, and such a body cannot be given a script."""

    @property
    def waits(self) -> bool:
        """Whether the adapter may wait for the database before the response goes out: a WSGI
        thread serves one request, an ASGI event loop serves them all."""
        return self.protocol == "wsgi"

    @property
    def needs_length(self) -> bool:
        """Whether a response that a run follows must carry a ``Content-Length``: a WSGI server
        ends a response without one only once its ``close()`` has returned, which is where the
        run is handed over; with the length, the page is complete at its last byte."""
        return self.protocol == "wsgi"


def resolve_auto(server: ServerKind) -> Literal["sync", "js"]:
    """The concrete mode ``auto`` picks for this server.

    ``sync`` wherever the process outlives the response. Measured with ``bench/middleware.py``
    (medians of 15 triggering page views, ms from the visitor's last byte until the job
    started; worst in brackets): uvicorn sync +0.6 (1.8) / async +3.1 (51), gunicorn sync +1.5
    (2.4) / async +3.6 (57), waitress sync +1.0 (2.2) / async +3.4 (56); the page itself is
    within noise of a page with nothing due in both modes. The self-request buys nothing on
    these servers: it is one more request, connection and worker turn per run (on one gunicorn
    sync worker it queues behind visitors), it fails behind proxies and TLS terminators until
    ``self_url`` is set, and it ends in the same after-response run in the process that
    answers it.

    ``js`` where the process does not outlive the request (``wsgi.run_once``, i.e. CGI): the
    visitor's response ends only when that process exits, so any run *or* self-request in it
    keeps the page loading (a self-request waits for a ``202`` that a CGI endpoint sends only
    when its own process exits, after its run). The browser's POST starts another process,
    whose slow answer nobody waits for.
    """
    return "js" if server.run_once else "sync"
