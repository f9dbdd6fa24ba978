"""Small ASGI and WSGI sites wrapped in reqrunner's middleware, for real servers to load.

Configured from the environment so that a server subprocess (uvicorn, gunicorn, waitress) builds
the same site the test describes:

    RR_DB          job database URL                       RR_MODE   sync | async | js | auto
    RR_STAMPS      file the ``stamp`` job appends to       RR_RATE   run_rate (default 1)
    RR_SELF_URL    self_url option (default none)          RR_CONC   max_concurrent_runs
    RR_SECRET      secret option                           RR_BARE   1: the app unwrapped;
                                                                     noop: in a do-nothing
                                                                     middleware instead;
                                                                     paths: side by side
    RR_TTR         the ``stamp`` job's ttr (default 300)   RR_MAX_TIME  max_time (default 20)

Pages: ``/page`` (HTML with Content-Length), ``/dispatch?n=&seconds=`` (dispatches ``stamp`` jobs
and answers HTML; on WSGI from a generator without Content-Length, the hard case),
``/defer?n=&seconds=&job=`` (the same with ``after_response=True``; ``job``: ``stamp``, ``flaky``
or ``leased``), on ASGI also ``/adefer`` (an ``async def`` view using ``adispatch``),
``/adispatch`` (the same without ``after_response``) and ``/blocking-dispatch`` (an ``async def``
view calling the blocking ``dispatch``, for comparison),
``/json``, ``/health``. With ``RR_BARE=paths`` one process serves the page in every way the
benchmark compares, one path each (:data:`SIDE_BY_SIDE`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

import reqrunner
from reqrunner.web.asgi import ASGIMiddleware
from reqrunner.web.policy import RunPolicy
from reqrunner.web.wsgi import WSGIMiddleware

PAGE = b"<!doctype html><html><head><title>t</title></head><body><p>hello</p></body></html>"


def register(queue: reqrunner.JobQueue, stamps: str) -> None:
    """Register the ``stamp`` job: sleeps, then appends when and where it ran to ``stamps``."""

    @queue.job(name="stamp", ttr=float(os.environ.get("RR_TTR", "300")))
    def stamp(key: str, seconds: float = 0.0) -> None:
        start = time.time()
        time.sleep(seconds)
        line = json.dumps({"key": key, "pid": os.getpid(), "start": start, "end": time.time()})
        with Path(stamps).open("a") as fh:
            fh.write(line + "\n")

    @queue.job(name="leased", ttr=1.0, backoff=0.1)
    def leased(key: str, seconds: float = 0.0) -> None:
        """``stamp`` with a 1 s lease: a run killed with its process is soon recovered."""
        stamp(key, seconds)

    @queue.job(name="flaky", backoff=0.2)
    def flaky(key: str, seconds: float = 0.0) -> None:
        """Raises on its first attempt (leaving ``<stamps>.failed-<key>``), then stamps."""
        marker = Path(f"{stamps}.failed-{key}")
        if not marker.exists():
            marker.write_text(str(os.getpid()))
            raise RuntimeError("the first attempt fails")
        stamp(key, seconds)


def read_stamps(path: str | Path) -> list[dict[str, Any]]:
    """The ``stamp`` executions recorded so far."""
    p = Path(path)
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def _queue() -> reqrunner.JobQueue:
    queue = reqrunner.JobQueue(os.environ["RR_DB"])
    register(queue, os.environ["RR_STAMPS"])
    return queue


def _options() -> dict[str, Any]:
    return {
        "run_rate": float(os.environ.get("RR_RATE", "1")),
        "mode": os.environ.get("RR_MODE", "sync"),
        "max_concurrent_runs": int(os.environ.get("RR_CONC", "1")),
        "self_url": os.environ.get("RR_SELF_URL") or None,
        "secret": os.environ.get("RR_SECRET") or None,
        "max_time": float(os.environ.get("RR_MAX_TIME", "20")),
    }


def _dispatch(queue: reqrunner.JobQueue, query: dict[str, list[str]]) -> None:
    n = int(query.get("n", ["1"])[0])
    seconds = float(query.get("seconds", ["0"])[0])
    prefix = query.get("key", ["k"])[0]
    for i in range(n):
        queue.dispatch("stamp", f"{prefix}{i}", seconds)


def _calls(query: dict[str, list[str]]) -> tuple[str, list[tuple[str, float]]]:
    # /defer's job and the arguments of each of its n jobs.
    n = int(query.get("n", ["1"])[0])
    seconds = float(query.get("seconds", ["0"])[0])
    prefix = query.get("key", ["k"])[0]
    return query.get("job", ["stamp"])[0], [(f"{prefix}{i}", seconds) for i in range(n)]


def _defer(queue: reqrunner.JobQueue, query: dict[str, list[str]]) -> None:
    name, calls = _calls(query)
    for key, seconds in calls:
        queue.using(name, after_response=True).dispatch(key, seconds)
    # The view goes on for ``hold`` seconds after its dispatches (the other requests of the
    # process answer meanwhile).
    time.sleep(float(query.get("hold", ["0"])[0]))


def make_asgi() -> Any:
    """A Starlette site wrapped in :class:`ASGIMiddleware` (unless ``RR_BARE=1``)."""
    queue = _queue()

    async def page(request: Request) -> Response:
        return HTMLResponse(PAGE)

    def dispatch(request: Request) -> Response:
        # A sync endpoint: Starlette runs it in a thread, so the dispatch never blocks the loop.
        _dispatch(queue, parse_qs(request.url.query))
        return HTMLResponse(PAGE)

    def defer(request: Request) -> Response:
        _defer(queue, parse_qs(request.url.query))
        return HTMLResponse(PAGE)

    async def adefer(request: Request) -> Response:
        name, calls = _calls(parse_qs(request.url.query))
        for key, seconds in calls:
            await queue.using(name, after_response=True).adispatch(key, seconds)
        return HTMLResponse(PAGE)

    async def adispatch(request: Request) -> Response:
        name, calls = _calls(parse_qs(request.url.query))
        for key, seconds in calls:
            await queue.using(name).adispatch(key, seconds)
        return HTMLResponse(PAGE)

    async def dispatch_on_the_loop(request: Request) -> Response:
        # What adispatch exists to avoid: a blocking write inside an async view.
        _dispatch(queue, parse_qs(request.url.query))
        return HTMLResponse(PAGE)

    async def data(request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    app = Starlette(
        routes=[
            # First, so that every side-by-side path costs the router the same.
            Route("/p/{variant}", page),
            Route("/page", page),
            Route("/dispatch", dispatch),
            Route("/defer", defer),
            Route("/adefer", adefer),
            Route("/adispatch", adispatch),
            Route("/blocking-dispatch", dispatch_on_the_loop),
            Route("/json", data),
            Route("/health", health),
        ]
    )
    if os.environ.get("RR_BARE") == "1":
        return app
    if os.environ.get("RR_BARE") == "noop":
        return _PassThroughASGI(app)
    if os.environ.get("RR_BARE") == "paths":
        return _side_by_side_asgi(app, queue)
    return ASGIMiddleware(app, queue, **_options())


def make_wsgi() -> Any:
    """A plain WSGI site wrapped in :class:`WSGIMiddleware` (unless ``RR_BARE=1``)."""
    queue = _queue()

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/dispatch":
            _dispatch(queue, parse_qs(environ.get("QUERY_STRING", "")))
            return _generated(start_response)
        if path == "/defer":
            _defer(queue, parse_qs(environ.get("QUERY_STRING", "")))
            return _generated(start_response)
        if path == "/json":
            body = b'{"ok": true}'
            start_response(
                "200 OK",
                [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
            )
            return [body]
        if path == "/health":
            start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
            return [b"ok"]
        start_response(
            "200 OK", [("Content-Type", "text/html"), ("Content-Length", str(len(PAGE)))]
        )
        return [PAGE]

    if os.environ.get("RR_BARE") == "1":
        return app
    if os.environ.get("RR_BARE") == "noop":
        return _PassThroughWSGI(app)
    if os.environ.get("RR_BARE") == "paths":
        return _side_by_side_wsgi(app, queue)
    return WSGIMiddleware(app, queue, **_options())


def _generated(start_response: Any) -> Iterable[bytes]:
    # No Content-Length, body from a generator: without the middleware's fix-up, waitress and
    # wsgiref would only finish this response when close() returns.
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
    yield PAGE[:40]
    yield PAGE[40:]


class _PassThroughASGI:
    """The least an ASGI middleware can be: what any wrapping costs, for the benchmark."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


class _PassThroughWSGI:
    """The least a WSGI middleware can be."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        return self.app(environ, start_response)  # type: ignore[no-any-return]


SIDE_BY_SIDE = {
    "/p/bare": None,
    "/p/bare-again": None,
    "/p/do-nothing": "noop",
    "/p/rate-0.01": 0.01,
    "/p/rate-1": 1.0,
}
"""The paths of ``RR_BARE=paths``: how each wraps the page (None: not at all; "noop": in a
do-nothing middleware; a number: in reqrunner's at that run_rate). One process serving them all
takes away what tells two processes apart (where their memory landed), which can be more than
the middleware costs."""


def _side_by_side(app: Any, queue: reqrunner.JobQueue, middleware: Any, do_nothing: Any) -> Any:
    apps: dict[str, Any] = {}
    due = RunPolicy(queue)
    for path, how in SIDE_BY_SIDE.items():
        if how is None:
            apps[path] = app
        elif how == "noop":
            apps[path] = do_nothing(app)
        else:
            apps[path] = middleware(app, queue, **{**_options(), "run_rate": how})
            # One site, one "are jobs due" cache: its refresh, once a second, is spread over
            # every wrapped page view of the process, not over one path's share of them.
            apps[path].core.policy = due
    return apps


class _Spent:
    """Requests and nanoseconds each side-by-side path took, shown and reset by ``/p-spent``
    (JSON: path -> [requests, ns until the response was out, ns of the whole app call])."""

    def __init__(self) -> None:
        self.tally: dict[str, list[int]] = {path: [0, 0, 0] for path in SIDE_BY_SIDE}

    def add(self, path: str, out: int, whole: int) -> None:
        tally = self.tally[path]
        tally[0] += 1
        tally[1] += out
        tally[2] += whole

    def take(self) -> dict[str, list[int]]:
        taken, self.tally = self.tally, {path: [0, 0, 0] for path in SIDE_BY_SIDE}
        return taken


def _side_by_side_asgi(app: Any, queue: reqrunner.JobQueue) -> Any:
    paths = _side_by_side(app, queue, ASGIMiddleware, _PassThroughASGI)
    spent = _Spent()

    async def side_by_side(scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path")
        target = paths.get(path)
        if target is None:
            if path == "/p-spent":
                await JSONResponse(spent.take())(scope, receive, send)
                return
            await app(scope, receive, send)
            return
        # Until the response is out nothing waits (the sends go to the transport's buffer),
        # so that time is the time the request ran. What the call awaits after it, once a
        # second the due check's hop to a worker thread, is wall time: the loop serves other
        # requests meanwhile.
        out = 0

        async def sending(message: Any) -> None:
            nonlocal out
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                out = time.perf_counter_ns()

        start = time.perf_counter_ns()
        await target(scope, receive, sending)
        end = time.perf_counter_ns()
        spent.add(path, (out or end) - start, end - start)

    return side_by_side


def _side_by_side_wsgi(app: Any, queue: reqrunner.JobQueue) -> Any:
    paths = _side_by_side(app, queue, WSGIMiddleware, _PassThroughWSGI)
    spent = _Spent()

    def side_by_side(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = environ.get("PATH_INFO")
        target = paths.get(path)
        if target is None:
            if path == "/p-spent":
                body = json.dumps(spent.take()).encode()
                start_response("200 OK", [("Content-Type", "application/json")])
                return [body]
            return app(environ, start_response)  # type: ignore[no-any-return]
        # The middleware's work on a page that does not trigger is all in this call.
        start = time.perf_counter_ns()
        result = target(environ, start_response)
        spent.add(path, *[time.perf_counter_ns() - start] * 2)
        return result  # type: ignore[no-any-return]

    return side_by_side


def asgi_app() -> Any:
    """Factory for ``uvicorn --factory``."""
    return make_asgi()


def wsgi_app() -> Any:
    """Factory for gunicorn (``sites:wsgi_app()``) and ``waitress-serve --call``."""
    return make_wsgi()
