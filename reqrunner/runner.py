"""The bounded runner: claim due jobs and run them until the queue is empty or a limit is hit.

Limits are checked before every job, PKP- and Action Scheduler-style: the job count, the
elapsed time (also refusing a job that is not expected to fit: elapsed + 3 × mean job time),
and the process's memory. Jobs are claimed in batches sized to about 20 ms of work, so fast
jobs share a transaction and slow ones are not hoarded from other runners; whatever was claimed
but not started when the run stops is released at once.
"""

from __future__ import annotations

import collections
import dataclasses
import inspect
import json
import logging
import random
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from . import memory
from .context import JobContext
from .errors import JobInterrupted, RunnerStopped, UnknownJob, error_type
from .heartbeat import Heartbeat
from .models import Limits, RunReport, StopReason
from .store.operations import Ack, Claimed, Store, history_with
from .store.records import storable

if TYPE_CHECKING:
    import asyncio

__all__ = ["JobFunction", "Runner", "backoff_delay"]

log = logging.getLogger("reqrunner.runner")

#: Aim for a claim batch to hold about this much work (seconds).
BATCH_WORK = 0.02
MAX_BATCH = 100
#: Write pending outcomes before the next job once the oldest has waited this long (seconds),
#: so that a slow job does not leave finished ones looking unfinished.
ACK_DELAY = 0.5
MESSAGE_LIMIT = 2000
TRACEBACK_LIMIT = 20000
MAX_BACKOFF = 24 * 3600.0


def backoff_delay(backoff: float, attempt: int) -> float:
    """Seconds to wait before attempt ``attempt + 1``: ``backoff × 2^(attempt−1)``, ±25 %
    jitter so that jobs that failed together do not all retry together; at most a day."""
    base = backoff * 2 ** min(max(attempt - 1, 0), 30)
    return float(min(MAX_BACKOFF, base * random.uniform(0.75, 1.25)))


class JobFunction(Protocol):
    """What the runner needs of a registered job (a :class:`~reqrunner.Job` is one)."""

    @property
    def fn(self) -> Callable[..., Any]:
        """The function to call with the stored arguments."""
        ...

    @property
    def is_async(self) -> bool:
        """Whether ``fn`` is a coroutine function, run on an event loop."""
        ...

    @property
    def context_param(self) -> str | None:
        """The parameter that receives the :class:`JobContext`, if the function takes one."""
        ...

    @property
    def signature(self) -> inspect.Signature:
        """The function's parameters without the context one, to check stored arguments."""
        ...

    @property
    def result_ttl(self) -> float:
        """Seconds to keep the job's result (return value or error) once it ends; 0: none."""
        ...


def _kept(ack: Ack, keep: float) -> Ack:
    """``ack`` keeping the job's result for ``keep`` seconds if it ends the job."""
    return dataclasses.replace(ack, keep_for=keep) if keep and ack.kind == "failed" else ack


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    # The end of a traceback names the failing line; keep both ends.
    half = limit // 2
    return f"{text[:half]}\n… ({len(text) - limit} characters cut) …\n{text[-half:]}"


class Runner:
    """One bounded run over a store with a registry of job functions."""

    def __init__(
        self,
        store: Store,
        jobs: Mapping[str, JobFunction],
        limits: Limits,
        *,
        queues: Sequence[str] | None = None,
        should_stop: Callable[[], bool] | None = None,
        ids: Sequence[int] | None = None,
    ) -> None:
        self.store = store
        self.ids = list(ids) if ids is not None else None
        """Run only these jobs (those still due), in this order; None: whatever is due."""
        self.jobs = jobs
        self.limits = limits
        self.queues = list(queues) if queues else None
        self.should_stop = should_stop
        self._memory_cap = self._memory_cap_bytes(limits)
        self._loop: asyncio.Runner | None = None

    @staticmethod
    def _memory_cap_bytes(limits: Limits) -> int | None:
        if limits.memory_bytes is not None:
            return limits.memory_bytes
        if limits.memory_percent is not None:
            return int(memory.effective_limit() * limits.memory_percent / 100)
        return None

    def run(self) -> RunReport:
        started = time.perf_counter()
        counts = collections.Counter[str]()
        busy = 0.0  # seconds spent inside job functions
        pending: list[Ack] = []
        first_pending = 0.0
        batch: collections.deque[Claimed] = collections.deque()
        heartbeat = Heartbeat(self.store)
        stopped_by: StopReason = "empty"
        try:
            while True:
                ran = counts["ran"]
                mean = busy / ran if ran else 0.0
                reason = self._limit_reached(ran, time.perf_counter() - started, mean)
                if reason is not None:
                    stopped_by = reason
                    break
                if not batch:
                    result = self.store.cycle(
                        pending,
                        claim=self._batch_size(ran, mean, started),
                        queues=self.queues,
                        ids=self.ids,
                    )
                    pending = []
                    counts["interrupted"] += result.interrupted
                    if not result.claimed:
                        heartbeat.drop()
                        break
                    batch.extend(result.claimed)
                    heartbeat.hold(result.claimed)
                elif pending and time.perf_counter() - first_pending > ACK_DELAY:
                    self.store.cycle(pending)
                    pending = []
                job = batch.popleft()
                t0 = time.perf_counter()
                outcome = self._execute(job)
                busy += time.perf_counter() - t0
                counts["ran"] += 1
                counts[outcome.kind] += 1
                if not pending:
                    first_pending = time.perf_counter()
                pending.append(outcome)
        finally:
            heartbeat.stop()
            # Outcomes already known are written and unstarted claims given back, even when
            # the run ends by an exception (a second SIGTERM in a worker, say).
            pending.extend(Ack(job.id, job.token, "release") for job in batch)
            self.store.cycle(pending, final=True)
            if self._loop is not None:
                self._loop.close()
        return RunReport(
            ran=counts["ran"],
            succeeded=counts["done"],
            retried=counts["retry"],
            failed=counts["failed"],
            interrupted=counts["interrupted"],
            elapsed=time.perf_counter() - started,
            stopped_by=stopped_by,
        )

    def _limit_reached(self, ran: int, elapsed: float, mean: float) -> StopReason | None:
        limits = self.limits
        if limits.max_jobs is not None and ran >= limits.max_jobs:
            return "max_jobs"
        if limits.max_time is not None and (
            elapsed >= limits.max_time or (ran and elapsed + 3 * mean > limits.max_time)
        ):
            return "max_time"
        if self._memory_cap is not None and memory.rss() >= self._memory_cap:
            return "max_memory"
        if self.should_stop is not None and self.should_stop():
            return "stopped"
        return None

    def _batch_size(self, ran: int, mean: float, started: float) -> int:
        if not ran:
            return 1  # nothing known yet about these jobs: don't hoard
        size = MAX_BATCH if mean <= 0 else int(BATCH_WORK / mean)
        if self.limits.max_jobs is not None:
            size = min(size, self.limits.max_jobs - ran)
        if self.limits.max_time is not None and mean > 0:
            left = self.limits.max_time - (time.perf_counter() - started)
            size = min(size, int(left / mean))
        return max(1, min(size, MAX_BATCH))

    # -- one job --------------------------------------------------------------------------------

    def _execute(self, job: Claimed) -> Ack:
        definition = self.jobs.get(job.name)
        label = f"job {job.id} {job.name}"
        if definition is None:
            # Not failed for good: during a rolling deploy another process may know the name.
            return self._failure(
                job,
                error_type(UnknownJob),
                str(UnknownJob(job.name, registered=self.jobs)),
                "",
                permanent=False,
                started=time.perf_counter(),
            )
        args, kwargs = json.loads(job.payload)
        keep = definition.result_ttl
        ctx_name = definition.context_param
        if ctx_name is not None:
            kwargs[ctx_name] = JobContext(
                self.store,
                job.token,
                job_id=job.id,
                name=job.name,
                queue=job.queue,
                attempt=job.attempts,
                max_attempts=job.max_attempts,
            )
        try:
            definition.signature.bind(*args, **{k: v for k, v in kwargs.items() if k != ctx_name})
        except TypeError as exc:
            return _kept(
                self._failure(
                    job,
                    "TypeError",
                    f"the stored arguments do not fit {job.name}{definition.signature}: {exc}",
                    "",
                    permanent=True,
                    started=time.perf_counter(),
                ),
                keep,
            )
        log.info("%s started (attempt %d/%d)", label, job.attempts, job.max_attempts)
        t0 = time.perf_counter()
        try:
            if definition.is_async:
                value = self._run_async(definition.fn(*args, **kwargs))
            else:
                value = definition.fn(*args, **kwargs)
            encoded = json.dumps(value, separators=(",", ":")) if keep else None
        except Exception as exc:
            failure = self._failure(
                job,
                error_type(type(exc)),
                str(exc),
                traceback.format_exc(),
                permanent=False,
                started=t0,
            )
            return _kept(failure, keep)
        except RunnerStopped as exc:
            self._stop_now(job, exc)
            raise
        except SystemExit as exc:
            # The job's own sys.exit(): an error of that job, not an order to the process
            # that runs it (the run goes on, and `reqrunner run` keeps its exit codes).
            failure = self._failure(
                job,
                "SystemExit",
                f"the job called sys.exit({exc.code!r}); a job should return or raise",
                traceback.format_exc(),
                permanent=False,
                started=t0,
            )
            return _kept(failure, keep)
        except BaseException as exc:
            self._stop_now(job, exc)
            raise
        log.info("%s succeeded in %.1f ms", label, (time.perf_counter() - t0) * 1000)
        return Ack(job.id, job.token, "done", value=encoded, keep_for=keep)

    def _stop_now(self, job: Claimed, cause: BaseException) -> None:
        # KeyboardInterrupt, a worker's second signal: the job did not finish; leave it to be
        # claimed again right away, its attempt counted, rather than wait out its lease.
        log.warning("job %s %s interrupted by %s", job.id, job.name, type(cause).__name__)
        self.store.cycle([self._interrupted(job, cause)])

    def _interrupted(self, job: Claimed, cause: BaseException) -> Ack:
        stopped_by = f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__
        message = storable(
            f"the process running it was stopped ({stopped_by}) before the job finished"
        )
        entry = {
            "attempt": job.attempts,
            "at": time.time(),
            "outcome": "interrupted",
            "error": message,
        }
        final = job.attempts >= job.max_attempts
        return Ack(
            job.id,
            job.token,
            "failed" if final else "retry",
            available_at=time.time(),
            error=(error_type(JobInterrupted), message, ""),
            history=history_with(job.history, entry),
        )

    def _failure(
        self, job: Claimed, kind: str, message: str, tb: str, *, permanent: bool, started: float
    ) -> Ack:
        took = (time.perf_counter() - started) * 1000
        # What a job raised can hold anything: a file name os.fsdecode() could not decode, a
        # NUL. Every database and every log must take it.
        kind, message, tb = storable(kind), storable(message), storable(tb)
        entry = {
            "attempt": job.attempts,
            "at": time.time(),
            "outcome": "raised",
            "error": f"{kind}: {message}"[:MESSAGE_LIMIT],
        }
        error = (kind[:255], _clip(message, MESSAGE_LIMIT), _clip(tb, TRACEBACK_LIMIT))
        history = history_with(job.history, entry)
        if permanent or job.attempts >= job.max_attempts:
            log.error(
                "job %s %s failed for good after %.1f ms (attempt %d/%d): %s: %s",
                job.id,
                job.name,
                took,
                job.attempts,
                job.max_attempts,
                kind,
                message,
            )
            return Ack(job.id, job.token, "failed", error=error, history=history)
        delay = backoff_delay(job.backoff, job.attempts)
        log.warning(
            "job %s %s failed after %.1f ms (attempt %d/%d), retry in %.0f s: %s: %s",
            job.id,
            job.name,
            took,
            job.attempts,
            job.max_attempts,
            delay,
            kind,
            message,
        )
        return Ack(
            job.id,
            job.token,
            "retry",
            available_at=time.time() + delay,
            error=error,
            history=history,
        )

    def _run_async(self, coro: Any) -> Any:
        # Imported here: a process whose jobs are all plain functions never loads asyncio.
        import asyncio  # noqa: PLC0415

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            if self._loop is None:
                self._loop = asyncio.Runner()
            return self._loop.run(coro)
        # Called from inside an event loop (an async app calling queue.run directly): the
        # coroutine gets a loop of its own in a helper thread rather than deadlocking this one.
        errors: list[BaseException] = []
        values: list[Any] = []

        def target() -> None:
            try:
                values.append(asyncio.run(coro))
            except BaseException as exc:
                errors.append(exc)

        helper = threading.Thread(target=target, name="reqrunner-async-job")
        helper.start()
        helper.join()
        if errors:
            raise errors[0]
        return values[0]
