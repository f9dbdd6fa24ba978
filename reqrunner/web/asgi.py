"""The ASGI adapter: translates between ASGI messages and :mod:`reqrunner.web.core`.

The run happens in the same ASGI call, after the final ``http.response.body`` has been passed on,
awaited in a worker thread (``anyio.to_thread``). Measured on uvicorn, hypercorn, granian and
gunicorn's asgi worker, this costs the visitor nothing, keeps the event loop and keep-alive
connection free, and graceful shutdown waits for it; a blocking call on the loop would stall every
client, and a detached task is lost at shutdown (docs/after-response.md has the measurements).
Every database call the middleware makes goes through a worker thread too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Iterator, Mapping

import anyio.to_thread
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..deferred import CURRENT, Deferred, Pair
from .background import call_safely
from .base import Middleware
from .core import MAX_ROUTE_BODY, PASS, MiddlewareCore, Origin, Plan, logger
from .http import Request, fold
from .policy import PageView, ServerKind
from .trigger import Injector, own_address

# ASGIApp and the rest are starlette's names for the ASGI 3 types, offered here for the sites
# that type their apps against this module.
__all__ = ["ASGIApp", "ASGIMiddleware", "Receive", "Scope", "Send"]

_SERVER = ServerKind(protocol="asgi")
_PATHSEND_SERVER = ServerKind(protocol="asgi", pathsend=True)


def _decoded(raw: Iterable[tuple[bytes, bytes]]) -> Iterator[tuple[str, str]]:
    # What a page view's headers need on the hot path. starlette's Headers does not fit there:
    # its get() answers the first of a repeated header where the rule and the checks must read
    # them whole (a Cache-Control sent twice), and decoding through it costs a quarter more.
    for name, value in raw:
        yield name.decode("latin-1"), value.decode("latin-1")


def _origin(scope: Scope, headers: Mapping[str, str]) -> Origin:
    listening = scope.get("server") or (None, None)
    server = own_address(listening[0], listening[1])
    return Origin(
        scheme=scope.get("scheme", "http"),
        host=headers.get("host") or server or "",
        root_path=scope.get("root_path", ""),
        server=server,
    )


class ASGIMiddleware(Middleware[ASGIApp]):
    """Run due jobs after some of an ASGI app's HTML responses.

    ``app = ASGIMiddleware(app, queue, run_rate=0.01)``, or with Starlette
    ``app.add_middleware(ASGIMiddleware, queue=queue, run_rate=0.01)``. The options are
    described at :class:`~reqrunner.web.base.Middleware`; ``mode="auto"`` means ``sync``.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # A substring test first: one C call rules out almost every path.
        if self.path in scope["path"]:
            sub = self.core.own_subpath(scope["path"], scope.get("root_path", ""))
            if sub is not None:
                await self._route(scope, receive, send, sub)
                return
        # Whatever the die says, the request's after_response jobs are collected while the
        # app answers, and run once it has (the last body message is out when it returns).
        jobs: list[Pair] = []
        CURRENT.set(jobs)
        # The common case: the die did not pass, and the app gets the server's own receive
        # and send (a C call and a comparison, no Python frame).
        if self.die() >= self.run_rate:
            await self.app(scope, receive, send)
            if jobs:
                await anyio.to_thread.run_sync(self.core.finish, Deferred(jobs), PASS, None)
            return
        core = self.core
        exchange = _Exchange(core, scope, send)
        await self.app(scope, receive, exchange.send)
        plan = exchange.plan if exchange.complete and exchange.origin else PASS
        if jobs or plan.action == "run_after":
            await anyio.to_thread.run_sync(core.finish, Deferred(jobs), plan, exchange.origin)

    async def _route(self, scope: Scope, receive: Receive, send: Send, sub: str) -> None:
        body = b""
        more = True
        while more and len(body) <= MAX_ROUTE_BODY:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = Headers(scope=scope)
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
            server={"protocol": "asgi", "run_once": False, "software": "", "gateway": ""},
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
            await anyio.to_thread.run_sync(call_safely, response.after)


class _Exchange:
    """One page view that rolled the die: asks the core what to do at the response's start,
    then follows its body, adding the script if the plan says so."""

    __slots__ = ("_core", "_injector", "_scope", "_send", "complete", "origin", "plan")

    def __init__(self, core: MiddlewareCore, scope: Scope, send: Send) -> None:
        self._core, self._scope, self._send = core, scope, send
        self._injector: Injector | None = None
        self.plan: Plan = PASS
        self.origin: Origin | None = None
        self.complete = False
        """Whether the last body byte of a response the plan touches has been passed on."""

    def send(self, message: Message) -> Awaitable[None]:
        # A plain function that hands back the server's own awaitable: on a page that passes
        # (almost every page), no coroutine of ours is made for each message.
        kind = message["type"]
        if kind == "http.response.start":
            # With nothing due (the cached answer) every plan is "pass": the page is not read.
            if not self._core.policy.nothing_due():
                return self._send_start(message)
        elif kind == "http.response.body" and self.plan.action != "pass" and not self.complete:
            more = message.get("more_body", False)
            if self._injector is not None:
                body = self._injector.feed(message.get("body", b""))
                if not more:
                    body += self._injector.finish()
                message = {**message, "body": body}
            self.complete = not more
        return self._send(message)

    async def _send_start(self, message: Message) -> None:
        try:
            message = await self._start(message)
        except Exception:
            logger.exception("reqrunner failed while inspecting a response; passing it on")
            self.plan, self._injector = PASS, None
        await self._send(message)

    async def _start(self, message: Message) -> Message:
        scope, core = self._scope, self._core
        request_headers = fold(_decoded(scope.get("headers", [])))
        view = PageView(
            method=scope["method"].upper(),
            path=scope["path"],
            request_headers=request_headers,
            status=message["status"],
            response_headers=fold(_decoded(message.get("headers", []))),
        )
        extensions = scope.get("extensions") or {}
        server = _PATHSEND_SERVER if "http.response.pathsend" in extensions else _SERVER
        origin = _origin(scope, request_headers)
        plan = core.decide(view, server, origin)
        if plan.action == "ask":
            plan = await anyio.to_thread.run_sync(core.settle, view, server, origin)
        self.plan, self.origin = plan, origin
        if plan.action != "inject":
            return message
        # A copy: the app may reuse its header list for other responses.
        headers = MutableHeaders(raw=list(message.get("headers", [])))
        length = headers.get("content-length")
        if length is not None:
            headers["content-length"] = str(int(length) + len(plan.tag))
        self._injector = Injector(plan.tag)
        return {**message, "headers": headers.raw}
