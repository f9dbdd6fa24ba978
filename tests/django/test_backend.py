"""ReqrunnerBackend in this process: Django's documented behaviour of a backend, results,
signals, transactions, and how the runner finds the tasks. The same tests run on Django 5.2
with the django_tasks backport and on Django 6 (CI's second interpreter)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from datetime import timedelta
from typing import Any

import pytest

from reqrunner import JobState


def _backend(alias: str = "default") -> Any:
    from reqrunner.django.compat import task_backends  # noqa: PLC0415

    return task_backends[alias]


def test_the_backend_says_what_it_supports(queue: Any) -> None:
    backend = _backend()
    assert (backend.supports_defer, backend.supports_priority) == (True, True)
    assert (backend.supports_get_result, backend.supports_async_task) == (True, True)
    assert backend.queue is queue
    import djsite.jobs  # noqa: PLC0415

    assert queue is djsite.jobs.queue  # OPTIONS["QUEUE"] named it


def test_a_task_runs_and_its_result_is_kept(queue: Any) -> None:
    from djsite import tasks  # noqa: PLC0415

    result = tasks.add.enqueue(2, 3)
    assert result.status == "READY" and result.id.isdigit() and result.args == [2, 3]
    info = queue.get(int(result.id))
    assert info.name == "djsite.tasks.add"  # the admin and the CLI show the Django name
    assert queue.run().succeeded == 1
    assert queue.stats().total == 0  # the job's row is gone (keep_done is off) ...
    done = tasks.add.get_result(result.id)  # ... its result is not
    assert done.status == "SUCCESSFUL" and done.return_value == 5
    assert done.enqueued_at <= done.started_at <= done.finished_at
    assert done.last_attempted_at == done.started_at
    assert done.args == [2, 3] and done.kwargs == {} and done.errors == []
    assert len(done.worker_ids) == 1 and ":" in done.worker_ids[0]
    assert queue.get(int(result.id)).result == 5  # the same value for reqrunner's own API
    until = queue.get(int(result.id)).result_until.timestamp()
    assert until == pytest.approx(time.time() + 86400, abs=60)  # RESULT_TTL: a day


def test_a_failing_task_is_failed_with_path_and_traceback(queue: Any) -> None:
    from djsite import tasks  # noqa: PLC0415

    result = tasks.fail.enqueue("no such order")
    queue.run()
    failed = tasks.fail.get_result(result.id)
    assert failed.status == "FAILED"
    (error,) = failed.errors
    assert error.exception_class_path == "builtins.LookupError"
    assert error.exception_class is LookupError
    assert "no such order" in error.traceback and 'tasks.py", line' in error.traceback
    with pytest.raises(ValueError, match="failed"):
        _ = failed.return_value


def test_run_after_an_hour_stays_ready_and_priority_orders(queue: Any) -> None:
    from django.utils import timezone  # noqa: PLC0415
    from djsite import tasks  # noqa: PLC0415

    later = tasks.add.using(run_after=timezone.now() + timedelta(hours=1)).enqueue(1, 1)
    low = tasks.add.using(priority=-100).enqueue(0, 1)
    high = tasks.add.using(priority=100).enqueue(0, 2)
    middle = tasks.add.using(priority=5).enqueue(0, 3)
    info = queue.get(int(later.id))
    assert info.available_at.timestamp() == pytest.approx(time.time() + 3600, abs=60)
    order = [j.id for j in queue.list_jobs(state="due")]
    assert order == [int(high.id), int(middle.id), int(low.id)]
    assert queue.run().succeeded == 3
    assert tasks.add.get_result(later.id).status == "READY"


def test_takes_context_gets_reqrunner_s_attempt(queue: Any) -> None:
    from djsite import tasks  # noqa: PLC0415

    result = tasks.whoami.enqueue("hello")
    queue.run()
    value = tasks.whoami.get_result(result.id).return_value
    assert value == {"attempt": 1, "id": result.id, "tag": "hello"}


def test_an_async_task_runs(queue: Any) -> None:
    from djsite import tasks  # noqa: PLC0415

    result = tasks.double_later.enqueue(21)
    queue.run()
    assert tasks.double_later.get_result(result.id).return_value == 42


def test_signals_are_sent(queue: Any) -> None:
    from djsite import tasks  # noqa: PLC0415

    from reqrunner.django import ReqrunnerBackend  # noqa: PLC0415
    from reqrunner.django.compat import task_enqueued, task_finished, task_started  # noqa: PLC0415

    seen: list[tuple[str, str, str]] = []

    def receiver(signal_name: str) -> Any:
        def record(sender: type, task_result: Any, **kwargs: Any) -> None:
            assert sender is ReqrunnerBackend
            seen.append((signal_name, task_result.task.name, str(task_result.status)))

        return record

    handlers = [(s, receiver(n)) for s, n in ((task_enqueued, "enqueued"),
                (task_started, "started"), (task_finished, "finished"))]  # fmt: skip
    for signal, handler in handlers:
        signal.connect(handler)
    try:
        tasks.add.enqueue(1, 2)
        tasks.fail.enqueue("x")
        queue.run()
    finally:
        for signal, handler in handlers:
            signal.disconnect(handler)
    assert seen == [
        ("enqueued", "add", "READY"),
        ("enqueued", "fail", "READY"),
        ("started", "add", "RUNNING"),
        ("finished", "add", "SUCCESSFUL"),
        ("started", "fail", "RUNNING"),
        ("finished", "fail", "FAILED"),
    ]


def test_enqueue_on_commit(queue: Any) -> None:
    from django.db import transaction  # noqa: PLC0415
    from djsite import tasks  # noqa: PLC0415

    rolled_back = None
    try:
        with transaction.atomic():
            rolled_back = tasks.add.enqueue(40, 2)
            raise RuntimeError("the order failed")
    except RuntimeError:
        pass
    assert rolled_back is not None and queue.stats().total == 0
    from reqrunner.django.compat import TaskResultDoesNotExist  # noqa: PLC0415

    with pytest.raises(TaskResultDoesNotExist):
        tasks.add.get_result(rolled_back.id)
    with transaction.atomic():
        committed = tasks.add.enqueue(20, 22)
        assert queue.stats().total == 0  # not before the commit
    assert queue.stats().waiting == 1
    assert tasks.add.get_result(committed.id).status == "READY"
    queue.run()
    assert tasks.add.get_result(committed.id).return_value == 42


def test_unknown_and_pruned_ids_do_not_exist(queue: Any) -> None:
    from djsite import tasks  # noqa: PLC0415

    from reqrunner.django.compat import TaskResultDoesNotExist  # noqa: PLC0415

    backend = _backend()
    for unknown in ("999999", "c" + "0" * 32, "nonsense", ""):
        with pytest.raises(TaskResultDoesNotExist):
            backend.get_result(unknown)
    plain = queue.dispatch("some.plain.job")  # a reqrunner job, not a Django task
    with pytest.raises(TaskResultDoesNotExist):
        backend.get_result(str(plain))
    queue.delete(plain)
    brief = tasks.brief.enqueue()
    queue.run()
    assert tasks.brief.get_result(brief.id).return_value == "gone soon"
    time.sleep(0.6)  # RESULT_TTL of the "brief" backend: half a second
    queue.prune()
    with pytest.raises(TaskResultDoesNotExist):
        tasks.brief.get_result(brief.id)


def test_django_s_documented_validation(queue: Any) -> None:
    from reqrunner.django.compat import InvalidTask, Task  # noqa: PLC0415

    try:
        from django.tasks import task  # noqa: PLC0415
    except ImportError:
        from django_tasks import task  # noqa: PLC0415
    from djsite import tasks  # noqa: PLC0415

    with pytest.raises(InvalidTask, match="priority"):
        task(priority=101)(tasks.add.func)
    with pytest.raises(InvalidTask, match="priority"):
        tasks.add.using(priority=-101)
    with pytest.raises(InvalidTask, match="Queue 'elsewhere' is not valid"):
        tasks.add.using(queue_name="elsewhere")
    assert tasks.send.queue_name == "mail"  # listed in QUEUES

    def nested() -> None: ...

    with pytest.raises(InvalidTask, match="module level"):
        task(nested)
    with pytest.raises(InvalidTask, match="context"):
        task(takes_context=True)(tasks.add.func)
    assert isinstance(tasks.send, Task)
    with pytest.raises(TypeError, match=r"djsite\.tasks\.add"):
        tasks.add.enqueue(1, 2, 3)  # arguments that cannot fit are refused at enqueue
    with pytest.raises(TypeError):
        tasks.add.enqueue(1, object())  # not JSON
    assert queue.stats().total == 0


def test_the_runner_fails_unknown_and_unimportable_tasks_clearly(queue: Any) -> None:
    gone = queue.dispatch("djsite.tasks.no_such_task")
    broken = queue.dispatch("djsite.broken_tasks.anything")
    queue.run()
    unknown, unimportable = queue.get(gone), queue.get(broken)
    # Both wait for a retry (another process may know them), with the reason recorded.
    assert unknown.state is unimportable.state is JobState.WAITING
    assert unknown.error.type == "reqrunner.UnknownJob"
    assert "djsite.tasks.no_such_task" in unknown.error.message
    assert unimportable.error.type == "ImportError"
    assert "djsite.broken_tasks" in unimportable.error.message
    assert "ZeroDivisionError" in unimportable.error.message


def test_aenqueue_does_not_block_the_event_loop(queue: Any) -> None:
    from djsite import tasks  # noqa: PLC0415

    # Another writer holds the SQLite database for half a second: the enqueue waits for it.
    holder = sqlite3.connect(queue.engine.url.database, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    threading.Timer(0.5, holder.commit).start()

    async def main() -> tuple[Any, int]:
        ticks = 0
        waiting = asyncio.ensure_future(tasks.add.aenqueue(1, 1))
        while not waiting.done():
            ticks += 1
            await asyncio.sleep(0.01)
        return waiting.result(), ticks

    result, ticks = asyncio.run(main())
    holder.close()
    assert result.status == "READY"
    assert ticks >= 20  # the loop ran on while the enqueue waited


def test_options_are_checked() -> None:
    from reqrunner.django.options import BackendOptions  # noqa: PLC0415

    for bad, message in (
        ({"QUEUE": "mysite.jobs"}, "module:attr"),
        ({"RESULT_TTL": 0}, "RESULT_TTL"),
        ({"MAX_ATTEMPTS": 0}, "MAX_ATTEMPTS"),
        ({"RESULTS": 1}, "unknown option"),
    ):
        with pytest.raises(ValueError, match=message):
            BackendOptions.parse("default", bad)
    with pytest.raises(TypeError, match="ENQUEUE_ON_COMMIT"):
        BackendOptions.parse("default", {"ENQUEUE_ON_COMMIT": "yes"})
    assert BackendOptions.parse("x", {"RESULT_TTL": timedelta(hours=2)}).result_ttl == 7200


def test_import_reqrunner_loads_no_django() -> None:
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    code = (
        "import sys, reqrunner, reqrunner.cli.app, reqrunner.cli.main\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'django_tasks'))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
