"""reqrunner's own routes below ``{path}``, framework-neutral.

``{path}/run`` takes a signed POST, answers ``202`` at once and runs a bounded batch after its own
response; ``{path}/tick?token=…`` does the same for a long-lived signed URL that an uptime
monitor or a remote cron can fetch when a quiet site has no visitors. ``{path}/trigger.js`` is
the script ``js`` mode injects; ``{path}/doctor`` (signed) tells ``reqrunner doctor`` what the
serving process knows of itself. ``{path}/admin…`` goes to the admin handler when one is
configured. Anything else is a plain 404, and refusals say nothing about why: a caller without
the secret learns nothing from probing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..errors import StoreError
from .http import Request, Response
from .signing import Signer
from .trigger import SCRIPT

__all__ = ["RUN_PURPOSE", "TICK_PURPOSE", "VIA", "Handler", "Router"]

Handler = Callable[[Request], Response]
"""A route: takes the whole request, returns the whole response (blocking; run off any loop)."""

RUN_PURPOSE = "run"
"""The signing purpose of tokens accepted by ``{path}/run``."""

TICK_PURPOSE = "tick"
"""The signing purpose of the long-lived tokens in ``{path}/tick`` URLs."""

DOCTOR_PURPOSE = "doctor"
"""The signing purpose of the tokens ``{path}/doctor`` (what ``reqrunner doctor`` asks) takes."""
VIA = ("async", "js")
"""What a POST to ``{path}/run`` may say it is (the self-request, the page's script), for the
trigger-health records; anything else is recorded as ``endpoint`` (e.g. ``reqrunner ping``)."""

logger = logging.getLogger("reqrunner")

_TEXT = (("content-type", "text/plain; charset=utf-8"), ("cache-control", "no-store"))


def _plain(status: int, text: str, *extra: tuple[str, str]) -> Response:
    body = text.encode()
    return Response(
        status=status, body=body, headers=(*_TEXT, ("content-length", str(len(body))), *extra)
    )


class Router:
    """Dispatch a :class:`Request` for a path below reqrunner's mount point.

    ``signer`` is called for the signer when a token must be checked (the secret may come from the
    database, so it is fetched lazily). ``run`` is the bounded run promised by a ``202``, to be
    done after the response; it is told which trigger asked (:data:`VIA`).
    ``use_once(nonce, until)`` records a ``{path}/run`` token's nonce and says whether it was
    new, so that a token is taken once (a tick URL is fetched again and again by design).
    ``admin`` handles ``/admin`` and everything below it; without one those paths are 404 like
    any other unknown path.
    """

    def __init__(
        self,
        *,
        signer: Callable[[], Signer],
        run: Callable[[str], None],
        use_once: Callable[[str, float], bool],
        admin: Handler | None = None,
        probe: Handler | None = None,
    ) -> None:
        self._signer = signer
        self._run = run
        self._use_once = use_once
        self._admin = admin
        self._probe = probe

    def __call__(self, request: Request) -> Response:
        """Answer ``request``; never raises for anything a client can send."""
        path = request.path
        if path == "/run":
            return self._run_endpoint(request)
        if path == "/tick":
            return self._tick(request)
        if path == "/trigger.js":
            return self._script(request)
        if path == "/doctor" and self._probe is not None:
            return self._doctor(request, self._probe)
        if self._admin is not None and (path == "/admin" or path.startswith("/admin/")):
            return self._admin(request)
        return _plain(404, "Not Found")

    def _run_endpoint(self, request: Request) -> Response:
        if request.method != "POST":
            return _plain(405, "Method Not Allowed", ("allow", "POST"))
        form = request.form()
        via = form.get("via", "")
        return self._accept(form.get("token", ""), RUN_PURPOSE, via if via in VIA else "endpoint")

    def _tick(self, request: Request) -> Response:
        """A quiet site's clock: an uptime monitor or a remote cron GETs the signed URL (the
        token is in the query string, since such tools can only fetch a URL)."""
        if request.method not in ("GET", "HEAD", "POST"):
            return _plain(405, "Method Not Allowed", ("allow", "GET, HEAD, POST"))
        return self._accept(request.query.get("token", ""), TICK_PURPOSE, "tick")

    def _doctor(self, request: Request, probe: Handler) -> Response:
        """What the serving process knows of itself, for ``reqrunner doctor`` (signed GET)."""
        if request.method != "GET":
            return _plain(405, "Method Not Allowed", ("allow", "GET"))
        token = request.query.get("token", "")
        if not token or not self._signer().verify(token, DOCTOR_PURPOSE):
            return _plain(403, "Forbidden")
        return probe(request)

    def _accept(self, token: str, purpose: str, via: str) -> Response:
        try:
            signed = self._signer().check(token, purpose) if token else None
            if signed is None or (
                purpose == RUN_PURPOSE and not self._use_once(signed.nonce, signed.expires)
            ):
                return _plain(403, "Forbidden")
        except StoreError as exc:
            logger.warning("reqrunner could not check a run token: %s", exc)
            return _plain(503, "Service Unavailable", ("retry-after", "5"))
        return Response(
            status=202,
            body=b"Accepted",
            headers=(*_TEXT, ("content-length", "8")),
            after=lambda: self._run(via),
        )

    def _script(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return _plain(405, "Method Not Allowed", ("allow", "GET, HEAD"))
        return Response(
            status=200,
            body=SCRIPT,
            headers=(
                ("content-type", "text/javascript; charset=utf-8"),
                ("content-length", str(len(SCRIPT))),
                ("cache-control", "public, max-age=86400"),
            ),
        )
