"""The self-request goes to the server's own address, whatever Host a visitor sends."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import httpx
import pytest

from .servers import KINDS, serve, wait_for
from .sites import read_stamps
from .test_servers import health, last_run, settings


class Listener:
    """A port on 127.0.0.1 that counts what connects to it (the "attacker")."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            conn.settimeout(1)
            try:
                self.received.append(conn.recv(65536))
            finally:
                conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()


@pytest.mark.parametrize("kind", KINDS)
def test_a_forged_host_gets_no_token_and_does_not_open_the_breaker(
    kind: str, tmp_path: Path
) -> None:
    attacker = Listener()
    db = f"sqlite:///{tmp_path}/jobs.sqlite3"
    env = settings(tmp_path, db, RR_MODE="async")
    try:
        with serve(kind, tmp_path, **env) as server:
            forged = {"host": f"127.0.0.1:{attacker.port}"}
            page = httpx.get(f"{server.url}/dispatch?n=1&key=forged", headers=forged)
            assert page.status_code == 200
            wait_for(lambda: read_stamps(env["RR_STAMPS"]), 15, "the job to run")
            wait_for(lambda: last_run(db), 10, "the run's health record")
            # The run came through the server's own /run (the self-request says so), not
            # in-process after a failure.
            assert last_run(db)["via"] == "async"
            record = health(db, "self_request")
            assert record["ok"] is True
            assert str(attacker.port) not in str(record["url"])
    finally:
        attacker.close()
    assert attacker.received == []
