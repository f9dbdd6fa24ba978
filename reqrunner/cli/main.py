"""The ``reqrunner`` console script (also ``python -m reqrunner``): parsing and dispatch.

Each verb is a function in :mod:`reqrunner.cli.commands`; the ``work`` daemon lives in
:mod:`reqrunner.cli.worker`, rendering in :mod:`reqrunner.cli.output`. This module only turns a
command line into a call and an exception into a one-line message and an exit status:

- 0  the command did what was asked (a ``run`` whose jobs failed still exits 0: they are recorded);
- 1  it could not: the database is unreachable, a job id is unknown, a ping was refused;
- 2  the command line itself is wrong: an unknown verb, a bad option value, a missing ``--app``;
- 141 the reader of its output went away (``reqrunner list | head``): it stops quietly, as
  other command-line tools do on SIGPIPE.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import sys
from collections.abc import Sequence
from datetime import timedelta
from typing import NoReturn

from .. import __version__
from ..models import Limits
from .app import EXIT_USAGE, UsageError
from .commands import run_command
from .help import EPILOG_MAIN, VERBS
from .output import on_terminal, stderr_console

__all__ = ["EXIT_PIPE", "build_parser", "main"]

EXIT_PIPE = 141
"""128 + SIGPIPE: what a shell reports for a tool whose reader closed the pipe."""


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line, pointing at ``--help``."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _max_memory(text: str) -> int | float | str:
    """``--max-memory``: a percentage (``80``, ``80%``) or a size (``128M``), checked at once."""
    value: int | float | str = text
    with contextlib.suppress(ValueError):
        value = float(text)
    try:
        Limits(max_jobs=None, max_time=None, max_memory=value)
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc).replace("max_memory=", "")) from None
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return value


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _duration(text: str) -> timedelta:
    """``180d``, ``12h``, ``30m``, ``90s``, ``2w`` -> ``timedelta``."""
    match = _DURATION.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration: write a number and a unit, e.g. 180d, 12h, 30m, 90s, 2w"
        )
    return timedelta(seconds=float(match[1]) * _UNIT_SECONDS[match[2].lower()])


def _common_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    # On the verbs the defaults are SUPPRESS so that `reqrunner --app x run` keeps the --app
    # given before the verb: argparse would otherwise overwrite it with the verb's default.
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--app",
        metavar="MODULE:ATTR",
        default=default,
        help="your JobQueue, e.g. mysite.jobs:queue, or a Django settings module "
        "(default: $REQRUNNER_APP, else $DJANGO_SETTINGS_MODULE)",
    )
    parser.add_argument(
        "--db",
        metavar="URL",
        default=default,
        help="use this database instead of the queue's own (default: $REQRUNNER_DATABASE_URL)",
    )
    flags = (
        ("-v", "--verbose", "log more (debug)"),
        ("-q", "--quiet", "log only warnings and errors"),
    )
    for short, long, what in flags:
        off: str | bool = argparse.SUPPRESS if suppress else False
        parser.add_argument(short, long, action="store_true", default=off, help=what)


def _limit_options(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--max-jobs",
        type=_positive_int,
        metavar="N",
        help=f"{what} after N jobs (default: no bound)",
    )
    parser.add_argument(
        "--max-time",
        type=_seconds,
        metavar="S",
        help=f"{what} when the next job would not fit in S seconds (default: no bound)",
    )
    parser.add_argument(
        "--max-memory",
        type=_max_memory,
        default=80,
        metavar="P|SIZE",
        help=f"{what} when the process uses more: a percentage of its memory limit or a size "
        "like 256M (default: 80)",
    )
    parser.add_argument(
        "--queue",
        dest="queues",
        action="append",
        metavar="Q",
        help="only jobs of this queue; repeat for several (default: all queues)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (exposed so the docs and tests can inspect it)."""
    parser = _Parser(
        prog="reqrunner",
        description="Run and manage reqrunner's background jobs from a shell, cron or a service.",
        epilog=EPILOG_MAIN,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common_options(parser, suppress=False)
    parser.add_argument("--version", action="version", version=f"reqrunner {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    verbs.required = True
    sub: dict[str, argparse.ArgumentParser] = {}
    for name, (summary, details) in VERBS.items():
        sub[name] = verbs.add_parser(
            name,
            help=summary,
            description=f"{summary[0].upper()}{summary[1:]}.\n\n{details}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        _common_options(sub[name], suppress=True)

    run = sub["run"]
    run.add_argument("--once", action="store_true", help="run at most one job")
    _limit_options(run, "stop")
    run.add_argument("--json", action="store_true", help="print the run's report as JSON")

    work = sub["work"]
    work.add_argument(
        "--sleep",
        type=_seconds,
        default=3.0,
        metavar="S",
        help="when idle, look for jobs every S seconds (default: 3; on PostgreSQL a dispatch "
        "wakes the worker at once)",
    )
    _limit_options(work, "exit")

    lister = sub["list"]
    lister.add_argument(
        "--state",
        choices=["waiting", "due", "delayed", "reserved", "failed", "done"],
        help="only jobs in this state (waiting = due + delayed)",
    )
    lister.add_argument("--queue", metavar="Q", help="only jobs of this queue")
    lister.add_argument("--name", metavar="NAME", help="only jobs of this job name")
    lister.add_argument(
        "--limit", type=_positive_int, default=50, metavar="N", help="at most N jobs (default 50)"
    )
    sub["failed"].add_argument(
        "--limit", type=_positive_int, default=50, metavar="N", help="at most N jobs (default 50)"
    )
    sub["show"].add_argument("job_id", type=int, metavar="ID", help="the job's id")
    sub["stats"].add_argument(
        "--site", metavar="URL", help="the site's reqrunner path, to print its tick URL"
    )
    for name in ("list", "failed", "show", "stats", "periodic", "ping"):
        sub[name].add_argument("--json", action="store_true", help="print JSON, for scripts")

    retry = sub["retry"]
    retry.add_argument("job_ids", type=int, nargs="*", metavar="ID", help="jobs to retry")
    retry.add_argument("--all", action="store_true", help="retry every failed job")
    delete = sub["delete"]
    delete.add_argument("job_ids", type=int, nargs="*", metavar="ID", help="jobs to delete")
    delete.add_argument("--all-failed", action="store_true", help="delete every failed job")
    sub["release"].add_argument("job_ids", type=int, nargs="+", metavar="ID", help="jobs to free")

    prune = sub["prune"]
    prune.add_argument(
        "--failed-older-than",
        type=_duration,
        default=timedelta(days=180),
        metavar="AGE",
        help="delete failed jobs that failed longer ago than AGE (default: 180d)",
    )
    prune.add_argument(
        "--done-older-than",
        type=_duration,
        default=timedelta(days=7),
        metavar="AGE",
        help="delete done jobs that finished longer ago than AGE (default: 7d)",
    )

    doc = sub["doctor"]
    doc.add_argument(
        "--url",
        metavar="URL",
        help="the site's public address, e.g. https://example.org (default: the middleware's "
        "self_url); the reachability checks go there",
    )
    doc.add_argument(
        "--timeout", type=_seconds, default=5.0, metavar="S", help="per request (default 5)"
    )
    doc.add_argument("--json", action="store_true", help="print JSON, for scripts")

    ping = sub["ping"]
    ping.add_argument(
        "url", metavar="URL", help="the site's reqrunner path, e.g. https://x/_reqrunner"
    )
    ping.add_argument("--secret", help="the site's secret (default: $REQRUNNER_SECRET)")
    ping.add_argument(
        "--timeout", type=_seconds, default=10.0, metavar="S", help="give up after S seconds (10)"
    )
    return parser


def _configure_logging(args: argparse.Namespace) -> None:
    # run and work report each job on the "reqrunner" logger (start, finish, failure); the
    # management verbs only need warnings.
    chatty = args.verb in ("run", "work")
    level = logging.INFO if chatty else logging.WARNING
    if args.verbose:
        level = logging.DEBUG
    elif args.quiet:
        level = logging.WARNING
    handler: logging.Handler
    if on_terminal(sys.stderr):
        from rich.logging import RichHandler  # noqa: PLC0415 (only for a terminal)

        handler = RichHandler(console=stderr_console(), show_path=False, markup=False)
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])


def main(argv: Sequence[str] | None = None) -> int:
    """Run the console script with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args)
    try:
        return run_command(args)
    except UsageError as exc:
        print(f"reqrunner {args.verb}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        # Ctrl-C in a management verb: no traceback; `work` handles its own signals.
        print("reqrunner: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Whatever is still buffered would fail again when Python flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_PIPE
