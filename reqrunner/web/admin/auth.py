"""Who may see the Queue Manager: HTTP Basic credentials, or a check of the site's own.

The admin is off unless one of these is configured. A :class:`BasicAuth` refusal is a ``401``
with a challenge, so a browser asks for the password; a refusal by a callable check is a ``403``,
because the site decides there how its users log in (a session cookie, a header set by a proxy,
an address) and a password prompt would be the wrong answer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging

from ..http import AdminAccess, Request

__all__ = ["AdminAccess", "BasicAuth", "allows"]

logger = logging.getLogger("reqrunner.admin")


def _digest(text: str) -> bytes:
    # Comparing fixed-length digests keeps the comparison's time independent of how long either
    # the guess or the real value is.
    return hashlib.sha256(text.encode("utf-8")).digest()


class BasicAuth:
    """Allow requests that carry this user name and password (HTTP Basic, RFC 7617).

    ``ASGIMiddleware(app, queue, admin=BasicAuth("admin", "correct horse"))``. Basic
    credentials travel in clear text on plain HTTP: serve the admin over HTTPS.
    """

    __slots__ = ("_password", "_username", "realm")

    def __init__(self, username: str, password: str, *, realm: str = "reqrunner") -> None:
        for what, value in (("username", username), ("password", password), ("realm", realm)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"BasicAuth needs a non-empty {what} string")
        if ":" in username:
            raise ValueError("a Basic auth user name cannot contain ':' (RFC 7617)")
        if any(c in realm for c in '"\\\r\n'):
            raise ValueError(
                f"realm={realm!r}: quotes, backslashes and line breaks are not allowed"
            )
        self._username = _digest(username)
        self._password = _digest(password)
        self.realm = realm

    def __repr__(self) -> str:
        return f"BasicAuth(realm={self.realm!r})"

    @property
    def challenge(self) -> str:
        """The ``WWW-Authenticate`` value sent with a ``401``."""
        return f'Basic realm="{self.realm}", charset="UTF-8"'

    def __call__(self, request: Request) -> bool:
        """Whether ``request`` carries the right credentials."""
        scheme, _, encoded = request.headers.get("authorization", "").strip().partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except ValueError:
            # binascii.Error, UnicodeDecodeError, and the ValueError of non-ASCII text: all
            # just wrong credentials, refused without a word in the log.
            return False
        username, sep, password = decoded.partition(":")
        if not sep:
            return False
        # Both comparisons always run, so a wrong user name and a wrong password take as long.
        user_ok = hmac.compare_digest(_digest(username), self._username)
        password_ok = hmac.compare_digest(_digest(password), self._password)
        return user_ok and password_ok


def allows(access: AdminAccess, request: Request) -> bool:
    """Ask ``access`` about ``request``; only a literal ``True`` allows.

    A check that raises, or returns anything else (a truthy string, a response object), refuses:
    a mistake in the site's check must close the admin, not open it.
    """
    try:
        return access(request) is True
    except Exception:
        logger.exception("reqrunner's admin access check raised; refusing the request")
        return False
