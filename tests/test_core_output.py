"""A job's own output (its error, traceback, description, arguments) never wedges a run.

Every database takes the same things: lone surrogates, NUL, a megabyte, markup.
"""

from __future__ import annotations

import logging
import os
import sys

import pytest

import reqrunner
from reqrunner import JobState

SURROGATE_NAME = os.fsdecode(b"caf\xe9.jpg")
BIG_TRACEBACK = "漢字😀" * 6700  # ~20,000 characters, ~80 KB of UTF-8: more than MySQL's TEXT


def test_an_error_holding_a_surrogate_or_nul_is_recorded_and_the_run_goes_on(
    queue: reqrunner.JobQueue, caplog: pytest.LogCaptureFixture
) -> None:
    ran: list[str] = []

    @queue.job(name="bad_name", attempts=1)
    def bad_name(text: str) -> None:
        raise OSError(f"cannot open {SURROGATE_NAME}\x00{text}")

    @queue.job(name="after")
    def after() -> None:
        ran.append("after")

    failing = bad_name.dispatch("<b>x</b>")
    after.dispatch()
    with caplog.at_level(logging.INFO, logger="reqrunner"):
        report = queue.run()

    assert (report.ran, report.failed, report.succeeded) == (2, 1, 1)
    assert ran == ["after"]
    info = queue.get(failing)
    assert info is not None and info.state is JobState.FAILED
    assert info.error is not None
    assert info.error.message == "cannot open caf\\udce9.jpg\\x00<b>x</b>"
    assert "caf\\udce9.jpg" in info.error.traceback
    assert "caf\\udce9.jpg" in info.history[-1]["error"]
    assert queue.count_jobs(state="reserved") == 0


def test_a_description_with_a_surrogate_and_nul_is_stored(queue: reqrunner.JobQueue) -> None:
    @queue.job(name="describes", attempts=1)
    def describes(ctx: reqrunner.JobContext) -> None:
        ctx.describe(f"resizing {SURROGATE_NAME}\x00")
        ctx.progress(0.5, SURROGATE_NAME)
        raise RuntimeError("stop here, so the job stays to be looked at")

    job_id = describes.dispatch()
    assert queue.run().failed == 1
    info = queue.get(job_id)
    assert info is not None
    assert info.description == "resizing caf\\udce9.jpg\\x00"
    assert info.label == "caf\\udce9.jpg"


def test_a_long_traceback_and_a_megabyte_argument_fit_on_every_database(
    queue: reqrunner.JobQueue,
) -> None:
    @queue.job(name="huge", attempts=1)
    def huge(blob: str) -> None:
        raise ValueError(BIG_TRACEBACK + blob[:10])

    megabyte = "<script>é</script>" * ((1 << 20) // 18)
    job_id = huge.dispatch(megabyte)
    stored = queue.get(job_id)
    assert stored is not None and stored.args == (megabyte,)

    report = queue.run()
    assert report.failed == 1
    info = queue.get(job_id)
    assert info is not None and info.error is not None
    assert "漢字😀" in info.error.traceback
    assert "<script>é" in info.error.traceback


def test_sys_exit_in_a_job_is_its_error_and_the_run_goes_on(queue: reqrunner.JobQueue) -> None:
    ran: list[str] = []

    @queue.job(name="exits", attempts=1)
    def exits() -> None:
        sys.exit(3)

    @queue.job(name="next_one")
    def next_one() -> None:
        ran.append("next")

    job_id = exits.dispatch()
    next_one.dispatch()
    report = queue.run()

    assert (report.failed, report.succeeded) == (1, 1)
    assert ran == ["next"]
    info = queue.get(job_id)
    assert info is not None and info.state is JobState.FAILED and info.error is not None
    assert info.error.type == "SystemExit"
    assert "sys.exit(3)" in info.error.message
    assert "JobInterrupted" not in info.error.type
