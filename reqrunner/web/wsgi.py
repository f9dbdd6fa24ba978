"""The WSGI adapter: translates between WSGI and :mod:`reqrunner.middleware`.

The run is handed from the response iterable's ``close()`` to a background thread of the worker
process. Doing the work inside ``close()`` instead holds the worker: on gunicorn gthread and
waitress the visitor's next request on the same connection waits for it, on one gunicorn sync
worker everyone does, and a response without ``Content-Length`` (chunked, or from a generator)
or with an empty body is not finished until ``close()`` returns (shared/reference/
after-response.md). For the same reason a triggering response is given a ``Content-Length``
(its body buffered, up to :data:`~reqrunner.trigger.MAX_INJECT_BYTES`) when the app sent none.
"""

from __future__ import annotations

import http
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from .admin import AdminAccess
from .core import MAX_ROUTE_BODY, MiddlewareCore, Origin, Qualify, logger
from .http import Request
from .policy import Mode, PageView, ServerKind
from .trigger import MAX_INJECT_BYTES, Injector, can_inject

if TYPE_CHECKING:
    from ..queue import JobQueue

__all__ = ["WSGIApp", "WSGIMiddleware"]

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
"""Any WSGI (PEP 3333) application."""

# What to do with the response of a page view that rolled the die:
#   pass     not ours to touch: the real start_response was called with the app's headers
#   direct   triggers, and already carries Content-Length: passed on as is, run from close()
#   buffer   triggers, has no Content-Length: buffered and measured, run from close()
#   inject   js mode: buffered, the script added, Content-Length set
_Plan = Literal["pass", "direct", "buffer", "inject"]


def _request_headers(environ: dict[str, Any]) -> dict[str, str]:
    headers = {
        key[5:].replace("_", "-").lower(): str(value)
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.replace("_", "-").lower()] = str(environ[key])
    return headers


def _origin(environ: dict[str, Any]) -> Origin:
    host = environ.get("HTTP_HOST") or f"{environ['SERVER_NAME']}:{environ['SERVER_PORT']}"
    return Origin(
        scheme=environ.get("wsgi.url_scheme", "http"),
        host=host,
        root_path=environ.get("SCRIPT_NAME", ""),
    )


class WSGIMiddleware:
    """Run due jobs after some of a WSGI app's HTML responses (DESIGN §4).

    ``application = WSGIMiddleware(application, queue, run_rate=0.01)``. The options are those of
    :class:`~reqrunner.ASGIMiddleware`; ``mode="auto"`` means ``sync`` unless the server runs
    one request per process (``wsgi.run_once``, CGI), where it means ``js``.
    """

    def __init__(
        self,
        app: WSGIApp,
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
        self.app = app
        self.core = MiddlewareCore(
            queue,
            run_rate=run_rate,
            mode=mode,
            max_jobs=max_jobs,
            max_time=max_time,
            max_memory=max_memory,
            max_concurrent_runs=max_concurrent_runs,
            path=path,
            self_url=self_url,
            secret=secret,
            qualify=qualify,
            admin=admin,
        )

    def tick_url(self, base_url: str) -> str:
        """The signed URL that makes this site run a bounded batch of due jobs when fetched:
        give it to an uptime monitor or a remote cron so that a site without visitors still
        runs its jobs. ``base_url`` is the site's public address (``"https://example.org"``,
        with the app's mount point if it has one); the URL is valid for a year."""
        return self.core.tick_url(base_url)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        sub = self.core.own_subpath(environ.get("PATH_INFO", ""))
        if sub is not None:
            return self._route(environ, start_response, sub)
        if not self.core.policy.roll():
            return self.app(environ, start_response)
        server = ServerKind(protocol="wsgi", run_once=bool(environ.get("wsgi.run_once")))
        exchange = _Exchange(self.core, self.core.concrete_mode(server), environ, start_response)
        result = self.app(environ, exchange.start_response)
        if exchange.plan == "pass":
            return result
        exchange.result = result
        return exchange

    def _route(
        self, environ: dict[str, Any], start_response: StartResponse, sub: str
    ) -> Iterable[bytes]:
        try:
            length = min(int(environ.get("CONTENT_LENGTH") or 0), MAX_ROUTE_BODY)
        except ValueError:
            length = 0
        origin = _origin(environ)
        request = Request(
            method=environ.get("REQUEST_METHOD", "GET").upper(),
            path=sub or "/",
            query_string=environ.get("QUERY_STRING", ""),
            headers=_request_headers(environ),
            body=environ["wsgi.input"].read(length) if length > 0 else b"",
            client=environ.get("REMOTE_ADDR"),
            scheme=origin.scheme,
            host=origin.host,
            root_path=origin.root_path + self.core.path,
        )
        response = self.core.route(request)
        start_response(
            f"{response.status} {http.HTTPStatus(response.status).phrase}", list(response.headers)
        )
        finish = bool(environ.get("wsgi.run_once"))
        return _Closing([response.body], response.after, self.core, finish=finish)


class _Closing:
    """A body whose ``close()`` hands ``after`` to a background thread."""

    def __init__(
        self,
        body: Iterable[bytes],
        after: Callable[[], None] | None,
        core: MiddlewareCore,
        *,
        finish: bool,
    ) -> None:
        self._body, self._after, self._core, self._finish = body, after, core, finish

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            if self._after is not None:
                self._core.in_background(self._after, finish=self._finish)


class _Exchange:
    """One page view that rolled the die: decides at ``start_response``, buffers if it must."""

    def __init__(
        self,
        core: MiddlewareCore,
        mode: Literal["sync", "async", "js"],
        environ: dict[str, Any],
        start_response: StartResponse,
    ) -> None:
        self._core, self._mode, self._environ = core, mode, environ
        self._start_response = start_response
        self.plan: _Plan | None = None
        self.result: Iterable[bytes] = ()
        self._status = ""
        self._headers: list[tuple[str, str]] = []
        self._held: list[bytes] = []
        self._held_size = 0
        self._complete = False
        self._tag = b""

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> Callable[[bytes], object]:
        if exc_info is not None or self.plan is not None:
            # An error page replacing the first answer, or a second call: the app's business,
            # passed on exactly as without reqrunner (the server re-raises if headers went out).
            self.plan = "pass"
            return self._start_response(status, headers, exc_info)
        try:
            self.plan = self._decide(status, headers)
        except Exception:
            logger.exception("reqrunner failed while inspecting a response; passing it on")
            self.plan = "pass"
        if self.plan in ("pass", "direct"):
            return self._start_response(status, headers)
        self._status, self._headers = status, headers
        return self._hold

    def _hold(self, data: bytes) -> None:
        # The legacy write() callable, while the response is being held back.
        self._held.append(data)
        self._held_size += len(data)

    def _decide(self, status: str, headers: list[tuple[str, str]]) -> _Plan:
        core, environ = self._core, self._environ
        response_headers: dict[str, str] = {}
        for name, value in headers:
            key = name.lower()
            response_headers[key] = (
                f"{response_headers[key]}, {value}" if key in response_headers else value
            )
        view = PageView(
            method=environ.get("REQUEST_METHOD", "GET").upper(),
            path=environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""),
            request_headers=_request_headers(environ),
            status=int(status.split(" ", 1)[0]),
            response_headers=response_headers,
        )
        if not core.qualifies(view):
            return "pass"
        if self._mode == "js":
            if not can_inject(view.status, response_headers):
                return "pass"
            tag = core.injection_tag(view, _origin(environ))
            if tag is None:
                return "pass"
            self._tag = tag
            return "inject"
        if not core.policy.jobs_due():
            return "pass"
        return "direct" if "content-length" in response_headers else "buffer"

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.result:
            if self.plan in ("buffer", "inject"):
                self._held.append(chunk)
                self._held_size += len(chunk)
                if self._held_size > MAX_INJECT_BYTES:
                    # Too big to hold: send it as the app made it, and leave the run to a later
                    # page, since a triggering response must carry a Content-Length.
                    self.plan = "pass"
                    self._start_response(self._status, self._headers)
                    yield b"".join(self._held)
                    self._held.clear()
            else:
                yield chunk
        if self.plan in ("buffer", "inject"):
            body = b"".join(self._held)
            if self.plan == "inject":
                injector = Injector(self._tag)
                body = injector.feed(body) + injector.finish()
            headers = [(k, v) for k, v in self._headers if k.lower() != "content-length"]
            self._start_response(self._status, [*headers, ("Content-Length", str(len(body)))])
            yield body
        self._complete = True

    def close(self) -> None:
        try:
            close = getattr(self.result, "close", None)
            if close is not None:
                close()
        finally:
            # Only after a response that went out whole: an app that raised mid-body is
            # having a bad moment, and a run would only add to it.
            if self._complete and self.plan in ("direct", "buffer"):
                self._core.in_background(
                    lambda: self._core.after_response(self._mode, _origin(self._environ)),
                    finish=bool(self._environ.get("wsgi.run_once")),
                )
