"""``reqrunner ping`` against a real site: uvicorn serving the test app with the middleware."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.cli.app_for_cli import build_queue
from tests.cli.conftest import CLI, ROOT, cli_env
from tests.cli.test_worker import lines, wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(url: str, port: int) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "uvicorn", "tests.cli.app_for_cli:site"]
    return subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=cli_env(url),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def up(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/", timeout=0.5)
    except httpx.TransportError:
        return False
    return True


def test_ping_makes_the_site_run_its_jobs(
    cli_url: str,
    processes: Callable[[subprocess.Popen[str]], subprocess.Popen[str]],
    tmp_path: Path,
):
    port = free_port()
    site = processes(serve(cli_url, port))
    q = build_queue(cli_url)
    out = tmp_path / "ran.txt"
    q.jobs["cli.stamp"].dispatch(str(out), "pinged")
    wait_for(lambda: up(port) or site.poll() is not None)
    cli = CLI(cli_url)
    base = f"http://127.0.0.1:{port}/_reqrunner"

    # The secret: the one the site generated in the shared database, read through --app.
    result = cli("ping", base, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"url": base + "/run", "status": 202, "accepted": True}
    wait_for(lambda: lines(out) != [], timeout=10)
    assert lines(out)[0].endswith(" pinged")

    refused = cli("ping", base, "--secret", "not-the-secret", app=False)
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        f"reqrunner ping: error: {base}/run answered 403 Forbidden (wrong secret?), not 202"
    )
    q.close()


def test_ping_an_unreachable_site(sqlite_cli_url: str):
    started = time.monotonic()
    result = CLI(sqlite_cli_url)(
        "ping", f"http://127.0.0.1:{free_port()}/_reqrunner", "--secret", "s", app=False
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "ConnectError" in result.stderr
    assert time.monotonic() - started < 10
