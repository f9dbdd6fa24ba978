"""Real servers in subprocesses on 127.0.0.1, started on free ports and always stopped by PID."""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

KINDS = ("uvicorn", "gunicorn", "waitress")
"""The servers every real-server test runs on; ``gthread`` (gunicorn's threaded worker) joins
the timing tests, where keep-alive on a threaded WSGI server is what could go wrong."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def command(kind: str, port: int, *, workers: int = 1) -> list[str]:
    """The command line that serves the test site on ``port``."""
    if kind == "uvicorn":
        return [
            str(BIN / "uvicorn"), "--factory", "tests.middleware.sites:asgi_app",
            "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
            "--log-level", "warning",
        ]  # fmt: skip
    if kind in ("gunicorn", "gthread"):
        worker = ["sync"] if kind == "gunicorn" else ["gthread", "--threads", "2"]
        return [
            str(BIN / "gunicorn"), "tests.middleware.sites:wsgi_app()",
            "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--worker-class", *worker,
            "--log-level", "warning", "--graceful-timeout", "5",
        ]  # fmt: skip
    if kind == "waitress":
        return [
            str(BIN / "waitress-serve"), "--listen", f"127.0.0.1:{port}", "--threads", "4",
            "--call", "tests.middleware.sites:wsgi_app",
        ]  # fmt: skip
    raise ValueError(kind)


class Server:
    """A running test site."""

    def __init__(self, kind: str, port: int, process: subprocess.Popen[bytes], log: Path):
        self.kind, self.port, self.process, self.log = kind, port, process, log
        self.url = f"http://127.0.0.1:{port}"


@contextmanager
def serve(
    kind: str, tmp: Path, *, workers: int = 1, timeout: float = 20.0, **env: str
) -> Iterator[Server]:
    """Start the test site on ``kind``; ``env``: the ``RR_*`` settings of tests.middleware.sites."""
    port = free_port()
    log = tmp / f"{kind}-{port}.log"
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    with log.open("wb") as out:
        process = subprocess.Popen(
            command(kind, port, workers=workers),
            cwd=ROOT,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(kind, port, process, log)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{kind} exited early:\n{log.read_text()}")
            try:
                if httpx.get(f"{server.url}/health", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{kind} did not come up:\n{log.read_text()}")
            time.sleep(0.05)
        yield server
    except BaseException:
        stop(process)
        # Shown by pytest with the failure: what the server said is usually the explanation.
        print(f"--- {kind} log ---\n{log.read_text()}")
        raise
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a server this test started, by its PID: SIGTERM, then SIGKILL after 10 s."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(5)


def ttlb(client: httpx.Client, url: str) -> tuple[float, httpx.Response]:
    """Seconds from sending the request to having its last byte."""
    start = time.perf_counter()
    response = client.get(url)
    response.read()
    return time.perf_counter() - start, response


def baseline(client: httpx.Client, url: str, n: int = 7) -> float:
    """Median time to last byte of ``url`` over ``n`` requests."""
    return statistics.median(ttlb(client, url)[0] for _ in range(n))


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``predicate()`` every 50 ms until true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)
