"""A framework-neutral HTTP request and response for reqrunner's own routes.

The run endpoint, the tick URL and the admin pages are written once against these two types;
the ASGI and WSGI adapters only translate to and from them. Headers and query strings are
starlette's datastructures (:class:`~starlette.datastructures.Headers`,
:class:`~starlette.datastructures.QueryParams`), the same whichever server is underneath.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import Headers, QueryParams

__all__ = ["AdminAccess", "Request", "Response", "fold"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Request:
    """One request to a reqrunner route, already read whole (these bodies are small)."""

    method: str
    """Upper-case HTTP method."""
    path: str
    """The path below reqrunner's mount point, e.g. ``"/run"`` or ``"/admin/jobs/5"``."""
    query_string: str = ""
    headers: Headers = field(default_factory=Headers)
    """Looked up without regard to case; ``get`` gives the first of a repeated header,
    ``getlist`` all of them."""
    body: bytes = b""
    client: str | None = None
    """The peer's address as the server saw it (no proxy headers applied)."""
    scheme: str = "http"
    host: str = ""
    """``host[:port]`` the request was addressed to."""
    root_path: str = ""
    """Where the app is mounted, plus reqrunner's own path (``…/_reqrunner``)."""
    server: Mapping[str, Any] = field(default_factory=dict)
    """What the adapter knows of the server: ``protocol`` (``"asgi"``/``"wsgi"``),
    ``run_once`` (one request per process, as under CGI) and ``software`` where it says."""

    @property
    def query(self) -> QueryParams:
        """The query string's parameters; the last value wins for repeated names."""
        return QueryParams(self.query_string)

    def form(self) -> QueryParams:
        """The body's ``application/x-www-form-urlencoded`` fields (last value wins).

        That encoding is the query string's, so it is read as one. (starlette's own form parser
        reads a request stream on an event loop and needs ``python-multipart``; these bodies
        are already read, on a worker thread.)
        """
        return QueryParams(self.body.decode("utf-8", "replace"))


@dataclass(frozen=True, kw_only=True, slots=True)
class Response:
    """What a reqrunner route answers, and what it wants done once the answer is delivered."""

    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    after: Callable[[], None] | None = None
    """Blocking work to run after the response is complete (in a worker thread, never on an
    event loop), such as the bounded run the run endpoint promises with its ``202``."""


AdminAccess = Callable[[Request], bool]
"""Whether a request may use the admin: :class:`~reqrunner.BasicAuth`, or any callable taking
the :class:`Request` (headers, client address) and returning ``True`` to allow."""


def fold(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Header ``(name, value)`` pairs as one mapping: names lower-cased, the values of a repeated
    header joined with ``", "`` as HTTP allows (so a ``Cache-Control`` sent twice is read
    whole)."""
    out: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out
