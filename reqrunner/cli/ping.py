"""``reqrunner ping URL``: ask a running site to run its due jobs, for quiet sites' cron.

It sends what reqrunner's own ``async`` mode sends: a POST of a token signed with the site's
secret to ``{path}/run``. The site answers ``202`` and runs a bounded batch after its response.
"""

from __future__ import annotations

import argparse
import os
import sys

import httpx

from ..web.routes import RUN_PURPOSE
from ..web.signing import Signer
from .app import EXIT_FAILURE, EXIT_OK, UsageError, load_queue
from .output import Output

__all__ = ["ping", "run_url"]

TOKEN_TTL = 60.0
"""Seconds a ping's token stays valid: enough for clock skew between the two machines."""


def run_url(url: str) -> str:
    """``https://x/_reqrunner`` (or ``…/_reqrunner/run``) -> the run endpoint's URL."""
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"{url!r} is not an http:// or https:// URL")
    url = url.rstrip("/")
    return url if url.endswith("/run") else url + "/run"


def _secret(args: argparse.Namespace) -> str:
    secret = args.secret or os.environ.get("REQRUNNER_SECRET")
    if secret:
        return str(secret)
    if not (args.app or args.db or os.environ.get("REQRUNNER_APP")):
        raise UsageError(
            "no secret: pass --secret, set REQRUNNER_SECRET, or give --app/--db so the secret "
            "stored in the site's database can be read"
        )
    queue = load_queue(args.app, args.db, need_jobs=False)
    try:
        return queue.secret
    finally:
        queue.close()


def ping(args: argparse.Namespace, out: Output) -> int:
    """POST a signed run request to ``args.url``; exit 0 only when the site answered 202."""
    url = run_url(args.url)
    token = Signer(_secret(args)).sign(RUN_PURPOSE, ttl=TOKEN_TTL)
    try:
        with httpx.Client(timeout=args.timeout) as client:
            response = client.post(url, data={"token": token})
    except httpx.HTTPError as exc:
        print(f"reqrunner ping: error: {url}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    accepted = response.status_code == 202
    if out.json:
        out.data({"url": url, "status": response.status_code, "accepted": accepted})
    elif accepted:
        out.line(f"{url}: 202 Accepted, the site runs its due jobs now.")
    else:
        hint = " (wrong secret?)" if response.status_code == 403 else ""
        print(
            f"reqrunner ping: error: {url} answered {response.status_code} "
            f"{response.reason_phrase}{hint}, not 202",
            file=sys.stderr,
        )
    return EXIT_OK if accepted else EXIT_FAILURE
