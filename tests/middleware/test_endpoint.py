"""The signed run endpoint, the signer, and the options' validation."""

from __future__ import annotations

import time
from typing import Any

import pytest

import reqrunner
from reqrunner.web.asgi import ASGIMiddleware
from reqrunner.web.http import Request, Response
from reqrunner.web.signing import Signer
from reqrunner.web.wsgi import WSGIMiddleware

from .conftest import HTML, Driver, inner_asgi

SECRET = "a-site-secret"


def form(token: str) -> dict[str, Any]:
    return {
        "headers": {"Content-Type": "application/x-www-form-urlencoded"},
        "body": f"token={token}".encode(),
    }


def post(driver: Driver, path: str, token: str) -> int:
    return driver.request("POST", path, **form(token)).status


# -- the signer -------------------------------------------------------------------------------


def test_signer_round_trip_and_binding() -> None:
    signer = Signer(SECRET)
    token = signer.sign("run", {"queue": "mail"}, ttl=60)
    assert signer.verify(token, "run", {"queue": "mail"})
    assert not signer.verify(token, "tick", {"queue": "mail"})  # another purpose
    assert not signer.verify(token, "run", {"queue": "default"})  # other parameters
    assert not signer.verify(token, "run")
    assert not Signer("another-secret").verify(token, "run", {"queue": "mail"})


def test_signer_expiry() -> None:
    now = [1_000_000.0]
    signer = Signer(SECRET, clock=lambda: now[0])
    token = signer.sign("run", ttl=60)
    now[0] += 59
    assert signer.verify(token, "run")
    now[0] += 3
    assert not signer.verify(token, "run")


@pytest.mark.parametrize(
    "token", ["", "nodot", "abc.def", "1.", ".x", "9" * 40 + ".x", "ü.ü", "²³.x"]
)
def test_signer_rejects_malformed_tokens(token: str) -> None:
    assert not Signer(SECRET).verify(token, "run")


def test_signer_refuses_empty_secret_and_ttl() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        Signer("")
    with pytest.raises(ValueError, match="more than 0"):
        Signer(SECRET).sign("run", ttl=0)


# -- the endpoint, through both adapters ------------------------------------------------------


def test_valid_token_gets_202_and_the_run(driver: Driver, jobs_queue: reqrunner.JobQueue) -> None:
    driver.wrap(jobs_queue, secret=SECRET, run_rate=0)  # page views never run: only the endpoint
    jobs_queue.dispatch("noop")
    token = Signer(SECRET).sign("run", ttl=60)
    result = driver.request("POST", "/_reqrunner/run", **form(token))
    assert (result.status, result.body) == (202, b"Accepted")
    assert jobs_queue.stats().waiting == 0


def test_a_run_token_is_taken_once(driver: Driver, jobs_queue: reqrunner.JobQueue) -> None:
    driver.wrap(jobs_queue, secret=SECRET, run_rate=0)
    token = Signer(SECRET).sign("run", ttl=60)
    assert driver.request("POST", "/_reqrunner/run", **form(token)).status == 202
    jobs_queue.dispatch("noop")
    replayed = driver.request("POST", "/_reqrunner/run", **form(token))
    assert (replayed.status, replayed.body) == (403, b"Forbidden")
    assert jobs_queue.stats().waiting == 1
    # A fresh token still works.
    fresh = Signer(SECRET).sign("run", ttl=60)
    assert driver.request("POST", "/_reqrunner/run", **form(fresh)).status == 202
    assert jobs_queue.stats().waiting == 0


def tampered(token: str) -> str:
    head, _, mac = token.rpartition(".")
    return f"{head}.{'A' if mac[0] != 'A' else 'B'}{mac[1:]}"


@pytest.mark.parametrize(
    ("route", "token", "status"),
    [
        pytest.param(("POST", "/_reqrunner/run"), None, 403, id="unsigned"),
        pytest.param(("POST", "/_reqrunner/run"), "expired", 403, id="expired"),
        pytest.param(("POST", "/_reqrunner/run"), "tampered", 403, id="tampered-mac"),
        pytest.param(("POST", "/_reqrunner/run"), "extended", 403, id="tampered-expiry"),
        pytest.param(("POST", "/_reqrunner/run"), "leading-zero", 403, id="leading-zero"),
        pytest.param(("POST", "/_reqrunner/run"), "other-secret", 403, id="other-secret"),
        pytest.param(("POST", "/_reqrunner/run"), "other-purpose", 403, id="other-purpose"),
        pytest.param(("GET", "/_reqrunner/run"), "valid", 405, id="get"),
        pytest.param(("PUT", "/_reqrunner/run"), "valid", 405, id="put"),
        pytest.param(("POST", "/_reqrunner/runs"), "valid", 404, id="unknown-path"),
        pytest.param(("POST", "/_reqrunner"), "valid", 404, id="mount-point"),
        pytest.param(("GET", "/_reqrunner/admin"), "valid", 404, id="admin-off"),
    ],
)
def test_endpoint_refuses_and_runs_nothing(
    driver: Driver,
    jobs_queue: reqrunner.JobQueue,
    route: tuple[str, str],
    token: str | None,
    status: int,
) -> None:
    driver.wrap(jobs_queue, secret=SECRET, run_rate=0)
    jobs_queue.dispatch("noop")
    signer = Signer(SECRET)
    past = Signer(SECRET, clock=lambda: time.time() - 3600)
    valid = signer.sign("run", ttl=60)
    tokens = {
        None: "",
        "valid": valid,
        "expired": past.sign("run", ttl=60),
        "tampered": tampered(valid),
        "extended": str(int(valid.split(".")[0]) + 3600) + "." + valid.split(".", 1)[1],
        "leading-zero": "0" + valid,
        "other-secret": Signer("not-the-site-secret").sign("run", ttl=60),
        "other-purpose": signer.sign("tick", ttl=60),
    }
    result = driver.request(*route, **form(tokens[token]))
    assert result.status == status
    # No detail leaked: the same plain word whatever was wrong.
    assert result.body in (b"Forbidden", b"Method Not Allowed", b"Not Found")
    assert jobs_queue.stats().waiting == 1


def test_tick_url_runs_due_jobs_when_fetched(
    driver: Driver, jobs_queue: reqrunner.JobQueue
) -> None:
    """A quiet site's uptime monitor fetches the signed tick URL: the due jobs run."""
    driver.wrap(jobs_queue, secret=SECRET, run_rate=0)
    assert driver.middleware is not None
    url = driver.middleware.tick_url("https://example.org/")
    assert url.startswith("https://example.org/_reqrunner/tick?token=")
    path = url.removeprefix("https://example.org")
    jobs_queue.dispatch("noop")
    result = driver.request("GET", path)
    assert (result.status, result.body) == (202, b"Accepted")
    assert jobs_queue.stats().waiting == 0
    # A year-long token: still good in eleven months, not in thirteen.
    expires = int(path.rsplit("=", 1)[1].split(".")[0])
    assert 330 * 86400 < expires - time.time() < 367 * 86400


@pytest.mark.parametrize(
    ("method", "token", "status"),
    [
        pytest.param("GET", None, 403, id="unsigned"),
        pytest.param("GET", "run-token", 403, id="a-run-token"),
        pytest.param("GET", "tampered", 403, id="tampered"),
        pytest.param("GET", "expired", 403, id="expired"),
        pytest.param("GET", "other-secret", 403, id="other-secret"),
        pytest.param("PUT", "valid", 405, id="put"),
    ],
)
def test_tick_refuses_and_runs_nothing(
    driver: Driver, jobs_queue: reqrunner.JobQueue, method: str, token: str | None, status: int
) -> None:
    driver.wrap(jobs_queue, secret=SECRET, run_rate=0)
    jobs_queue.dispatch("noop")
    valid = Signer(SECRET).sign("tick", ttl=600)
    tokens = {
        None: "",
        "valid": valid,
        "run-token": Signer(SECRET).sign("run", ttl=600),
        "tampered": tampered(valid),
        "expired": Signer(SECRET, clock=lambda: time.time() - 3600).sign("tick", ttl=60),
        "other-secret": Signer("not-the-site-secret").sign("tick", ttl=600),
    }
    result = driver.request(method, f"/_reqrunner/tick?token={tokens[token]}")
    assert result.status == status
    assert result.body in (b"Forbidden", b"Method Not Allowed")
    assert jobs_queue.stats().waiting == 1


def test_secret_defaults_to_the_sites_stored_secret(
    driver: Driver, jobs_queue: reqrunner.JobQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REQRUNNER_SECRET", raising=False)
    driver.wrap(jobs_queue, run_rate=0)
    jobs_queue.dispatch("noop")
    assert post(driver, "/_reqrunner/run", Signer(SECRET).sign("run", ttl=60)) == 403
    assert post(driver, "/_reqrunner/run", Signer(jobs_queue.secret).sign("run", ttl=60)) == 202
    assert jobs_queue.stats().waiting == 0


def test_admin_paths_go_to_the_admin(driver: Driver, jobs_queue: reqrunner.JobQueue) -> None:
    seen: list[Request] = []

    def allow(request: Request) -> bool:
        seen.append(request)
        return request.headers.get("x-staff") == "yes"

    driver.wrap(jobs_queue, admin=allow, path="/jobs", run_rate=0)
    assert driver.request("GET", "/jobs/admin").status == 403
    page = driver.request("GET", "/jobs/admin", {"X-Staff": "yes"})
    assert page.status == 200
    assert page.headers["content-type"].startswith("text/html")
    assert [(r.method, r.path, r.root_path) for r in seen] == [("GET", "/admin", "/jobs")] * 2
    assert driver.request("GET", "/jobs/administrator").status == 404
    assert driver.request("GET", "/_reqrunner/admin").body == HTML  # not ours: the app's page


def test_trigger_script_is_served(driver: Driver, jobs_queue: reqrunner.JobQueue) -> None:
    driver.wrap(jobs_queue, run_rate=0)
    result = driver.request("GET", "/_reqrunner/trigger.js")
    assert result.status == 200
    assert result.headers["content-type"].startswith("text/javascript")
    assert b"keepalive: true" in result.body


# -- options ----------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [ASGIMiddleware, WSGIMiddleware])
@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"run_rate": 1.5}, ValueError, "between 0 and 1"),
        ({"run_rate": -0.1}, ValueError, "between 0 and 1"),
        ({"run_rate": True}, TypeError, "number"),
        ({"mode": "cron"}, ValueError, "must be one of"),
        ({"max_jobs": 0}, ValueError, "at least 1"),
        ({"max_time": 0}, ValueError, "more than 0"),
        ({"max_memory": 150}, ValueError, "max_memory"),
        ({"max_concurrent_runs": 0}, ValueError, "at least 1"),
        ({"max_concurrent_runs": 1.5}, TypeError, "whole number"),
        ({"path": "_reqrunner"}, ValueError, "must start with '/'"),
        ({"path": "/jobs/"}, ValueError, "not end with '/'"),
        ({"self_url": "127.0.0.1:8000"}, ValueError, "base URL"),
        ({"self_url": "ftp://example.org"}, ValueError, "base URL"),
        ({"secret": ""}, ValueError, "non-empty"),
        ({"qualify": "yes"}, TypeError, "callable"),
        ({"admin": 1}, TypeError, "callable"),
    ],
)
def test_options_are_validated(
    cls: type[ASGIMiddleware] | type[WSGIMiddleware],
    jobs_queue: reqrunner.JobQueue,
    options: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error, match=message):
        cls(inner_asgi, jobs_queue, **options)  # type: ignore[arg-type]


def test_options_are_keyword_only(jobs_queue: reqrunner.JobQueue) -> None:
    with pytest.raises(TypeError):
        ASGIMiddleware(inner_asgi, jobs_queue, 0.5)  # type: ignore[misc]


def test_failing_after_response_work_is_logged(
    driver: Driver, jobs_queue: reqrunner.JobQueue, caplog: pytest.LogCaptureFixture
) -> None:
    def boom() -> None:
        raise RuntimeError("after-work bug")

    driver.wrap(jobs_queue, run_rate=0)
    assert driver.middleware is not None
    driver.middleware.core.router = lambda request: Response(status=202, after=boom)
    assert driver.request("POST", "/_reqrunner/run").status == 202
    assert "after-response work failed" in caplog.text
    assert "after-work bug" in caplog.text
