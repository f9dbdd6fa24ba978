"""In-process drivers: one decision, exercised through the ASGI and the WSGI adapter alike."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import pytest

import reqrunner
from reqrunner.web.asgi import ASGIMiddleware
from reqrunner.web.wsgi import WSGIMiddleware

HTML = b"<html><body><h1>page</h1></body></html>"

# path -> (status, content type, body, more headers) served by both inner apps.
PAGES: dict[str, tuple[int, str, bytes, tuple[tuple[str, str], ...]]] = {
    "/html": (200, "text/html; charset=utf-8", HTML, ()),
    "/xhtml": (200, "application/xhtml+xml", HTML, ()),
    "/json": (200, "application/json", b'{"a": 1}', ()),
    "/missing": (404, "text/html", HTML, ()),
    "/error": (500, "text/html", HTML, ()),
    "/gzip": (200, "text/html", b"\x1f\x8b not really", (("Content-Encoding", "gzip"),)),
    "/public": (200, "text/html", HTML, (("Cache-Control", "public, max-age=60"),)),
    "/shared": (200, "text/html", HTML, (("Cache-Control", "s-maxage=60"),)),
    "/private": (200, "text/html", HTML, (("Cache-Control", "private, max-age=60"),)),
    "/csp": (200, "text/html", HTML, (("Content-Security-Policy", "script-src 'nonce-r4nd0m'"),)),
    "/big": (200, "text/html", b"<body>" + b"x" * (1 << 20) + b"</body>", ()),
    "/fragment": (200, "text/html", b"<p>no closing tag</p>", ()),
}
# Sent in chunks, without Content-Length: a streamed page.
STREAM = (b"<html><body><p>one</p>", b"<p>two</p></bo", b"dy></html>")


@dataclass
class Result:
    status: int
    headers: dict[str, str]
    body: bytes


async def inner_asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["path"] == "/stream":
        start = {"type": "http.response.start", "status": 200}
        await send({**start, "headers": [(b"content-type", b"text/html")]})
        for i, chunk in enumerate(STREAM):
            more = i < len(STREAM) - 1
            await send({"type": "http.response.body", "body": chunk, "more_body": more})
        return
    status, ctype, body, extra = PAGES.get(scope["path"], PAGES["/html"])
    headers = [(b"content-type", ctype.encode()), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def inner_wsgi(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    if environ["PATH_INFO"] == "/stream":
        start_response("200 OK", [("Content-Type", "text/html")])
        return iter(STREAM)
    status, ctype, body, extra = PAGES.get(environ["PATH_INFO"], PAGES["/html"])
    headers = [("Content-Type", ctype), ("Content-Length", str(len(body))), *extra]
    start_response(f"{status} X", headers)
    return [body]


def join_runs(timeout: float = 10.0) -> None:
    """Wait for the background runs the WSGI adapter started from close()."""
    for thread in threading.enumerate():
        if thread.name == "reqrunner-run":
            thread.join(timeout)


class Driver:
    """Wraps the inner app of one protocol and sends it requests in-process."""

    def __init__(self, protocol: str) -> None:
        self.protocol = protocol
        self.middleware: ASGIMiddleware | WSGIMiddleware | None = None
        self.app: Any = None
        self.query = ""
        self.run_once = False
        """WSGI's ``wsgi.run_once`` in the environ sent (True: a CGI server)."""
        self.chunks: list[bytes] = []
        """The body messages of the last ASGI response, as sent."""

    def wrap(self, queue: reqrunner.JobQueue, **options: Any) -> Driver:
        if self.protocol == "asgi":
            self.middleware = ASGIMiddleware(inner_asgi, queue, **options)
        else:
            self.middleware = WSGIMiddleware(inner_wsgi, queue, **options)
        self.app = self.middleware
        return self

    def serve(self, app: Any) -> Driver:
        """Send the requests to ``app``, an application that contains the middleware."""
        self.app = app
        return self

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> Result:
        """Send one request; returns once any run it started has finished."""
        headers = {"host": "testserver", **(headers or {})}
        path, _, self.query = path.partition("?")
        if self.protocol == "asgi":
            return anyio.run(self._asgi, method, path, headers, body)
        return self._wsgi(method, path, headers, body)

    async def _asgi(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Result:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": self.query.encode(),
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        sent: list[dict[str, Any]] = []
        self.chunks: list[bytes] = []
        messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict[str, Any]:
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)
            if message["type"] == "http.response.body":
                self.chunks.append(message.get("body", b""))

        await self.app(scope, receive, send)
        start = sent[0]
        return Result(
            status=start["status"],
            headers={k.decode().lower(): v.decode() for k, v in start["headers"]},
            body=b"".join(m.get("body", b"") for m in sent[1:]),
        )

    def _wsgi(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Result:
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "SCRIPT_NAME": "",
            "QUERY_STRING": self.query,
            "SERVER_NAME": "testserver",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
            "wsgi.url_scheme": "http",
            "wsgi.run_once": self.run_once,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
        }
        for name, value in headers.items():
            if name.lower() == "content-type":
                environ["CONTENT_TYPE"] = value
            else:
                environ["HTTP_" + name.upper().replace("-", "_")] = value
        got: dict[str, Any] = {}

        def start_response(status: str, response_headers: list[tuple[str, str]]) -> Any:
            got["status"], got["headers"] = status, response_headers
            return lambda data: None

        iterable = self.app(environ, start_response)
        try:
            data = b"".join(iterable)
        finally:
            close = getattr(iterable, "close", None)
            if close is not None:
                close()
        join_runs()
        return Result(
            status=int(got["status"].split()[0]),
            headers={k.lower(): v for k, v in got["headers"]},
            body=data,
        )


@pytest.fixture(params=["asgi", "wsgi"])
def driver(request: pytest.FixtureRequest) -> Driver:
    """The same tests through ``ASGIMiddleware`` and ``WSGIMiddleware``."""
    return Driver(request.param)


@pytest.fixture
def jobs_queue(sqlite_url: str) -> Iterator[reqrunner.JobQueue]:
    """A SQLite queue with a ``noop`` job (the decision tests only count what ran)."""
    queue = reqrunner.JobQueue(sqlite_url)

    @queue.job(name="noop")
    def noop() -> None:
        """Does nothing; its leaving the queue is what the tests look at."""

    yield queue
    queue.close()


_FIGURES: list[str] = []


@pytest.fixture
def figures() -> list[str]:
    """Lines of measured figures, printed at the end of the run."""
    return _FIGURES


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _FIGURES:
        terminalreporter.section("reqrunner middleware figures (ms)")
        for line in sorted(_FIGURES):
            terminalreporter.write_line(line)
