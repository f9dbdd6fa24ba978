"""Declaring schedules, the slots they name (across DST changes), catch-up and overlap."""

from __future__ import annotations

import itertools
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

import reqrunner
from reqrunner import JobContext

BERLIN = ZoneInfo("Europe/Berlin")


def _t(*args: int, tz: ZoneInfo = BERLIN) -> float:
    return datetime(*args, tzinfo=tz).timestamp()


def _wall(t: float) -> str:
    return datetime.fromtimestamp(t, BERLIN).strftime("%m-%d %H:%M %Z")


@pytest.fixture
def q(sqlite_url: str) -> reqrunner.JobQueue:
    return reqrunner.JobQueue(sqlite_url)


def test_bad_schedules_are_refused_at_declaration(q: reqrunner.JobQueue) -> None:
    with pytest.raises(ValueError, match=r"not a schedule .*'\*/15 \* \* \* \*'"):
        q.periodic("61 * * * *")
    with pytest.raises(ValueError, match="five-field cron"):
        q.periodic("* * * *")
    with pytest.raises(ValueError, match=r"every=0: .*more than 0.*timedelta\(hours=1\)"):
        q.periodic(every=0)
    with pytest.raises(ValueError, match="more than 0"):
        q.periodic(every=timedelta(seconds=-5))
    with pytest.raises(ValueError, match=r"not a time zone.*Europe/Berlin"):
        q.periodic("0 3 * * *", tz="Mars/Olympus")
    with pytest.raises(ValueError, match="catch_up='some'"):
        q.periodic(every=60, catch_up="some")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="exactly one"):
        q.periodic("0 3 * * *", every=60)
    with pytest.raises(TypeError, match="exactly one"):
        q.periodic()


def test_a_periodic_function_takes_nothing_or_only_its_context(q: reqrunner.JobQueue) -> None:
    with pytest.raises(TypeError, match=r"takes no arguments.*requires page"):

        @q.periodic(every=60, name="needs")
        def needs(page: str) -> None: ...

    assert "needs" not in q.jobs  # the refused job is not left registered

    @q.periodic(every=60, name="ctx")
    def with_context(ctx: JobContext) -> None: ...

    @q.periodic("0 3 * * *", name="plain", queue="nightly", priority=5, attempts=2)
    def plain() -> None: ...

    assert set(q.periodic_jobs.schedules) == {"ctx", "plain"}
    assert q.jobs["plain"].options.queue == "nightly"
    assert q.jobs["plain"].options.attempts == 2


def test_cron_in_a_time_zone_fires_at_wall_clock_times_across_dst(q: reqrunner.JobQueue) -> None:
    @q.periodic("30 2 * * *", tz="Europe/Berlin", name="nightly")
    def nightly() -> None: ...

    @q.periodic("0 * * * *", tz="Europe/Berlin", name="hourly")
    def hourly() -> None: ...

    s = q.periodic_jobs.schedules["nightly"]
    # Spring forward (29 March 2026): 02:30 does not exist; cron's rule runs it at 03:00.
    t = _t(2026, 3, 27, 12)
    got = []
    for _ in range(4):
        t = s.next_after(t)
        got.append(_wall(t))
    assert got == ["03-28 02:30 CET", "03-29 03:00 CEST", "03-30 02:30 CEST", "03-31 02:30 CEST"]
    # Fall back (25 October 2026): 02:30 happens twice; the job runs once, 24 h apart in UTC
    # terms only where the clock did not change.
    t = _t(2026, 10, 24, 12)
    slots = []
    for _ in range(3):
        t = s.next_after(t)
        slots.append(t)
    assert [_wall(x) for x in slots] == ["10-25 02:30 CEST", "10-26 02:30 CET", "10-27 02:30 CET"]
    assert slots[1] - slots[0] == 25 * 3600
    # An hourly job in the repeated hour runs for both 02:00s (they are an hour apart).
    h = q.periodic_jobs.schedules["hourly"]
    slots = h.due(_t(2026, 10, 25, 0, 30), _t(2026, 10, 25, 4, 0))
    assert [_wall(x) for x in slots] == [
        "10-25 01:00 CEST", "10-25 02:00 CEST", "10-25 02:00 CET", "10-25 03:00 CET",
        "10-25 04:00 CET",
    ]  # fmt: skip
    assert all(b - a == 3600 for a, b in itertools.pairwise(slots))


def _fire_over(q: reqrunner.JobQueue, start: float, end: float, step: float) -> list[int]:
    ids = []
    t = start
    while t <= end:
        ids += q.periodic_jobs.fire(t)
        t += step
    return ids


def test_dispatched_slots_fire_at_their_times_in_the_zone(q: reqrunner.JobQueue) -> None:
    # overlap: the jobs are not run here, and each slot must still be dispatched.
    @q.periodic("30 2 * * *", tz="Europe/Berlin", name="nightly", overlap=True)
    def nightly() -> None: ...

    periodic = q.periodic_jobs
    periodic.clock = lambda: _t(2026, 3, 27, 12)  # the process came up then
    ids = _fire_over(q, _t(2026, 3, 27, 12), _t(2026, 3, 31, 12), 600)
    jobs = [q.get(i) for i in ids]
    assert [j.unique_key for j in jobs if j] == [j.description for j in jobs if j]
    assert [j.description for j in jobs if j] == [
        "periodic slot 2026-03-28T02:30:00+01:00",
        "periodic slot 2026-03-29T03:00:00+02:00",
        "periodic slot 2026-03-30T02:30:00+02:00",
        "periodic slot 2026-03-31T02:30:00+02:00",
    ]


@pytest.mark.parametrize(("catch_up", "expected"), [("one", 1), ("skip", 0), ("all", 48)])
def test_after_a_quiet_period(q: reqrunner.JobQueue, catch_up: str, expected: int) -> None:
    @q.periodic(every=timedelta(minutes=30), name="half-hourly", catch_up=catch_up)  # type: ignore[arg-type]
    def half_hourly() -> None: ...

    periodic = q.periodic_jobs
    day = _t(2026, 6, 1, 0, 5)
    periodic.clock = lambda: day
    assert periodic.fire(day) == []  # the slot the schedule started in is not run
    first = periodic.fire(day + 1800)
    assert len(first) == 1  # the 00:30 slot
    q.run()  # it ran
    # Nobody came for a day: 48 slots were missed.
    later = periodic.fire(day + 1800 + 24 * 3600 + 60)
    assert len(later) == expected
    info = {s.name: s for s in q.periodic_jobs.describe()}["half-hourly"]
    assert info.last_slot is not None
    assert info.last_slot.timestamp() == day - 300 + 1800 * 49
    assert info.last_outcome == ("skipped" if catch_up == "skip" else "dispatched")
    # The schedule keeps time afterwards.
    q.run(max_jobs=None)
    assert len(periodic.fire(day + 1800 * 50)) == 1


def test_catch_up_all_is_bounded(q: reqrunner.JobQueue) -> None:
    @q.periodic(every=60, name="minutely", catch_up="all")
    def minutely() -> None: ...

    periodic = q.periodic_jobs
    periodic.clock = lambda: 1_700_000_000.0
    periodic.fire(1_700_000_000.0)
    assert len(periodic.fire(1_700_000_000.0 + 7 * 86400)) == reqrunner.periodic.MAX_CATCH_UP


def test_a_run_still_waiting_is_not_doubled_unless_overlap(q: reqrunner.JobQueue) -> None:
    @q.periodic(every=60, name="single")
    def single() -> None: ...

    @q.periodic(every=60, name="double", overlap=True)
    def double() -> None: ...

    periodic = q.periodic_jobs
    t = 1_700_000_000.0
    periodic.clock = lambda: t
    periodic.fire(t)
    assert len(periodic.fire(t + 60)) == 2  # one each
    # Nothing ran; the next slot comes.
    ids = periodic.fire(t + 120)
    assert [q.get(i).name for i in ids] == ["double"]  # type: ignore[union-attr]
    outcome = {s.name: s.last_outcome for s in periodic.describe()}
    assert outcome == {"single": "overlap", "double": "dispatched"}
    q.run()
    assert len(periodic.fire(t + 180)) == 2


def test_queue_run_fires_the_schedules_and_runs_their_jobs(q: reqrunner.JobQueue) -> None:
    ran = []

    @q.periodic(every=1, name="tick")
    def tick(ctx: JobContext) -> None:
        ran.append(ctx.job_id)

    q.run()  # the first look only notes the current slot
    assert ran == []
    assert q.next_due_in() is not None and q.next_due_in() <= 1.0  # type: ignore[operator]
    time.sleep(1.05)
    assert q.has_due()
    report = q.run()
    assert report.ran == 1 and len(ran) == 1


def test_a_removed_schedule_stops_firing_and_its_history_stays(sqlite_url: str) -> None:
    first = reqrunner.JobQueue(sqlite_url, keep_done=True)

    @first.periodic(every=60, name="old")
    def old() -> None: ...

    first.periodic_jobs.clock = lambda: 1_700_000_000.0
    first.periodic_jobs.fire(1_700_000_000.0)
    (job_id,) = first.periodic_jobs.fire(1_700_000_060.0)
    first.run()
    # The next deploy no longer declares it.
    second = reqrunner.JobQueue(sqlite_url, keep_done=True)
    assert second.periodic_jobs.fire(1_700_000_600.0) == []
    assert second.periodic_jobs.describe() == []
    done = second.get(job_id)
    assert done is not None and done.state == "done" and done.name == "old"
