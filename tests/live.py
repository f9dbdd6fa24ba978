"""Processes the demo and recipe tests start: on 127.0.0.1 free ports, always stopped by PID."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CHROMIUM = Path("/usr/bin/chromium")
"""Debian's chromium, driven through Playwright (which cannot download a browser here)."""
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Running:
    """A started process and where its output goes."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path, url: str) -> None:
        self.process, self.log, self.url = process, log, url

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def started(
    command: Sequence[str],
    *,
    port: int,
    log: Path,
    cwd: Path = ROOT,
    env: dict[str, str] | None = None,
    ready_path: str = "/",
    timeout: float = 30.0,
) -> Iterator[Running]:
    """Run ``command`` until the block ends; ready once ``ready_path`` answers below 500."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with log.open("wb") as out:
        process = subprocess.Popen(
            list(command), cwd=cwd, env=full_env, stdout=out, stderr=subprocess.STDOUT
        )
    running = Running(process, log, f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{command[0]} exited early:\n{running.output()}")
            try:
                if httpx.get(running.url + ready_path, timeout=2.0).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{command[0]} did not come up:\n{running.output()}")
            time.sleep(0.1)
        yield running
    except BaseException:
        stop(process)
        # Shown by pytest with the failure: what the server said is usually the explanation.
        print(f"--- {command[0]} log ---\n{running.output()}")
        raise
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process this test started, then SIGKILL it after 10 s."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(5)


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``predicate()`` every 100 ms; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)
