"""The ways a run is started somewhere else: the self-request and the injected script.

``async`` mode POSTs a signed token to the site's own ``{path}/run`` (MediaWiki's
``Special:RunJobs``); a :class:`CircuitBreaker` remembers a failing self-request for a while so
later page views don't pay its timeout again. ``js`` mode adds a ``<script>`` tag to an HTML page
so that the visitor's browser makes that POST (Craft's way); :class:`Injector` does that to a
body that may arrive in many chunks, holding back only what follows the last ``</body>`` seen.
"""

from __future__ import annotations

import html
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping

import httpx

__all__ = [
    "SCRIPT",
    "CircuitBreaker",
    "Injector",
    "can_inject",
    "own_address",
    "post_run",
    "run_url",
    "script_tag",
]

logger = logging.getLogger("reqrunner.trigger")

CONNECT_TIMEOUT = 0.1
"""Seconds to connect to the site itself: it is the same machine or one hop away."""
RESPONSE_TIMEOUT = 2.0
"""Seconds to wait for the ``202`` status line."""
BREAKER_SECONDS = 300.0
"""How long a failed self-request sends runs in-process before trying again."""
MAX_INJECT_BYTES = 1 << 20
"""Pages larger than this (by ``Content-Length``) get no script: buffering or rescanning them
would cost more than the run is worth, and the next small page will do."""

_CLOSE_BODY = re.compile(rb"</body\s*>", re.IGNORECASE)
# The longest prefix of "</body>" a chunk can end with, so a tag split over chunks is found.
_TAIL = len(b"</body>") - 1
_NONCE = re.compile(r"'nonce-([A-Za-z0-9+/=_-]+)'")

SCRIPT = b"""\
(function () {
  var s = document.currentScript;
  if (!s || !window.fetch) return;
  var body = new URLSearchParams({ token: s.dataset.token, via: "js" });
  fetch(s.dataset.url, { method: "POST", body: body, keepalive: true, credentials: "omit",
                         cache: "no-store" }).catch(function () {});
})();
"""
"""The trigger script, served same-origin at ``{path}/trigger.js`` so that a Content Security
Policy allowing ``'self'`` scripts admits it; the token rides in a ``data-`` attribute."""


def own_address(host: str | None, port: object) -> str | None:
    """``host:port`` at which this server reaches itself, from the address it listens on (ASGI
    ``scope["server"]``, WSGI ``SERVER_NAME`` and ``SERVER_PORT``); None when there is none
    (a Unix socket). A wildcard bind address means this machine: its loopback."""
    if not host or port is None or str(port) == "":
        return None
    if host == "0.0.0.0":
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


def run_url(
    *, self_url: str | None, scheme: str, server: str | None, root_path: str, path: str
) -> str | None:
    """The URL of ``{path}/run``: below ``self_url`` if given, else at the server's own address
    (``server``, see :func:`own_address`); None when neither is known.

    Never from the request's ``Host`` header: a visitor chooses that, and the self-request
    carries a signed token that must go nowhere but to this site. ``X-Forwarded-*`` headers
    are not read either. A site whose server cannot be reached at its own listening address
    (TLS terminated by the app server itself, a Unix socket, a path prefix added by a proxy)
    sets ``self_url``.
    """
    if self_url is not None:
        return self_url.rstrip("/") + path + "/run"
    if server is None:
        return None
    return f"{scheme}://{server}{root_path}{path}/run"


def post_run(url: str, token: str, *, client: httpx.Client) -> str | None:
    """POST the token to the run endpoint; ``None`` on ``202``, else why it failed (blocking)."""
    timeout = httpx.Timeout(RESPONSE_TIMEOUT, connect=CONNECT_TIMEOUT)
    try:
        response = client.post(url, data={"token": token, "via": "async"}, timeout=timeout)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc or 'no detail'}"
    if response.status_code != 202:
        return f"answered {response.status_code}, not 202"
    return None


class CircuitBreaker:
    """Remember a failed self-request for ``seconds`` so the next page views run in-process."""

    def __init__(
        self, *, seconds: float = BREAKER_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.seconds = seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._open_until = 0.0
        self.last_error: str | None = None

    @property
    def is_open(self) -> bool:
        """Whether self-requests are skipped right now."""
        with self._lock:
            return self._clock() < self._open_until

    def failed(self, url: str, error: str) -> bool:
        """Open the breaker; returns whether it was closed before (so the caller logs once)."""
        with self._lock:
            was_closed = self._clock() >= self._open_until
            self._open_until = self._clock() + self.seconds
            self.last_error = error
        if was_closed:
            logger.warning(
                "reqrunner's self-request to %s failed (%s); running jobs in-process instead "
                "for the next %.0f s",
                url,
                error,
                self.seconds,
            )
        return was_closed

    def succeeded(self) -> None:
        """Close the breaker after a self-request got its ``202``."""
        with self._lock:
            self._open_until = 0.0
            self.last_error = None


def _is_public(cache_control: str) -> bool:
    directives = {d.strip().split("=")[0].lower() for d in cache_control.split(",")}
    return bool(directives & {"public", "s-maxage"})


def can_inject(status: int, headers: Mapping[str, str]) -> bool:
    """Whether a script may be added to this response (headers lower-cased).

    Not into encoded (compressed) bodies, shared-cacheable pages (every visitor of a cached copy
    would replay one token), bodiless statuses, non-HTML or oversized pages.
    """
    if status in (204, 304) or status < 200:
        return False
    media = headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in ("text/html", "application/xhtml+xml"):
        return False
    if headers.get("content-encoding", "identity").lower() != "identity":
        return False
    if _is_public(headers.get("cache-control", "")):
        return False
    length = headers.get("content-length")
    return length is None or (length.isdigit() and int(length) <= MAX_INJECT_BYTES)


def script_tag(*, src: str, url: str, token: str, csp: str = "") -> bytes:
    """The ``<script>`` element to inject; reuses a nonce from the page's own CSP header."""
    match = _NONCE.search(csp)
    nonce = f' nonce="{html.escape(match.group(1))}"' if match else ""
    return (
        f'<script src="{html.escape(src)}" data-url="{html.escape(url)}" '
        f'data-token="{html.escape(token)}" async{nonce}></script>'
    ).encode()


class Injector:
    """Insert ``tag`` before the last ``</body>`` of a body fed in chunks.

    Everything before the last ``</body>`` seen so far (less a few bytes that might start one) is
    released at once, so a streamed page is not held back; a page without ``</body>`` gets the tag
    at its end, where browsers still run it. The output is always ``len(tag)`` bytes longer than
    the input, which is what lets the adapters fix ``Content-Length`` before the first byte.
    """

    def __init__(self, tag: bytes) -> None:
        self._tag = tag
        self._held = b""

    def feed(self, chunk: bytes) -> bytes:
        """Take the next chunk; return what can be sent now."""
        data = self._held + chunk
        starts = [m.start() for m in _CLOSE_BODY.finditer(data)]
        # Without a tag, keep only a tail that could be the start of one split across chunks.
        cut = starts[-1] if starts else max(len(data) - _TAIL, 0)
        self._held = data[cut:]
        return data[:cut]

    def finish(self) -> bytes:
        """The rest of the body, with the tag in place."""
        held, self._held = self._held, b""
        if _CLOSE_BODY.match(held):
            return self._tag + held
        return held + self._tag
