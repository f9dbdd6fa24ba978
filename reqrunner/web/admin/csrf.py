"""CSRF protection for the admin's POST actions: a signed double-submit cookie.

The browser sends Basic credentials (or the site's session cookie) with any request to the site,
including one a hostile page makes it send, so authentication alone does not show that a POST
came from the admin's own form. Each browser gets a random cookie; each form carries a token
that is an HMAC of that cookie under the site's secret. A forged form can neither read the
cookie nor compute the token, and a token copied from one browser is useless with another
browser's cookie. The cookie is ``SameSite=Strict`` and ``HttpOnly``; a request whose
``Sec-Fetch-Site`` says it came from another site is refused before the token is looked at.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping

from starlette.requests import cookie_parser

from ..http import Request
from ..signing import Signer

__all__ = ["COOKIE", "FIELD", "Csrf"]

COOKIE = "reqrunner_csrf"
FIELD = "csrf"
PURPOSE = "admin.csrf"
TOKEN_TTL = 12 * 3600.0
"""An admin tab left open overnight needs a reload before its buttons work again."""


def _cookie(request: Request) -> str | None:
    # HTTP/2 may split the cookies over several Cookie headers: read them all.
    cookies = cookie_parser("; ".join(request.headers.getlist("cookie")))
    return cookies.get(COOKIE) or None


class Csrf:
    """Mint and check the tokens of one browser's admin forms.

    ``signer`` is called for the site's signer when one is needed (the secret may be stored in
    the database and is fetched lazily).
    """

    def __init__(self, signer: Callable[[], Signer]) -> None:
        self._signer = signer

    def prepare(self, request: Request, cookie_path: str) -> tuple[str, str | None]:
        """The token for this browser's forms, and a ``Set-Cookie`` value if it has no cookie."""
        cookie = _cookie(request)
        set_cookie = None
        if cookie is None:
            cookie = secrets.token_urlsafe(24)
            secure = "; Secure" if request.scheme == "https" else ""
            set_cookie = f"{COOKIE}={cookie}; Path={cookie_path}; HttpOnly; SameSite=Strict{secure}"
        token = self._signer().sign(PURPOSE, {"cookie": cookie}, ttl=TOKEN_TTL)
        return token, set_cookie

    def check(self, request: Request, form: Mapping[str, str]) -> bool:
        """Whether a POST carries a valid token for its own cookie, from the site itself."""
        # The browser's own word on where the form came from. ``Origin`` is not compared with
        # the host: behind a proxy that rewrites ``Host`` the two differ for genuine forms, and
        # the token already tells a forged form apart.
        if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            return False
        cookie = _cookie(request)
        token = form.get(FIELD, "")
        if cookie is None or not token:
            return False
        return self._signer().verify(token, PURPOSE, {"cookie": cookie})
