"""``python -m demo_app [--wsgi] [--host H] [--port P] [--data DIR]``: start the demo wiki.

ASGI (Starlette on uvicorn) by default, WSGI (Flask on waitress) with ``--wsgi``; both use the
same jobs and the same data directory, so either can be stopped and the other started on it.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets

import uvicorn
import waitress  # type: ignore[import-untyped]

import reqrunner

from .storage import DATA_ENV, data_dir

ADMIN_USER = "admin"
# Small enough that a template used by a dozen pages takes a few page views to catch up,
# which is the point of the demo.
MAX_JOBS = 5


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m demo_app", description=__doc__.split("\n")[0])
    parser.add_argument("--wsgi", action="store_true", help="serve the Flask site on waitress")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--data", default=os.environ.get(DATA_ENV) or "demo-data",
                        help="directory for the wiki, the job store and the outbox")  # fmt: skip
    parser.add_argument("--job-delay", type=float, default=0.2,
                        help="seconds each refresh job pretends to work")  # fmt: skip
    parser.add_argument("--admin-password", default=os.environ.get("DEMO_ADMIN_PASSWORD"),
                        help="queue admin password (default: a new random one)")  # fmt: skip
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _arguments(argv)
    # The jobs module reads these when imported: a CLI worker started with the same variables
    # (`reqrunner work --app demo_app.jobs:queue`) sees the same files.
    os.environ[DATA_ENV] = os.path.abspath(args.data)
    os.environ["DEMO_JOB_DELAY"] = str(args.job_delay)
    # Imported only now: the jobs module opens its files in the directory set just above.
    from .jobs import queue, wiki  # noqa: PLC0415
    from .wiki import seed  # noqa: PLC0415

    if wiki.create():
        seed()
    password = args.admin_password or secrets.token_urlsafe(9)
    options = {
        "run_rate": 1.0,
        "max_jobs": MAX_JOBS,
        "max_time": 10.0,
        "admin": reqrunner.BasicAuth(ADMIN_USER, password),
    }
    base = f"http://{args.host}:{args.port}"
    kind = "WSGI: Flask on waitress" if args.wsgi else "ASGI: Starlette on uvicorn"
    print(
        f"reqrunner demo wiki ({kind})\n"
        f"  site:   {base}/\n"
        f"  admin:  {base}/_reqrunner/admin  user {ADMIN_USER!r}  password {password!r}\n"
        f"  data:   {data_dir()} (wiki.sqlite3, outbox/)\n"
        f"  jobs:   {queue.url}\n"
        "  Stop with Ctrl+C.",
        flush=True,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.wsgi:
        from .wsgi_app import create_app as create_wsgi  # noqa: PLC0415

        waitress.serve(create_wsgi(**options), host=args.host, port=args.port, threads=8)
    else:
        from .asgi_app import create_app as create_asgi  # noqa: PLC0415

        uvicorn.run(create_asgi(**options), host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
