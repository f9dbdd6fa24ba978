"""The words ``reqrunner --help`` and ``reqrunner VERB --help`` print: the main epilog and, per
verb, its one-line summary and its description with examples."""

from __future__ import annotations

__all__ = ["EPILOG_MAIN", "VERBS"]

EPILOG_MAIN = """\
The JobQueue comes from --app module:attr (or REQRUNNER_APP), the object your site builds,
so that its @queue.job functions are registered. --db URL (or REQRUNNER_DATABASE_URL) points
it at another database. Both can go before or after the verb.

examples:
  reqrunner --app mysite.jobs:queue run --max-time 50       # from cron, every minute
  reqrunner --app mysite.jobs:queue work --sleep 3          # a daemon under systemd/supervisor
  reqrunner --app mysite.jobs:queue failed
  reqrunner --app mysite.jobs:queue retry --all
  REQRUNNER_SECRET=... reqrunner ping https://example.org/_reqrunner   # a quiet site's cron
"""

VERBS: dict[str, tuple[str, str]] = {
    "run": (
        "run the due jobs now, then exit (for cron)",
        "Claim and run due jobs until none is due or a limit is reached. Exits 0 when it ran\n"
        "cleanly, even if jobs failed (they are recorded for `failed` and `retry`).\n\n"
        "examples:\n"
        "  reqrunner run                        # everything due, no time bound\n"
        "  reqrunner run --max-time 50          # from a cron line that fires every minute\n"
        "  reqrunner run --once --queue mail    # exactly one job of the 'mail' queue",
    ),
    "work": (
        "run jobs as they come, until stopped (a daemon)",
        "Wait for jobs and run them one by one. On PostgreSQL it wakes as soon as a job is\n"
        "dispatched (LISTEN/NOTIFY); elsewhere it looks again every --sleep seconds.\n"
        "SIGTERM or SIGINT: finish the current job, then exit 0; a second signal exits at once.\n"
        "--max-jobs, --max-time and --max-memory make it exit 0 so that a process monitor\n"
        "starts it afresh; `reqrunner restart` makes every worker do so.\n\n"
        "examples:\n"
        "  reqrunner work\n"
        "  reqrunner work --queue mail --queue default --sleep 1\n"
        "  reqrunner work --max-time 3600 --max-memory 256M",
    ),
    "restart": (
        "make every running worker exit after its current job",
        "Store a restart time in the database; each `work` process sees it between jobs and\n"
        "exits 0, so that its process monitor starts it with the new code.\n\n"
        "example:\n  reqrunner restart      # after a deploy",
    ),
    "list": (
        "list jobs",
        "List jobs, most urgent first.\n\n"
        "examples:\n"
        "  reqrunner list\n"
        "  reqrunner list --state reserved\n"
        "  reqrunner list --state failed --queue mail --json",
    ),
    "failed": (
        "list failed jobs",
        "List the jobs whose attempts are spent, with their last error.\n\n"
        "examples:\n  reqrunner failed\n  reqrunner failed --json | jq '.[].id'",
    ),
    "show": (
        "show one job, with traceback, history and progress",
        "example:\n  reqrunner show 42",
    ),
    "stats": (
        "counts per state, the oldest due job's age, workers seen, trigger health",
        "Also lists where the latest runs came from (page views, the tick URL, cron, workers)\n"
        "and warns when runs are further apart than the tightest periodic schedule or the\n"
        "oldest due job has waited long; --site prints the tick URL to give an uptime monitor.\n\n"
        "examples:\n  reqrunner stats\n  reqrunner stats --json\n"
        "  reqrunner stats --site https://example.org/_reqrunner",
    ),
    "periodic": (
        "list the periodic jobs: schedule, next slot, last slot and its outcome",
        "examples:\n  reqrunner periodic\n  reqrunner periodic --json",
    ),
    "retry": (
        "put failed jobs back in the queue",
        "Make the given jobs (or --all failed jobs) due now, with their attempts reset.\n\n"
        "examples:\n  reqrunner retry 42 43\n  reqrunner retry --all",
    ),
    "delete": (
        "delete jobs",
        "examples:\n  reqrunner delete 42\n  reqrunner delete --all-failed",
    ),
    "release": (
        "free a stuck reservation",
        "Put a reserved job back to waiting now, without waiting for its lease to expire\n"
        "(when you know its runner is gone).\n\nexample:\n  reqrunner release 42",
    ),
    "prune": (
        "delete old failed and done jobs",
        "examples:\n"
        "  reqrunner prune                                 # failed > 180 days, done > 7 days\n"
        "  reqrunner prune --failed-older-than 30d --done-older-than 12h",
    ),
    "doctor": (
        "check whether jobs will actually run on this host",
        "Check the job store, how page views run jobs on the live site (the mode auto picks,\n"
        "the signed self-request, the page's CSP, whether Authorization reaches the app, the\n"
        "tick URL), the memory limit against max_memory, and recent activity; each finding in\n"
        "plain words with what to do. --app may name the middleware your server runs (it knows\n"
        "mode, self_url, path and limits) or a JobQueue. Exits 1 when something stops jobs from\n"
        "running. The reachability checks start a bounded run of due jobs, as a tick does.\n\n"
        "examples:\n"
        "  reqrunner --app mysite.wsgi:application doctor --url https://example.org\n"
        "  reqrunner --app mysite.jobs:queue doctor --json",
    ),
    "ping": (
        "ask a running site to run its due jobs (signed request)",
        "POST a signed request to the site's run endpoint, as reqrunner's own middleware does,\n"
        "and report the answer (202 = accepted). The secret is --secret, else REQRUNNER_SECRET,\n"
        "else the one stored in the site's database (needs --app or --db). Exits 1 unless the\n"
        "site accepted. Meant for quiet sites' cron, even on another machine.\n\n"
        "examples:\n"
        "  REQRUNNER_SECRET=... reqrunner ping https://example.org/_reqrunner\n"
        "  reqrunner --app mysite.jobs:queue ping http://127.0.0.1:8000/_reqrunner",
    ),
}
