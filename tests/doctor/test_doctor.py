"""``reqrunner doctor`` against real sites on 127.0.0.1: healthy, loopback blocked, a read-only
SQLite directory, ``Authorization`` stripped under CGI, and a CSP that forbids the trigger.

Each runs the installed console script with ``--app tests.doctor.site_app:application`` (the
middleware object a server runs) and reads its ``--json`` report and exit status.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import reqrunner
from tests.cli.conftest import SCRIPT
from tests.live import BIN, ROOT, free_port, started, stop, wait_for

APP = "tests.doctor.site_app:application"
PASSWORD = "a long password"
"""The admin password site_app sets."""


def _env(db: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REQRUNNER_", "RR_"))}
    env.update(PYTHONPATH=str(ROOT), RR_DB=db, **extra)
    return env


def doctor(db: str, *args: str, **extra: str) -> tuple[int, dict[str, Any]]:
    """Run ``reqrunner --app … doctor --json``; its exit status and report."""
    result = subprocess.run(
        [*SCRIPT, "--app", APP, "doctor", "--json", *args],
        env=_env(db, **extra),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def check(report: dict[str, Any], check_id: str) -> dict[str, Any]:
    (found,) = [c for c in report["checks"] if c["id"] == check_id]
    return found


@contextlib.contextmanager
def waitress(db: str, tmp: Path, *, prefix: tuple[str, ...] = (), **extra: str) -> Iterator[str]:
    port = free_port()
    command = [*prefix, str(BIN / "waitress-serve"), "--listen", f"127.0.0.1:{port}", APP]
    with started(command, port=port, log=tmp / "waitress.log", env=_env(db, **extra)) as server:
        yield server.url


def test_a_healthy_site_passes_every_check(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/jobs.sqlite3"
    with waitress(db, tmp_path) as url:
        status, report = doctor(db, "--url", url)
        # The self-request and the tick each started a run, recorded as the run endpoint's.
        queue = reqrunner.JobQueue(db)
        wait_for(lambda: queue.get_meta("reqrunner.health.last_run"), 10, "the run's record")
        queue.close()
        _, again = doctor(db, "--url", url)
    assert "via endpoint" in check(again, "activity.last_runs")["found"]
    assert status == 0 and report["ok"] is True
    assert report["counts"]["fail"] == 0 and report["counts"]["warn"] == 0
    for name in ("directory", "reachable", "writable", "wal", "schema", "size", "lock_wait"):
        assert check(report, f"store.{name}")["status"] == "ok", name
    mode = check(report, "run.mode")
    assert mode["data"]["concrete_mode"] == "sync" and "waitress" in mode["found"]
    self_request = check(report, "run.self_request")
    assert self_request["status"] == "ok"
    assert self_request["data"]["url"] == f"{url}/_reqrunner/run"
    assert check(report, "run.tick")["data"]["status"] == 202
    assert check(report, "run.authorization")["status"] == "ok"
    assert check(report, "run.csp")["found"] == "The page sets no CSP."
    memory = check(report, "limits.memory")
    assert memory["status"] == "ok" and memory["data"]["limit"] > 0
    assert memory["data"]["source"] in ("RAM", "cgroup", "RLIMIT_AS")


def test_the_memory_limit_is_the_serving_process_own(tmp_path: Path) -> None:
    # The server runs under an address-space limit that doctor's own process does not have.
    limit = 3 << 30
    db = f"sqlite:///{tmp_path}/jobs.sqlite3"
    with waitress(db, tmp_path, prefix=("prlimit", f"--as={limit}", "--")) as url:
        status, report = doctor(db, "--url", url)
    memory = check(report, "limits.memory")
    assert memory["data"]["sources"]["RLIMIT_AS"] == limit
    assert memory["data"]["source"] == "RLIMIT_AS" and memory["data"]["limit"] == limit
    assert memory["data"]["budget"] == int(limit * 0.8)
    assert "Memory limit of the site's process: 3.0 GB (from RLIMIT_AS" in memory["found"]
    assert status == 0


@pytest.mark.parametrize(("mode", "verdict", "status"), [("async", "warn", 0), ("js", "fail", 1)])
def test_loopback_blocked(tmp_path: Path, mode: str, verdict: str, status: int) -> None:
    # self_url names a port nobody listens on: what a host that blocks loopback looks like.
    closed = f"http://127.0.0.1:{free_port()}"
    db = f"sqlite:///{tmp_path}/jobs.sqlite3"
    with waitress(db, tmp_path, RR_MODE=mode, RR_SELF_URL=closed) as url:
        code, report = doctor(db, "--url", url, RR_MODE=mode, RR_SELF_URL=closed)
    self_request = check(report, "run.self_request")
    assert self_request["status"] == verdict, self_request
    assert self_request["data"]["url"] == f"{closed}/_reqrunner/run"
    assert "ConnectError" in self_request["found"]
    assert "self_url" in self_request["advice"]
    if mode == "async":
        assert "in-process" in self_request["found"]
    else:
        assert "browsers post to this address" in self_request["found"]
    assert code == status and report["ok"] is (status == 0)
    # The rest of the site is reached through --url.
    assert check(report, "run.tick")["status"] == "ok"


@pytest.fixture
def unwritable_directory(tmp_path: Path) -> Iterator[Path]:
    """A directory that not even root may add files to: ``chattr +i`` (immutable), which the
    kernel enforces for every user, unlike permission bits (root ignores those)."""
    directory = tmp_path / "data"
    directory.mkdir()
    queue = reqrunner.JobQueue(f"sqlite:///{directory}/jobs.sqlite3")
    queue.dispatch("doctor.noop")  # the file exists and holds a job; WAL files go on close
    queue.close()
    subprocess.run(["chattr", "+i", str(directory)], check=True)
    try:
        with pytest.raises(PermissionError):
            (directory / "probe").touch()
        yield directory
    finally:
        subprocess.run(["chattr", "-i", str(directory)], check=True)


def test_a_read_only_sqlite_directory_fails(unwritable_directory: Path) -> None:
    db = f"sqlite:///{unwritable_directory}/jobs.sqlite3"
    status, report = doctor(db)
    assert status == 1 and report["ok"] is False
    directory = check(report, "store.directory")
    assert directory["status"] == "fail"
    assert "Operation not permitted" in directory["found"]
    assert "write access to that directory" in directory["advice"]
    assert check(report, "store.reachable")["status"] == "fail"
    # Without --url or self_url the site's checks say they cannot tell, not that all is well.
    assert check(report, "run.self_request")["status"] == "unknown"


CGI_SCRIPT = """#!{python}
import sys
sys.path.insert(0, {root!r})
from wsgiref.handlers import CGIHandler
from tests.doctor.site_app import application
CGIHandler().run(application)
"""
# Python's CGI server, which like Apache without CGIPassAuth keeps Authorization from the
# script. Run as root it would switch to "nobody", who may not read this venv.
CGI_SERVER = """
import http.server, os, sys
os.setuid = lambda uid: None
http.server.test(http.server.CGIHTTPRequestHandler, port=int(sys.argv[1]), bind="127.0.0.1")
"""


def test_authorization_stripped_under_cgi(tmp_path: Path) -> None:
    cgi_bin = tmp_path / "cgi-bin"
    cgi_bin.mkdir()
    script = cgi_bin / "site.py"
    script.write_text(CGI_SCRIPT.format(python=sys.executable, root=str(ROOT)))
    script.chmod(0o755)
    db = f"sqlite:///{tmp_path}/jobs.sqlite3"
    port = free_port()
    log = (tmp_path / "cgi.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-c", CGI_SERVER, str(port)],
        cwd=tmp_path,
        env=_env(db),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    site = f"http://127.0.0.1:{port}/cgi-bin/site.py"
    try:
        wait_for(lambda: _answers(f"http://127.0.0.1:{port}/"), 15, "the CGI server")
        # The problem itself: the right password, and still 401. (Python's CGI server sends
        # every script's answer as "200 Script output follows", the script's own status in a
        # Status header.)
        admin = httpx.get(f"{site}/_reqrunner/admin", auth=("admin", PASSWORD), timeout=10)
        assert admin.headers["status"].startswith("401")
        status, report = doctor(db, "--url", site, "--timeout", "15")
    finally:
        stop(server)
        log.close()
    mode = check(report, "run.mode")
    assert mode["data"]["run_once"] is True and mode["data"]["concrete_mode"] == "js"
    assert "auto picks js here" in mode["found"] and "CGI" in mode["found"]
    auth = check(report, "run.authorization")
    assert auth["status"] == "warn"
    assert "401 to the right password" in auth["found"]
    assert "CGIPassAuth On" in auth["advice"]
    assert 'SetEnvIf Authorization "(.*)" HTTP_AUTHORIZATION=$1' in auth["advice"]
    assert "CGI" in check(report, "limits.request_timeout")["found"]
    # The admin is locked out, but jobs still run: doctor exits 0.
    assert status == 0 and report["ok"] is True


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code < 500
    except httpx.HTTPError:
        return False


@pytest.mark.parametrize(
    ("csp", "verdict"),
    [
        ("default-src 'self'; script-src https://cdn.example.org", "fail"),
        ("default-src 'none'; script-src 'nonce-abc123'; connect-src 'self'", "ok"),
    ],
)
def test_a_csp_that_forbids_the_trigger_fails_js_mode(
    tmp_path: Path, csp: str, verdict: str
) -> None:
    db = f"sqlite:///{tmp_path}/jobs.sqlite3"
    with waitress(db, tmp_path, RR_MODE="js", RR_CSP=csp) as url:
        status, report = doctor(db, "--url", url, RR_MODE="js")
    found = check(report, "run.csp")
    assert found["status"] == verdict, found
    assert found["data"]["policies"] == [csp]
    if verdict == "fail":
        assert "script-src https://cdn.example.org" in found["found"]
        assert "'self'" in found["advice"]
        assert status == 1 and report["ok"] is False
    else:
        assert status == 0 and found["data"]["blocked_by"] is None


def test_the_report_reads_as_text_with_advice(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/jobs.sqlite3"
    closed = f"http://127.0.0.1:{free_port()}"
    result = subprocess.run(
        [*SCRIPT, "--app", APP, "doctor"],
        env=_env(db, RR_MODE="async", RR_SELF_URL=closed),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    lines = result.stdout.splitlines()
    assert lines[0] == "Job store"
    (failed,) = [i for i, line in enumerate(lines) if "[WARN] Signed self-request" in line]
    assert lines[failed + 1].strip().startswith("-> Set self_url to an address")
    assert lines[-1].startswith("Nothing here stops jobs from running.")
    assert result.returncode == 0


def test_a_queue_alone_tells_what_a_queue_can(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/jobs.sqlite3"
    result = subprocess.run(
        [*SCRIPT, "--app", "tests.cli.app_for_cli:queue", "doctor", "--json"],
        env={**_env(db), "REQRUNNER_DATABASE_URL": db},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert check(report, "store.writable")["status"] == "ok"
    site = check(report, "run.site")
    assert site["status"] == "unknown" and "--app mysite.wsgi:application" in site["advice"]
    assert "this process" in check(report, "limits.memory")["found"]


def test_doctor_refuses_an_object_it_cannot_check(tmp_path: Path) -> None:
    result = subprocess.run(
        [*SCRIPT, "--app", "tests.doctor.site_app:app", "doctor"],
        env=_env(f"sqlite:///{tmp_path}/jobs.sqlite3"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "is a function: give the middleware your server runs" in result.stderr
