"""Hostile requests at reqrunner's routes: no 500, no traceback, nothing runs, no secret shown.

Hypothesis draws methods, paths, query strings, form bodies and headers (Authorization, Host,
Cookie included) for ``{path}/run``, ``{path}/tick`` and the admin, signed in and not, through
both adapters.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reqrunner
from reqrunner.web.admin import BasicAuth

from ..admin.conftest import SyncASGITransport
from ..middleware.conftest import inner_wsgi

SECRET = "the-site-secret-9f8e7d"
PASSWORD = "the-admin-password-1a2b"
USER = "owner"

# Text a browser or a script might put anywhere: unicode, control characters, percent escapes.
_TEXT = st.text(st.characters(codec="utf-8"), max_size=40)
_ATOMS = st.one_of(
    _TEXT,
    st.sampled_from(["²", "%00", "%C2%B2", "99999999999999999999", "-1", "0", "..", "%ED%A0%80"]),
    st.integers(-(10**20), 10**20).map(str),
)
_PATHS = st.sampled_from(
    ["/run", "/tick", "/admin", "/admin/", "/admin/jobs", "/admin/api/status", "/admin/jobs/1",
     "/admin/jobs/1/retry", "/admin/jobs/99999999999999999999", "/admin/static/x.css",
     "/admin/run", "/trigger.js", "/admin/%00", "/run/", "/tick/x"]
)  # fmt: skip
_KEYS = st.sampled_from(["token", "page", "ids", "name", "queue", "state", "done", "job", "n",
                         "csrf", "next"])  # fmt: skip


def _query(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{quote(k)}={quote(v, safe='%')}" for k, v in pairs)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, dict[str, str], bytes]:
    method = draw(st.sampled_from(["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS"]))
    path = "/_reqrunner" + draw(_PATHS)
    pairs = draw(st.lists(st.tuples(_KEYS, _ATOMS), max_size=4))
    url = path + ("?" + _query(pairs) if pairs else "")
    headers: dict[str, str] = {}
    auth = draw(st.sampled_from(["none", "right", "wrong", "junk"]))
    if auth == "right":
        headers["authorization"] = (
            "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        )
    elif auth == "wrong":
        headers["authorization"] = "Basic " + base64.b64encode(b"owner:guess").decode()
    elif auth == "junk":
        headers["authorization"] = draw(st.text(st.characters(codec="latin-1"), max_size=30))
    if draw(st.booleans()):
        headers["host"] = draw(st.sampled_from(["attacker.example:1", "127.0.0.1:9", "ü", ""]))
    if draw(st.booleans()):
        headers["cookie"] = draw(st.text(st.characters(codec="latin-1"), max_size=30))
    body = _query(draw(st.lists(st.tuples(_KEYS, _ATOMS), max_size=4))).encode()
    if body:
        headers["content-type"] = "application/x-www-form-urlencoded"
    return method, url, headers, body


class Sites:
    """The same queue behind both adapters, with the admin on."""

    def __init__(self, tmp: Path) -> None:
        self.queue = reqrunner.JobQueue(f"sqlite:///{tmp}/jobs.sqlite3")
        self.ran: list[int] = []

        @self.queue.job(name="must_not_run")
        def must_not_run(n: int) -> None:
            self.ran.append(n)

        self.queue.dispatch("must_not_run", 1)
        options = {"secret": SECRET, "run_rate": 0, "admin": BasicAuth(USER, PASSWORD)}
        wsgi = reqrunner.WSGIMiddleware(inner_wsgi, self.queue, **options)
        asgi = reqrunner.ASGIMiddleware(_asgi_page, self.queue, **options)
        self.clients = [
            httpx.Client(transport=httpx.WSGITransport(app=wsgi), base_url="http://site"),
            httpx.Client(transport=SyncASGITransport(asgi), base_url="http://site"),
        ]


async def _asgi_page(scope: dict[str, object], receive: object, send: object) -> None:
    raise AssertionError("the hostile requests all go to reqrunner's own routes")


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sites]:
    built = Sites(tmp_path_factory.mktemp("hostile"))
    yield built
    for client in built.clients:
        client.close()
    built.queue.close()


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_hostile_requests(sites: Sites) -> None:
    collect = Collect()
    logger = logging.getLogger("reqrunner")
    logger.addHandler(collect)
    seen: dict[int, int] = {}
    fired = [0]

    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
    @given(requests())
    def one(request: tuple[str, str, dict[str, str], bytes]) -> None:
        method, url, headers, body = request
        for client in sites.clients:
            try:
                response = client.request(method, url, headers=headers, content=body)
            except (UnicodeEncodeError, httpx.InvalidURL, httpx.LocalProtocolError):
                continue  # httpx itself would not send this
            fired[0] += 1
            seen[response.status_code] = seen.get(response.status_code, 0) + 1
            assert response.status_code < 500, (method, url, headers, response.text)
            shown = response.content + str(response.headers).encode()
            assert SECRET.encode() not in shown and PASSWORD.encode() not in shown

    try:
        one()
    finally:
        logger.removeHandler(collect)
    assert sites.ran == []
    assert sites.queue.stats().waiting == 1
    assert not [r for r in collect.records if r.exc_info or r.levelno >= logging.ERROR]
    logged = "\n".join(r.getMessage() for r in collect.records)
    assert SECRET not in logged and PASSWORD not in logged
    print(f"\nhostile requests fired: {fired[0]}, statuses seen: {dict(sorted(seen.items()))}")
