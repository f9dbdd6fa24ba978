"""The admin through real HTTP clients, against the ASGI and the WSGI adapter alike."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

import reqrunner
from reqrunner.web.admin import AdminAccess, BasicAuth

from .site_app import PASSWORD, USER, make_queue, wrap

ADMIN = "/_reqrunner/admin"
_TOKEN = re.compile(r'name="csrf" value="([^"]+)"')


_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source"}


class _Hooks(HTMLParser):
    def __init__(self, attribute: str) -> None:
        super().__init__()
        self.attribute = attribute
        self.found: list[tuple[str, list[str]]] = []
        self._open: list[tuple[str, list[str] | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        texts: list[str] | None = None
        if self.attribute in values:
            texts = []
            self.found.append((values[self.attribute] or "", texts))
        if tag not in _VOID:
            self._open.append((tag, texts))

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            if self._open.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        for _, texts in self._open:
            if texts is not None and data.strip():
                texts.append(" ".join(data.split()))


def hooks(html: str, attribute: str) -> list[tuple[str, str]]:
    """Every element carrying ``attribute`` (a ``data-*`` hook), as (its value, its text with
    the white space folded and the text of its child elements joined by one space)."""
    parser = _Hooks(attribute)
    parser.feed(html)
    return [(value, " ".join(texts)) for value, texts in parser.found]


def hook(html: str, attribute: str) -> str:
    """The text of the one element carrying ``attribute``."""
    found = hooks(html, attribute)
    assert len(found) == 1, f"{len(found)} elements carry {attribute}"
    return found[0][1]


def join_runs(timeout: float = 10.0) -> None:
    """Wait for the runs the WSGI adapter hands to a background thread after a response."""
    for thread in threading.enumerate():
        if thread.name == "reqrunner-run":
            thread.join(timeout)


class SyncASGITransport(httpx.BaseTransport):
    """httpx's ASGI transport for a synchronous client: each request in its own event loop.

    The ASGI app is called exactly as a server calls it, the after-response run included (the
    adapter awaits it in the same call), so by the time a response returns here that run is
    over.
    """

    def __init__(self, app: Any) -> None:
        self._transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def call() -> httpx.Response:
            response = await self._transport.handle_async_request(request)
            body = await response.aread()
            return httpx.Response(response.status_code, headers=response.headers, content=body)

        return anyio.run(call)


class Site:
    """One adapter around the test site, its queue, and a client that speaks to it."""

    def __init__(self, protocol: str, queue: reqrunner.JobQueue, marker: Path) -> None:
        self.protocol, self.queue, self.marker = protocol, queue, marker

    def client(
        self, admin: AdminAccess | None, *, auth: tuple[str, str] | None = (USER, PASSWORD),
        **options: Any,
    ) -> httpx.Client:  # fmt: skip
        app = wrap(self.protocol, self.queue, admin, **options)
        transport: httpx.BaseTransport = (
            SyncASGITransport(app) if self.protocol == "asgi" else httpx.WSGITransport(app=app)
        )
        return httpx.Client(
            transport=transport,
            base_url="http://testserver",
            auth=httpx.BasicAuth(*auth) if auth else None,
            follow_redirects=False,
        )


def token(client: httpx.Client, page: str = ADMIN) -> str:
    """The CSRF token of a page's forms (the client keeps the cookie that goes with it)."""
    response = client.get(page)
    assert response.status_code == 200, response.text
    found = _TOKEN.search(response.text)
    assert found, "no form on the page"
    return found.group(1)


def post(client: httpx.Client, action: str, **form: str) -> httpx.Response:
    """POST an admin form with a fresh token; wait for any run it started."""
    data = {"csrf": token(client), **form}
    response = client.post(ADMIN + action, data=data)
    join_runs()
    return response


def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "mail-server-fixed"


@pytest.fixture(params=["asgi", "wsgi"])
def site(request: pytest.FixtureRequest, sqlite_url: str, marker: Path) -> Iterator[Site]:
    """The test site on SQLite, once per adapter."""
    queue = make_queue(sqlite_url, str(marker))
    yield Site(request.param, queue, marker)
    join_runs()
    queue.close()


@pytest.fixture
def client(site: Site) -> Iterator[httpx.Client]:
    """A client signed in with Basic credentials."""
    with site.client(BasicAuth(USER, PASSWORD)) as c:
        yield c
