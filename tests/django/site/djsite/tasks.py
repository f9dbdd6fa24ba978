"""The project's tasks, written against Django's own API only."""

import asyncio

try:
    from django.tasks import task
except ImportError:  # Django 5.2: the backport
    from django_tasks import task


@task
def add(a: int, b: int) -> int:
    return a + b


@task
def fail(message: str) -> None:
    raise LookupError(message)


@task(takes_context=True)
def whoami(context, tag: str) -> dict[str, object]:
    return {"attempt": context.attempt, "id": context.task_result.id, "tag": tag}


@task
async def double_later(n: int) -> int:
    await asyncio.sleep(0.01)
    return 2 * n


@task(queue_name="mail", priority=50)
def send(to: str) -> str:
    return f"sent to {to}"


@task(backend="brief")
def brief() -> str:
    return "gone soon"


@task
def nap(seconds: float) -> float:
    """Slow on purpose: how long a visitor waits for the run after their page shows."""
    import time  # noqa: PLC0415

    time.sleep(seconds)
    return seconds
