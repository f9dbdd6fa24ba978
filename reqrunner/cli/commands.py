"""The verbs of the ``reqrunner`` console script, one function each, over a loaded ``JobQueue``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from ..errors import JobNotFound, ReqRunnerError
from ..models import Limits
from ..queue import JobQueue
from .app import EXIT_FAILURE, EXIT_OK, UsageError, load_queue
from .output import Output
from .schedules import periodic, stats
from .worker import Worker, request_restart

__all__ = ["run_command"]


def _limits(args: argparse.Namespace) -> Limits:
    return Limits(
        max_jobs=1 if getattr(args, "once", False) else args.max_jobs,
        max_time=args.max_time,
        max_memory=args.max_memory,
    )


def _run(queue: JobQueue, args: argparse.Namespace, out: Output) -> int:
    limits = _limits(args)
    due = 1 if args.once else queue.stats().waiting
    with out.progress(due) as bar:
        report = queue.run(limits, queues=args.queues, should_stop=bar.tick, via="cli-run")
    out.report(report)
    return EXIT_OK


def _work(queue: JobQueue, args: argparse.Namespace, out: Output) -> int:
    worker = Worker(queue, sleep=args.sleep, limits=_limits(args), queues=args.queues)
    return worker.work()


def _restart(queue: JobQueue, args: argparse.Namespace, out: Output) -> int:
    request_restart(queue)
    out.line("Restart requested: every running worker exits after its current job.")
    return EXIT_OK


def _shown(out: Output, shown: int, total: int) -> None:
    # A list cut at --limit says so, and how to see the rest.
    if total > shown:
        out.line(f"{shown} of {total} jobs shown; --limit {total} shows them all.")


def _list(queue: JobQueue, args: argparse.Namespace, out: Output) -> int:
    filters = {"state": args.state, "queue": args.queue, "name": args.name}
    jobs = queue.list_jobs(**filters, limit=args.limit)
    out.jobs(jobs)
    if len(jobs) == args.limit:
        _shown(out, len(jobs), queue.count_jobs(**filters))
    return EXIT_OK


def _failed(queue: JobQueue, args: argparse.Namespace, out: Output) -> int:
    jobs = queue.list_jobs(state="failed", limit=args.limit)
    out.jobs(jobs, empty="No failed jobs.")
    if len(jobs) == args.limit:
        _shown(out, len(jobs), queue.count_jobs("failed"))
    return EXIT_OK


def _show(queue: JobQueue, args: argparse.Namespace, out: Output) -> int:
    job = queue.get(args.job_id)
    if job is None:
        return _refused(queue, [args.job_id], "show")
    out.job(job)
    return EXIT_OK


_PAST = {"retry": "retried", "delete": "deleted", "release": "released"}


def _refused(queue: JobQueue, ids: list[int], verb: str) -> int:
    """Say why each of ``ids`` was left alone: gone, or in a state ``verb`` does not apply to."""
    for job_id in ids:
        job = queue.get(job_id)
        if job is None:
            why = f"job {job_id} not found (it may have finished and been deleted)"
        else:
            state = "delayed" if job.delayed else job.state.value
            why = f"job {job_id} is {state}, it cannot be {_PAST.get(verb, verb)}"
        print(f"reqrunner {verb}: error: {why}", file=sys.stderr)
    return EXIT_FAILURE


def _each(
    queue: JobQueue, ids: list[int], action: Callable[[int], bool], verb: str, out: Output
) -> int:
    """Apply ``action`` to each id; the ids it refused (False: a state it does not apply
    to) or did not find (``JobNotFound``) are explained on stderr."""
    done: list[int] = []
    refused: list[int] = []
    for job_id in ids:
        try:
            applied = action(job_id)
        except JobNotFound:
            applied = False
        (done if applied else refused).append(job_id)
    if done:
        out.line(f"{verb.capitalize()}: job(s) {', '.join(str(i) for i in done)}.")
    return _refused(queue, refused, verb) if refused else EXIT_OK


def _retry(queue: JobQueue, args: argparse.Namespace, out: Output) -> int:
    return _ids_or_all(queue, args, out, "retry", all_flag="all")


def _delete(queue: JobQueue, args: argparse.Namespace, out: Output) -> int:
    return _ids_or_all(queue, args, out, "delete", all_flag="all_failed")


def _ids_or_all(
    queue: JobQueue, args: argparse.Namespace, out: Output, verb: str, *, all_flag: str
) -> int:
    # `retry ID…` / `retry --all` and `delete ID…` / `delete --all-failed`: one or the other.
    every = getattr(args, all_flag)
    if every == bool(args.job_ids):
        raise UsageError(f"give job ids or --{all_flag.replace('_', '-')} (not both)")
    if every:
        if verb == "retry":
            out.line(f"Retrying {queue.retry_failed()} failed job(s).")
        else:
            out.line(f"Deleted {queue.delete_failed()} failed job(s).")
        return EXIT_OK
    return _each(queue, args.job_ids, getattr(queue, verb), verb, out)


def _release(queue: JobQueue, args: argparse.Namespace, out: Output) -> int:
    return _each(queue, args.job_ids, queue.release, "release", out)


def _prune(queue: JobQueue, args: argparse.Namespace, out: Output) -> int:
    count = queue.prune(
        failed_older_than=args.failed_older_than, done_older_than=args.done_older_than
    )
    out.line(f"Pruned {count} job(s).")
    return EXIT_OK


_COMMANDS: dict[str, Callable[[JobQueue, argparse.Namespace, Output], int]] = {
    "run": _run,
    "work": _work,
    "restart": _restart,
    "list": _list,
    "failed": _failed,
    "show": _show,
    "stats": stats,
    "periodic": periodic,
    "retry": _retry,
    "delete": _delete,
    "release": _release,
    "prune": _prune,
}


def run_command(args: argparse.Namespace) -> int:
    """Load the queue the arguments name and run the verb; database trouble exits 1."""
    out = Output(json=getattr(args, "json", False))
    if args.verb == "ping":
        # Only ping talks HTTP: run, work and the rest never import httpx or the web side.
        from .ping import ping  # noqa: PLC0415

        return ping(args, out)
    if args.verb == "doctor":
        # Like ping, doctor talks HTTP and reads the web side.
        from .doctor import doctor  # noqa: PLC0415

        return doctor(args, out)
    queue = load_queue(args.app, args.db, need_jobs=args.verb in ("run", "work", "periodic"))
    existed = queue.dialect.store_exists()
    try:
        status = _COMMANDS[args.verb](queue, args, out)
    except ReqRunnerError as exc:
        # StoreError and friends carry a readable message already (URL with password hidden).
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if queue.url not in first:
            first += f" (job database {queue.url})"
        print(f"reqrunner {args.verb}: error: {first}", file=sys.stderr)
        return EXIT_FAILURE
    else:
        if status == EXIT_OK:
            _name_database(args.verb, queue.url, existed)
        return status
    finally:
        queue.close()


def _name_database(verb: str, url: str, existed: bool) -> None:
    # On stderr, so that --json output stays one JSON document: which database this was (a
    # relative SQLite path, and the default one, differ with the current directory).
    print(f"reqrunner {verb}: job database {url}", file=sys.stderr)
    if not existed:
        print(
            f"reqrunner {verb}: warning: there was no job database at {url}, so a new, empty "
            "one was created; run from the site's directory, or name the site's with --db or "
            "REQRUNNER_DATABASE_URL",
            file=sys.stderr,
        )
