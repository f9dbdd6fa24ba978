"""The WSGI adapter: translates between WSGI calls and :mod:`reqrunner.web.core`.

The run is handed from the response iterable's ``close()`` to a background thread of the worker
process. Doing the work inside ``close()`` instead holds the worker: on gunicorn gthread and
waitress the visitor's next request on the same connection waits for it, on one gunicorn sync
worker everyone does, and a response without ``Content-Length`` (chunked, or from a generator)
or with an empty body is not finished until ``close()`` returns (docs/after-response.md has the
measurements). For the same reason a triggering response is given a ``Content-Length`` (its
body buffered, up to :data:`~reqrunner.web.trigger.MAX_INJECT_BYTES`) when the app sent none.
"""

from __future__ import annotations

import http
import socket
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any

from starlette.datastructures import Headers

from ..deferred import PENDING, take
from .background import run_in_background
from .base import Middleware
from .core import MAX_ROUTE_BODY, PASS, MiddlewareCore, Origin, Plan, logger
from .http import Request, fold
from .policy import PageView, ServerKind
from .trigger import MAX_INJECT_BYTES, Injector, own_address

__all__ = ["StartResponse", "WSGIApp", "WSGIMiddleware"]

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
"""Any WSGI (PEP 3333) application."""

_SERVER = ServerKind(protocol="wsgi")
_RUN_ONCE_SERVER = ServerKind(protocol="wsgi", run_once=True)


def _request_headers(environ: dict[str, Any]) -> dict[str, str]:
    # The server has already joined repeated headers into one HTTP_* value.
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
    name = environ.get("SERVER_NAME")
    if isinstance(name, str) and name.endswith(".invalid"):
        name = "127.0.0.1"  # waitress's stand-in when no server_name is configured
    listener = environ.get("gunicorn.socket")
    if getattr(listener, "family", None) == socket.AF_UNIX:
        name = None  # gunicorn on a Unix socket fills SERVER_NAME from the Host header
    server = own_address(name, environ.get("SERVER_PORT"))
    return Origin(
        scheme=environ.get("wsgi.url_scheme", "http"),
        host=environ.get("HTTP_HOST") or server or "",
        root_path=environ.get("SCRIPT_NAME", ""),
        server=server,
    )


def _wait_at_exit(core: MiddlewareCore, environ: dict[str, Any]) -> float | None:
    # A one-request (CGI) process exits after this response: its run is let finish first.
    return core.lease_ttl if environ.get("wsgi.run_once") else None


def _followed(
    core: MiddlewareCore, environ: dict[str, Any], result: Iterable[bytes]
) -> Iterable[bytes]:
    # The response, followed by the after_response jobs this thread dispatched, if any.
    jobs = take()
    if jobs is None:
        return result
    return _Closing(result, lambda: core.finish(jobs, PASS, None), _wait_at_exit(core, environ))


def _close(iterable: Iterable[bytes]) -> None:
    close = getattr(iterable, "close", None)
    if close is not None:
        close()


class WSGIMiddleware(Middleware[WSGIApp]):
    """Run due jobs after some of a WSGI app's HTML responses.

    ``application = WSGIMiddleware(application, queue, run_rate=0.01)``. The options are
    described at :class:`~reqrunner.web.base.Middleware`; ``mode="auto"`` means ``sync`` unless
    the server runs one request per process (``wsgi.run_once``, CGI), where it means ``js``.
    """

    keeps_by_thread = True

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        # A substring test first: one C call rules out almost every path.
        if self.path in environ.get("PATH_INFO", ""):
            sub = self.core.own_subpath(environ["PATH_INFO"])
            if sub is not None:
                return self._route(environ, start_response, sub)
        core = self.core
        # The common case: the die did not pass, and the app gets the server's own
        # start_response (a C call and a comparison, no Python frame). Whatever the die says,
        # the after_response jobs the app dispatched are handed to a thread from close().
        if self.die() >= self.run_rate:
            result = self.app(environ, start_response)
            return _followed(core, environ, result) if PENDING else result
        exchange = _Exchange(core, environ, start_response)
        result = self.app(environ, exchange.start_response)
        if exchange.plan is None or exchange.plan.action != "pass":
            exchange.result = result
            return exchange
        return _followed(core, environ, result) if PENDING else result

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
            headers=Headers(headers=_request_headers(environ)),
            body=environ["wsgi.input"].read(length) if length > 0 else b"",
            client=environ.get("REMOTE_ADDR"),
            scheme=origin.scheme,
            host=origin.host,
            root_path=origin.root_path + self.core.path,
            server={
                "protocol": "wsgi",
                "run_once": bool(environ.get("wsgi.run_once")),
                "software": environ.get("SERVER_SOFTWARE", ""),
                "gateway": environ.get("GATEWAY_INTERFACE", ""),
            },
        )
        response = self.core.route(request)
        start_response(
            f"{response.status} {http.HTTPStatus(response.status).phrase}", list(response.headers)
        )
        wait = _wait_at_exit(self.core, environ)
        return _Closing([response.body], response.after, wait)


class _Closing:
    """A body whose ``close()`` hands ``after`` to a background thread."""

    def __init__(
        self, body: Iterable[bytes], after: Callable[[], None] | None, wait: float | None
    ) -> None:
        self._body, self._after, self._wait = body, after, wait

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        try:
            _close(self._body)
        finally:
            if self._after is not None:
                run_in_background(self._after, wait_at_exit=self._wait)


class _Exchange:
    """One page view that rolled the die: asks the core what to do at ``start_response``, and
    holds the body back where the plan needs it whole (to add the script, or to measure it)."""

    __slots__ = (
        "_complete", "_core", "_environ", "_headers", "_held", "_held_size", "_holding",
        "_start_response", "_status", "plan", "result",
    )  # fmt: skip

    def __init__(
        self,
        core: MiddlewareCore,
        environ: dict[str, Any],
        start_response: StartResponse,
    ) -> None:
        self._core, self._environ = core, environ
        self._start_response = start_response
        self.plan: Plan | None = None
        """``None`` until the app calls ``start_response`` (a generator app calls it late)."""
        self.result: Iterable[bytes] = ()
        self._holding = False
        self._status = ""
        self._headers: list[tuple[str, str]] = []
        self._held: list[bytes] = []
        self._held_size = 0
        self._complete = False

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> Callable[[bytes], object]:
        if exc_info is not None or self.plan is not None:
            # An error page replacing the first answer, or a second call: the app's business,
            # passed on exactly as without reqrunner (the server re-raises if headers went out).
            self.plan, self._holding = PASS, False
            return self._start_response(status, headers, exc_info)
        try:
            # With nothing due (the cached answer) every plan is "pass": the page is not read.
            self.plan = PASS if self._core.policy.nothing_due() else self._decide(status, headers)
        except Exception:
            logger.exception("reqrunner failed while inspecting a response; passing it on")
            self.plan = PASS
        self._holding = self.plan.action == "inject" or self.plan.measure
        if not self._holding:
            return self._start_response(status, headers)
        self._status, self._headers = status, headers
        return self._hold

    def _hold(self, data: bytes) -> None:
        # The legacy write() callable, while the response is being held back.
        self._held.append(data)
        self._held_size += len(data)

    def _decide(self, status: str, headers: list[tuple[str, str]]) -> Plan:
        environ = self._environ
        view = PageView(
            method=environ.get("REQUEST_METHOD", "GET").upper(),
            path=environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""),
            request_headers=_request_headers(environ),
            status=int(status.split(" ", 1)[0]),
            response_headers=fold(headers),
        )
        server = _RUN_ONCE_SERVER if environ.get("wsgi.run_once") else _SERVER
        return self._core.decide(view, server, _origin(environ))

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.result:
            if self._holding:
                self._hold(chunk)
                if self._held_size > MAX_INJECT_BYTES:
                    # Too big to hold: send it as the app made it, and leave the run to a later
                    # page, since a triggering response must carry a Content-Length.
                    self.plan, self._holding = PASS, False
                    self._start_response(self._status, self._headers)
                    yield b"".join(self._held)
                    self._held.clear()
            else:
                yield chunk
        if self._holding:
            body = b"".join(self._held)
            if self.plan is not None and self.plan.action == "inject":
                injector = Injector(self.plan.tag)
                body = injector.feed(body) + injector.finish()
            headers = [(k, v) for k, v in self._headers if k.lower() != "content-length"]
            self._start_response(self._status, [*headers, ("Content-Length", str(len(body)))])
            yield body
        self._complete = True

    def close(self) -> None:
        try:
            _close(self.result)
        finally:
            # Only after a response that went out whole: an app that raised mid-body is
            # having a bad moment, and a run would only add to it.
            plan = self.plan if self._complete and self.plan is not None else PASS
            # The request's after_response jobs, those its body's making dispatched included,
            # run before the plan's run.
            deferred = take()
            if deferred or plan.action == "run_after":
                core, origin = self._core, _origin(self._environ)
                run_in_background(
                    lambda: core.finish(deferred, plan, origin),
                    wait_at_exit=_wait_at_exit(core, self._environ),
                )
