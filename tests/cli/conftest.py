"""Fixtures for the console script's tests: the real ``reqrunner`` script in a subprocess.

``cli_url`` is a clean job database on SQLite and on PostgreSQL (the embedded store, and the one
whose ``work`` wakes on NOTIFY); ``cli`` runs
the installed console script against it with ``--app tests.cli.app_for_cli:queue``, the way a
site's cron line would.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import reqrunner
from tests.cli.app_for_cli import build_queue
from tests.conftest import drop_tables

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.cli.app_for_cli:queue"
_SCRIPT = shutil.which("reqrunner", path=str(Path(sys.executable).parent))
SCRIPT = [_SCRIPT] if _SCRIPT else [sys.executable, "-m", "reqrunner"]


def cli_env(url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REQRUNNER_")}
    env.update(REQRUNNER_DATABASE_URL=url, PYTHONUNBUFFERED="1", **extra)
    return env


class CLI:
    """Runs ``reqrunner --app … VERB …`` against one database."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __call__(
        self, *args: str, app: bool = True, timeout: float = 60, **env: str
    ) -> subprocess.CompletedProcess[str]:
        command = [*SCRIPT, *(["--app", APP] if app else []), *args]
        return subprocess.run(
            command,
            env=cli_env(self.url, **env),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def json(self, *args: str) -> Any:
        result = self(*args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def start(self, *args: str) -> subprocess.Popen[str]:
        """Start a long-running verb (``work``); the caller stops it."""
        return subprocess.Popen(
            [*SCRIPT, "--app", APP, *args],
            env=cli_env(self.url),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


@pytest.fixture(params=["sqlite", "postgresql"])
def cli_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/jobs.sqlite3"
    url: str = request.getfixturevalue("postgresql_url")
    drop_tables(url)
    return url


@pytest.fixture
def sqlite_cli_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/jobs.sqlite3"


@pytest.fixture
def pg_cli_url(postgresql_url: str) -> str:
    drop_tables(postgresql_url)
    return postgresql_url


@pytest.fixture
def cli(cli_url: str) -> CLI:
    return CLI(cli_url)


@pytest.fixture
def app_queue(cli_url: str) -> Iterator[reqrunner.JobQueue]:
    """The app's queue, in this process, on the same database as ``cli``."""
    q = build_queue(cli_url)
    yield q
    q.close()


@pytest.fixture
def processes() -> Iterator[Callable[[subprocess.Popen[str]], subprocess.Popen[str]]]:
    """Register started processes; any still running at the end is killed (by its pid)."""
    started: list[subprocess.Popen[str]] = []

    def track(proc: subprocess.Popen[str]) -> subprocess.Popen[str]:
        started.append(proc)
        return proc

    yield track
    for proc in started:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)
