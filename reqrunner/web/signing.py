"""Short signed tokens for reqrunner's hidden routes.

A token proves that whoever holds it got it from the site: the self-request of ``async`` mode and
the injected script of ``js`` mode both POST one to ``{path}/run``. It is an HMAC-SHA256 over a
*purpose* (so a token minted for one route is worthless on another), the request's parameters and
an expiry, keyed with the site's secret. Verification recomputes the MAC and compares it in
constant time.

A token is not single-use: within its lifetime it can be replayed. That is harmless here because
all it can do is ask for a bounded run of jobs that are already due, and the run lease caps how
many of those happen at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping

__all__ = ["Signer"]

# Derive the MAC key from the secret instead of using the secret as is, so the same site secret
# can key other things (the admin's CSRF tokens, say) without one MAC being usable as another.
_KEY_LABEL = b"reqrunner.signing.v1"


def _canonical(purpose: str, params: Mapping[str, str], expires: int) -> bytes:
    # Length-prefix every field: with plain separators, ("a=b", "") and ("a", "b=") could be made
    # to collide by a value that contains the separator.
    parts = [purpose, str(expires)]
    for key in sorted(params):
        parts.extend((key, params[key]))
    return b"".join(f"{len(p.encode())}:{p}".encode() for p in parts)


class Signer:
    """Mint and check tokens bound to a purpose, parameters and an expiry.

    >>> signer = Signer("s3cret")
    >>> token = signer.sign("run", ttl=60)
    >>> signer.verify(token, "run")
    True
    >>> signer.verify(token, "tick")
    False
    """

    __slots__ = ("_clock", "_key")

    def __init__(self, secret: str | bytes, *, clock: Callable[[], float] = time.time) -> None:
        if not secret:
            raise ValueError("the signing secret must not be empty")
        raw = secret.encode() if isinstance(secret, str) else secret
        self._key = hmac.new(raw, _KEY_LABEL, hashlib.sha256).digest()
        self._clock = clock

    def _mac(self, purpose: str, params: Mapping[str, str], expires: int) -> str:
        digest = hmac.new(self._key, _canonical(purpose, params, expires), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def sign(self, purpose: str, params: Mapping[str, str] | None = None, *, ttl: float) -> str:
        """Return a token for ``purpose`` and ``params`` that is valid for ``ttl`` seconds.

        The parameters are not carried in the token: the verifier must be given the same ones
        (typically the other fields of the same form), and any change to them invalidates it.
        """
        if not ttl > 0:
            raise ValueError(f"ttl={ttl!r}: a token must live for more than 0 seconds")
        expires = int(self._clock() + ttl) + 1
        return f"{expires}.{self._mac(purpose, params or {}, expires)}"

    def verify(self, token: str, purpose: str, params: Mapping[str, str] | None = None) -> bool:
        """Whether ``token`` was signed for this purpose and parameters, and has not expired."""
        expires_text, sep, mac = token.partition(".")
        # isascii(): str.isdigit() also accepts digits like "²" that int() refuses.
        digits = expires_text.isascii() and expires_text.isdigit()
        if not sep or not digits or len(expires_text) > 12:
            return False
        expires = int(expires_text)
        # Compare first, then check the time, so that a wrong MAC and an expired token cost the
        # same and timing tells an attacker nothing about which one they had.
        good = hmac.compare_digest(mac.encode(), self._mac(purpose, params or {}, expires).encode())
        return good and expires >= self._clock()
