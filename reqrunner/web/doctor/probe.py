"""``{path}/doctor``: what the site's own process knows about itself, for ``reqrunner doctor``.

Doctor may run in another process or on another machine, so the facts that only the serving
process has (which server it is, the mode ``auto`` picks there, whether an ``Authorization``
header reached the app, its memory limit) are asked of the site over HTTP, with a token signed
with the site's secret. Without a valid token the route answers 403 like the run endpoint.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from ... import memory
from ..http import Request, Response
from ..policy import ServerKind

if TYPE_CHECKING:
    from ..core import MiddlewareCore

__all__ = ["AUTH_MARK", "answer", "facts"]
AUTH_MARK = "Basic cmVxcnVubmVyLWRvY3RvcjpwYXNzZXMtYXV0aA=="
"""The ``Authorization`` doctor sends (``reqrunner-doctor:passes-auth``), to see whether the
server hands such headers to the app; never a real credential."""


def facts(core: MiddlewareCore, request: Request) -> dict[str, Any]:
    """The serving process's view of itself."""
    server = request.server
    kind = ServerKind(
        protocol="asgi" if server.get("protocol") == "asgi" else "wsgi",
        run_once=bool(server.get("run_once")),
    )
    limits = core.options.limits
    return {
        "protocol": kind.protocol,
        "run_once": kind.run_once,
        "software": str(server.get("software", "")),
        "gateway": str(server.get("gateway", "")),
        "mode": core.options.mode,
        "concrete_mode": core.concrete_mode(kind),
        "authorization": request.headers.get("authorization") == AUTH_MARK,
        "authorization_seen": "authorization" in request.headers,
        "memory_limits": memory.limits_by_source(),
        "memory_limit": memory.effective_limit(),
        "rss": memory.rss(),
        "max_memory_percent": limits.memory_percent,
        "max_memory_bytes": limits.memory_bytes,
        "max_time": limits.max_time,
        "pid": os.getpid(),
        "admin": core.options.admin is not None,
    }


def answer(core: MiddlewareCore, request: Request) -> Response:
    """The JSON answer of ``{path}/doctor`` (the token is checked by the router)."""
    body = json.dumps(facts(core, request)).encode()
    return Response(
        status=200,
        body=body,
        headers=(
            ("content-type", "application/json"),
            ("content-length", str(len(body))),
            ("cache-control", "no-store"),
        ),
    )
