"""Would a page's Content Security Policy let the ``js`` trigger work?

The trigger is a same-origin script (``{path}/trigger.js``) that POSTs with ``fetch()`` to
``{path}/run``: it needs ``script-src`` (or ``default-src``) to admit ``'self'``, the site's
origin or the page's nonce (which the injected tag reuses), and ``connect-src`` (or
``default-src``) to admit the run URL. Every policy a page sends must allow it.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

__all__ = ["blocked_by"]


def _directives(policy: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            # The first of a repeated directive counts, as browsers read it.
            found.setdefault(words[0].lower(), [w for w in words[1:]])
    return found


def _admits(sources: list[str], origin: str, *, nonce_ok: bool) -> bool:
    lowered = [s.lower() for s in sources]
    if "'none'" in lowered and len(lowered) == 1:
        return False
    if "*" in lowered or "'self'" in lowered:
        return True
    if nonce_ok and any(s.startswith("'nonce-") for s in lowered):
        return True
    scheme = urlsplit(origin).scheme
    bare = origin.split("://", 1)[-1]
    return any(s.rstrip("/") in (origin, bare, f"{scheme}:") for s in lowered)


def blocked_by(policies: Sequence[str], origin: str) -> str | None:
    """The directive that would stop the trigger under ``policies`` (the page's
    ``Content-Security-Policy`` headers), or ``None`` if none would. ``origin`` is where the
    script and the run URL live, e.g. ``"https://example.org"``."""
    for policy in policies:
        directives = _directives(policy)
        default = directives.get("default-src")
        script = directives.get("script-src-elem", directives.get("script-src", default))
        if script is not None and not _admits(script, origin, nonce_ok=True):
            name = next(
                (n for n in ("script-src-elem", "script-src") if n in directives), "default-src"
            )
            return f"{name} {' '.join(script)}".strip()
        connect = directives.get("connect-src", default)
        if connect is not None and not _admits(connect, origin, nonce_ok=False):
            name = "connect-src" if "connect-src" in directives else "default-src"
            return f"{name} {' '.join(connect)}".strip()
    return None
