"""Real servers in subprocesses on 127.0.0.1, started on free ports and always stopped by PID."""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.live import BIN, ROOT, free_port, started, stop, wait_for

__all__ = [
    "KINDS", "ROOT", "Server", "baseline", "command", "free_port", "serve", "stop", "ttlb",
    "wait_for",
]  # fmt: skip

KINDS = ("uvicorn", "gunicorn", "waitress")
"""The servers every real-server test runs on; ``gthread`` (gunicorn's threaded worker) joins
the timing tests, where keep-alive on a threaded WSGI server is what could go wrong."""


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
    with started(
        command(kind, port, workers=workers),
        port=port,
        log=log,
        env={"PYTHONPATH": str(ROOT), **env},
        ready_path="/health",
        timeout=timeout,
    ) as running:
        yield Server(kind, port, running.process, log)


def ttlb(client: httpx.Client, url: str) -> tuple[float, httpx.Response]:
    """Seconds from sending the request to having its last byte."""
    start = time.perf_counter()
    response = client.get(url)
    response.read()
    return time.perf_counter() - start, response


def baseline(client: httpx.Client, url: str, n: int = 7) -> float:
    """Median time to last byte of ``url`` over ``n`` requests."""
    return statistics.median(ttlb(client, url)[0] for _ in range(n))
