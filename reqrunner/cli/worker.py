"""The ``reqrunner work`` daemon: wait for jobs, run them one by one, stop gracefully.

- Waiting: on PostgreSQL a ``LISTEN reqrunner`` connection (every dispatch sends ``NOTIFY
  reqrunner, '<queue>'`` in its transaction) wakes the worker at once; on SQLite and MySQL it
  looks again every ``sleep`` seconds, or sooner when a delayed job comes due. On every
  database an idle worker also wakes when a periodic job's next slot comes.
- Stopping: the first SIGTERM/SIGINT lets the current job finish and exits 0; a second exits at
  once with status 128 + signal, and the runner puts the interrupted job back in the queue.
- Restarting: ``reqrunner restart`` stores a new value under the meta key ``cli.restart``; a
  worker that sees it differ from what it read at start exits 0 after its current job, like
  Laravel's ``queue:restart`` (comparing values, not clocks, so machines' clocks need not agree).
- Being seen: a heartbeat thread writes ``cli.worker.<host>.<pid>`` so ``reqrunner stats`` can
  say which workers are alive.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import socket
import threading
import time
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any

from ..errors import RunnerStopped, StoreError
from ..models import Limits, WorkerSeen

if TYPE_CHECKING:
    from ..queue import JobQueue
    from ..store.dialects import Listener

__all__ = ["Worker", "request_restart", "workers_seen"]

log = logging.getLogger("reqrunner.worker")

RESTART_KEY = "cli.restart"
WORKER_PREFIX = "cli.worker."
HEARTBEAT_EVERY = 10.0
"""Seconds between a worker's heartbeats (from its own thread, so long jobs don't hide it)."""
SEEN_WITHIN = 35.0
"""A worker whose last heartbeat is older than this is not listed as seen."""
MIN_WAIT = 0.05
"""Seconds an idle worker waits at least before looking again (no busy loop on a race)."""
RESTART_CHECK_EVERY = 1.0
"""Seconds between looks at the restart key while jobs keep coming (one small query each)."""
SLOW_JOB_SECONDS = 0.05
"""A job at least this long (seconds) is followed by a restart check whatever the throttle."""


def request_restart(queue: JobQueue) -> None:
    """Make every running ``work`` process exit after its current job."""
    queue.set_meta(RESTART_KEY, f"{time.time():.6f}")


def workers_seen(queue: JobQueue) -> list[WorkerSeen]:
    """The workers whose heartbeat is recent, oldest first."""
    now = time.time()
    seen = []
    for value in queue.get_meta_prefixed(WORKER_PREFIX).values():
        try:
            data = json.loads(value)
            worker = WorkerSeen(
                host=str(data["host"]),
                pid=int(data["pid"]),
                started=float(data["started"]),
                seen=float(data["seen"]),
                queues=None if data["queues"] is None else tuple(data["queues"]),
            )
        except (ValueError, KeyError, TypeError):
            continue  # written by another version; not worth failing `stats` over
        if now - worker.seen <= SEEN_WITHIN:
            seen.append(worker)
    return sorted(seen, key=lambda w: w.started)


class Worker:
    """Run jobs as they come until stopped, restarted or a limit is reached.

    ``limits`` bound the worker's whole life (``max_jobs`` jobs in all, ``max_time`` seconds
    since start, ``max_memory``); reaching one exits cleanly so that a process monitor starts a
    fresh worker. :meth:`work` installs signal handlers, so call it from the main thread.
    """

    def __init__(
        self,
        queue: JobQueue,
        *,
        sleep: float = 3.0,
        limits: Limits | None = None,
        queues: Sequence[str] | None = None,
    ) -> None:
        if not sleep > 0:
            raise ValueError(f"sleep={sleep!r}: must be more than 0 seconds")
        self.queue = queue
        self.sleep = sleep
        self.limits = limits or Limits(max_jobs=None, max_time=None, max_memory=80)
        self.queues = list(queues) if queues else None
        self._signal: int | None = None
        self._restart_mark: str | None = None
        self._restart_checked = 0.0
        self._restart_asked = 0.0
        self._restarting = False
        self._listener: Listener | None = None
        self._wake_r = self._wake_w = -1
        self._stop_heartbeat = threading.Event()
        self._key = f"{WORKER_PREFIX}{socket.gethostname()[:32]}.{os.getpid()}"
        self._started = time.time()

    # -- stop conditions ------------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self._signal is not None:
            # Raised in the job's frame: the runner records the job as interrupted and gives it
            # back to the queue at once, and the process exits without waiting for it.
            log.warning("second %s: exiting now, the current job goes back to the queue", name)
            raise RunnerStopped(128 + signum)
        self._signal = signum
        log.info("received %s: finishing the current job, then exiting", name)

    def _restart_requested(self) -> bool:
        now = time.monotonic()
        # Between fast jobs the check is made once a second; after a job that took a while
        # (a long gap since the last question) it is made at once, so that a restart asked
        # for during that job is never followed by another claim.
        after_slow_job = now - self._restart_asked >= SLOW_JOB_SECONDS
        self._restart_asked = now
        if not self._restarting and (
            after_slow_job or now - self._restart_checked >= RESTART_CHECK_EVERY
        ):
            self._restart_checked = now
            try:
                mark = self.queue.get_meta(RESTART_KEY)
            except StoreError:
                # The database is away (a restart, a failover): the loop's run meets the same
                # error and waits for it; a restart asked for meanwhile is seen once it is back.
                return False
            self._restarting = mark != self._restart_mark
        return self._restarting

    def _should_stop(self) -> bool:
        return self._signal is not None or self._restart_requested()

    # -- the loop -------------------------------------------------------------------------------

    def work(self) -> int:
        """Run until stopped; the process's exit status (0 for every orderly stop)."""
        self._restart_mark = self.queue.get_meta(RESTART_KEY)
        self._restart_checked = time.monotonic()
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        os.set_blocking(self._wake_r, False)
        # A signal handler runs only between bytecodes, so a select() waiting for jobs would not
        # notice it; the wakeup fd makes the signal readable on a pipe that select() watches.
        previous_fd = signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        heartbeat = threading.Thread(
            target=self._heartbeat, name="reqrunner-heartbeat", daemon=True
        )
        heartbeat.start()
        log.info(
            "worker %s started on %s (queues: %s, %s)",
            self._key,
            self.queue.url,
            ",".join(self.queues or ["all"]),
            "woken by NOTIFY" if self.queue.dialect.listens else f"polling every {self.sleep}s",
        )
        try:
            reason = self._loop()
        finally:
            signal.set_wakeup_fd(previous_fd)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._stop_heartbeat.set()
            heartbeat.join(timeout=5)
            if self._listener is not None:
                self._listener.close()
            os.close(self._wake_r)
            os.close(self._wake_w)
        log.info("worker %s exiting: %s", self._key, reason)
        return 0

    def _loop(self) -> str:
        ran = 0
        while True:
            if self._signal is not None:
                return f"received {signal.Signals(self._signal).name}"
            if self._restart_requested():
                return "restart requested"
            max_jobs = self.limits.max_jobs
            if max_jobs is not None and ran >= max_jobs:
                return "max_jobs reached"
            max_time = self.limits.max_time
            if max_time is not None:
                max_time -= time.time() - self._started
                if max_time <= 0:
                    return "max_time reached"
            try:
                self._drain()
                report = self.queue.run(
                    max_jobs=None if max_jobs is None else max_jobs - ran,
                    max_time=max_time,
                    max_memory=self.limits.max_memory,
                    queues=self.queues,
                    should_stop=self._should_stop,
                    via="cli-work",
                )
                ran += report.ran
                if report.stopped_by in ("max_jobs", "max_time", "max_memory"):
                    return f"{report.stopped_by} reached"
                if report.stopped_by == "stopped":
                    continue  # the top of the loop says why
                due_in = self.queue.next_due_in(self.queues)
            except StoreError as exc:
                # The database answered when the worker started (work() read the restart mark:
                # a wrong URL ended it there), so this is a restart or a failover, which must
                # not kill a long-lived worker, even in the middle of its first run: wait, retry.
                log.warning("job database unavailable, retrying in %gs: %s", self.sleep, exc)
                due_in = None
                self._close_listener()
            # A job due now that this run did not get was taken by another worker, or is locked
            # by one for a moment: a short pause, not a spin.
            timeout = self.sleep if due_in is None else min(self.sleep, max(due_in, MIN_WAIT))
            if max_time is not None:
                timeout = min(timeout, max_time)
            self._wait(timeout)

    # -- waiting --------------------------------------------------------------------------------

    def _drain(self) -> None:
        """Open the LISTEN connection if needed and drop notifications already handled.

        Called before each run, never between a run and the wait that follows it: a dispatch
        made after the run looked for jobs then still wakes that wait.
        """
        if not self.queue.dialect.listens:
            return
        try:
            if self._listener is None:
                self._listener = self.queue.dialect.listener(self.queues)
            self._listener.drain()
        except Exception as exc:
            # Polling still works; LISTEN is only the fast path.
            log.warning("LISTEN connection failed, polling every %.1fs: %s", self.sleep, exc)
            self._close_listener()

    def _close_listener(self) -> None:
        if self._listener is not None:
            try:
                self._listener.close()
            finally:
                self._listener = None

    def _wait(self, timeout: float) -> None:
        deadline = time.monotonic() + max(timeout, 0.0)
        while self._signal is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            watched: list[Any] = [self._wake_r]
            if self._listener is not None:
                watched.append(self._listener)
            ready, _, _ = select.select(watched, [], [], remaining)
            if self._wake_r in ready:
                try:
                    while os.read(self._wake_r, 512):
                        pass
                except BlockingIOError:
                    pass
            if self._listener is not None and self._listener in ready:
                try:
                    if self._listener.drain():
                        return
                except Exception as exc:
                    log.warning("LISTEN connection lost, polling: %s", exc)
                    self._close_listener()

    # -- heartbeat ------------------------------------------------------------------------------

    def _heartbeat(self) -> None:
        entry: dict[str, Any] = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": self._started,
            "queues": self.queues,
        }
        while True:
            entry["seen"] = time.time()
            try:
                self.queue.set_meta(self._key, json.dumps(entry))
            except Exception as exc:
                log.warning("could not record this worker's heartbeat: %s", exc)
            if self._stop_heartbeat.wait(HEARTBEAT_EVERY):
                break
        try:
            self.queue.delete_meta(self._key)
        except Exception as exc:
            log.warning("could not remove this worker's heartbeat: %s", exc)
