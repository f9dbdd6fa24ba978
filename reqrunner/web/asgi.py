"""The ASGI adapter: translates between ASGI messages and :mod:`reqrunner.middleware`.

The run happens in the same ASGI call, after the final ``http.response.body`` has been passed on,
awaited in a worker thread (``anyio.to_thread``). Measured on uvicorn, hypercorn, granian and
gunicorn's asgi worker, this costs the visitor nothing, keeps the event loop and keep-alive
connection free, and graceful shutdown waits for it; a blocking call on the loop would stall every
client, and a detached task is lost at shutdown (shared/reference/after-response.md). Every
database call the middleware makes goes through a worker thread too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from .admin import AdminAccess
from .core import MAX_ROUTE_BODY, Concrete, MiddlewareCore, Origin, Qualify, logger
from .http import Request
from .policy import Mode, PageView, ServerKind
from .trigger import Injector, can_inject

if TYPE_CHECKING:
    from ..queue import JobQueue

__all__ = ["ASGIApp", "ASGIMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
"""Any ASGI 3 application."""


def _headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in raw:
        key, text = name.decode("latin-1").lower(), value.decode("latin-1")
        out[key] = f"{out[key]}, {text}" if key in out else text
    return out


def _origin(scope: Scope, headers: dict[str, str]) -> Origin:
    host = headers.get("host")
    if not host:
        server = scope.get("server") or ("127.0.0.1", 80)
        host = f"{server[0]}:{server[1]}"
    return Origin(
        scheme=scope.get("scheme", "http"), host=host, root_path=scope.get("root_path", "")
    )


class ASGIMiddleware:
    """Run due jobs after some of an ASGI app's HTML responses (DESIGN §4).

    ``app = ASGIMiddleware(app, queue, run_rate=0.01)``, or with Starlette
    ``app.add_middleware(ASGIMiddleware, queue=queue, run_rate=0.01)``.

    Options (keyword-only):

    - ``run_rate``: share of qualifying page views (0…1) that start a run when jobs are due
      (MediaWiki's ``$wgJobRunRate``); 0 turns in-request running off.
    - ``mode``: ``"sync"`` (run in this process after the response), ``"async"`` (signed
      self-request to ``{path}/run``, in-process if that fails), ``"js"`` (the visitor's browser
      makes that request from an injected script) or ``"auto"`` (``sync`` here; see
      :func:`reqrunner.policy.resolve_auto`).
    - ``max_jobs``, ``max_time`` (seconds), ``max_memory`` (percent or ``"128M"``): bounds of one
      run (PKP's ``job_runner_max_*``).
    - ``max_concurrent_runs``: in-request runs at once across all processes of the site.
    - ``path``: mount point of reqrunner's own routes (``{path}/run``, ``{path}/admin``).
    - ``self_url``: base URL for the self-request when the request's own scheme and host are not
      reachable from the server (proxies, TLS terminators).
    - ``secret``: signing key; default ``REQRUNNER_SECRET``, else one stored in the database.
    - ``qualify``: replaces the rule deciding which page views may trigger
      (:func:`reqrunner.policy.default_qualify`).
    - ``admin``: who may use the Queue Manager at ``{path}/admin``:
      :class:`~reqrunner.BasicAuth`, or a callable taking the :class:`~reqrunner.http.Request`
      and returning ``True`` to allow; ``None`` (the default) answers those paths with 404.
    """

    def __init__(
        self,
        app: ASGIApp,
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
        self.mode: Concrete = self.core.concrete_mode(ServerKind(protocol="asgi"))

    def tick_url(self, base_url: str) -> str:
        """The signed URL that makes this site run a bounded batch of due jobs when fetched:
        give it to an uptime monitor or a remote cron so that a site without visitors still
        runs its jobs. ``base_url`` is the site's public address (``"https://example.org"``,
        with the app's mount point if it has one); the URL is valid for a year."""
        return self.core.tick_url(base_url)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sub = self.core.own_subpath(scope["path"], scope.get("root_path", ""))
        if sub is not None:
            await self._route(scope, receive, send, sub)
            return
        if not self.core.policy.roll():
            await self.app(scope, receive, send)
            return
        exchange = _Exchange(self.core, self.mode, scope, send)
        await self.app(scope, receive, exchange.send)
        if exchange.triggered and exchange.origin is not None:
            await anyio.to_thread.run_sync(self.core.after_response, self.mode, exchange.origin)

    async def _route(self, scope: Scope, receive: Receive, send: Send, sub: str) -> None:
        body = b""
        more = True
        while more and len(body) <= MAX_ROUTE_BODY:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = _headers(scope.get("headers", []))
        origin = _origin(scope, headers)
        client = scope.get("client")
        request = Request(
            method=scope["method"].upper(),
            path=sub or "/",
            query_string=scope.get("query_string", b"").decode("latin-1"),
            headers=headers,
            body=body[:MAX_ROUTE_BODY],
            client=client[0] if client else None,
            scheme=origin.scheme,
            host=origin.host,
            root_path=origin.root_path + self.core.path,
        )
        response = await anyio.to_thread.run_sync(self.core.route, request)
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [
                    (k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers
                ],
            }
        )
        await send({"type": "http.response.body", "body": response.body})
        if response.after is not None:
            await anyio.to_thread.run_sync(self.core.call_safely, response.after)


class _Exchange:
    """One page view that rolled the die: watches its response, injects if ``js``."""

    __slots__ = (
        "_core",
        "_injector",
        "_mode",
        "_scope",
        "_send",
        "_watching",
        "origin",
        "triggered",
    )

    def __init__(self, core: MiddlewareCore, mode: Concrete, scope: Scope, send: Send) -> None:
        self._core, self._mode, self._scope, self._send = core, mode, scope, send
        self._injector: Injector | None = None
        self._watching = False
        self.triggered = False
        self.origin: Origin | None = None

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            try:
                message = await self._start(message)
            except Exception:
                logger.exception("reqrunner failed while inspecting a response; passing it on")
                self._watching = False
                self._injector = None
        elif kind == "http.response.body" and self._watching:
            more = message.get("more_body", False)
            if self._injector is not None:
                body = self._injector.feed(message.get("body", b""))
                if not more:
                    body += self._injector.finish()
                message = {**message, "body": body}
            if not more:
                self._watching = False
                self.triggered = self._mode != "js"
        await self._send(message)

    async def _start(self, message: Message) -> Message:
        scope, core = self._scope, self._core
        request_headers = _headers(scope.get("headers", []))
        response_headers = _headers(message.get("headers", []))
        view = PageView(
            method=scope["method"].upper(),
            path=scope["path"],
            request_headers=request_headers,
            status=message["status"],
            response_headers=response_headers,
        )
        if not core.qualifies(view):
            return message
        self.origin = _origin(scope, request_headers)
        if self._mode != "js":
            self._watching = True
            return message
        if not can_inject(view.status, response_headers) or "http.response.pathsend" in scope.get(
            "extensions", {}
        ):
            return message
        if core.policy.cached_due() is not None and core.signer_ready:
            tag = core.injection_tag(view, self.origin)
        else:
            tag = await anyio.to_thread.run_sync(core.injection_tag, view, self.origin)
        if tag is None:
            return message
        headers = []
        for name, value in message.get("headers", []):
            if name.lower() == b"content-length":
                headers.append((name, str(int(value) + len(tag)).encode("latin-1")))
            else:
                headers.append((name, value))
        self._injector = Injector(tag)
        self._watching = True
        return {**message, "headers": headers}
