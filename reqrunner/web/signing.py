"""Short signed tokens for reqrunner's hidden routes.

A token proves that whoever holds it got it from the site: the self-request of ``async`` mode and
the injected script of ``js`` mode both POST one to ``{path}/run``. It is an HMAC-SHA256 over a
*purpose* (so a token minted for one route is worthless on another), the request's parameters and
an expiry, keyed with the site's secret. Verification recomputes the MAC and compares it in
constant time.

Every token carries a random nonce, so no two are alike: a route that must take a token only
once (``{path}/run``) records the nonce until the token expires (:meth:`Signer.check`) and
refuses it the second time. The encoding is canonical: one token, one spelling (no leading
zeros, no padding), so a replay cannot pass as a new token either.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Mapping
from typing import NamedTuple

__all__ = ["Signed", "Signer"]

# Derive the MAC key from the secret instead of using the secret as is, so the same site secret
# can key other things (the admin's CSRF tokens, say) without one MAC being usable as another.
_KEY_LABEL = b"reqrunner.signing.v1"


NONCE_BYTES = 9
"""Random bytes per token (12 characters of URL-safe base64)."""

# expires.nonce.mac: the expiry in canonical decimal (no leading zero, at most 12 digits), the
# nonce and the MAC in unpadded URL-safe base64 of their exact lengths.
_TOKEN = re.compile(r"([1-9][0-9]{0,11})\.([A-Za-z0-9_-]{12})\.([A-Za-z0-9_-]{43})")


class Signed(NamedTuple):
    """What a valid token says: its nonce and when it expires (epoch seconds)."""

    nonce: str
    expires: int


def _canonical(purpose: str, params: Mapping[str, str], expires: int, nonce: str) -> bytes:
    # Length-prefix every field: with plain separators, ("a=b", "") and ("a", "b=") could be made
    # to collide by a value that contains the separator.
    parts = [purpose, str(expires), nonce]
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

    def _mac(self, purpose: str, params: Mapping[str, str], expires: int, nonce: str) -> str:
        message = _canonical(purpose, params, expires, nonce)
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def sign(self, purpose: str, params: Mapping[str, str] | None = None, *, ttl: float) -> str:
        """Return a token for ``purpose`` and ``params`` that is valid for ``ttl`` seconds.

        The parameters are not carried in the token: the verifier must be given the same ones
        (typically the other fields of the same form), and any change to them invalidates it.
        """
        if not ttl > 0:
            raise ValueError(f"ttl={ttl!r}: a token must live for more than 0 seconds")
        expires = int(self._clock() + ttl) + 1
        nonce = base64.urlsafe_b64encode(secrets.token_bytes(NONCE_BYTES)).decode("ascii")
        return f"{expires}.{nonce}.{self._mac(purpose, params or {}, expires, nonce)}"

    def verify(self, token: str, purpose: str, params: Mapping[str, str] | None = None) -> bool:
        """Whether ``token`` was signed for this purpose and parameters, and has not expired."""
        return self.check(token, purpose, params) is not None

    def check(
        self, token: str, purpose: str, params: Mapping[str, str] | None = None
    ) -> Signed | None:
        """What a valid ``token`` says (its nonce, its expiry), or None when it is not one."""
        match = _TOKEN.fullmatch(token) if token.isascii() else None
        if match is None:
            return None
        expires_text, nonce, mac = match.groups()
        expires = int(expires_text)
        # Compare first, then check the time, so that a wrong MAC and an expired token cost the
        # same and timing tells an attacker nothing about which one they had.
        expected = self._mac(purpose, params or {}, expires, nonce)
        good = hmac.compare_digest(mac.encode(), expected.encode())
        return Signed(nonce, expires) if good and expires >= self._clock() else None
