"""Finding the user's ``JobQueue`` for the console script: ``--app``, ``--db``, their env vars."""

from __future__ import annotations

import importlib
import os
import sys

from ..queue import JobQueue
from ..store.target import resolve
from .django_app import django_queue, is_settings_module

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "UsageError", "import_object", "load_queue"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """The command line asks for something impossible; the script exits with status 2."""


_APP_EXAMPLE = (
    "e.g. --app mysite.jobs:queue, the module and the name of your JobQueue, or a Django "
    "settings module whose TASKS use reqrunner.django.ReqrunnerBackend"
)


def _django(settings_module: str) -> JobQueue:
    try:
        return django_queue(settings_module)
    except LookupError as exc:
        raise UsageError(f"--app {settings_module}: {exc}") from None


def _import_app(spec: str) -> JobQueue:
    obj = import_object(spec)
    if not isinstance(obj, JobQueue):
        raise UsageError(
            f"--app {spec!r} is a {type(obj).__name__}, not a reqrunner.JobQueue; {_APP_EXAMPLE}"
        )
    return obj


def import_object(spec: str) -> object:
    """The object ``--app MODULE:ATTR`` names (a ``UsageError`` saying what is wrong if none)."""
    module_name, sep, attr = spec.partition(":")
    if not sep and module_name and is_settings_module(module_name):
        return _django(module_name)
    if not sep or not module_name or not attr:
        raise UsageError(f"--app {spec!r}: expected MODULE:ATTR, {_APP_EXAMPLE}")
    # A console script does not have the current directory on sys.path; the user's project
    # usually is the current directory (uvicorn and gunicorn do the same).
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only the module named by --app (or a package on its path) missing is the user's typo;
        # a missing import inside their module is reported as it is.
        if exc.name is not None and (module_name + ".").startswith(exc.name + "."):
            raise UsageError(
                f"--app {spec!r}: no module named {exc.name!r} (run from your project's "
                "directory or set PYTHONPATH)"
            ) from None
        raise UsageError(f"--app {spec!r}: importing {module_name} failed: {exc}") from None
    except Exception as exc:
        raise UsageError(
            f"--app {spec!r}: importing {module_name} failed: {type(exc).__name__}: {exc}"
        ) from None
    obj: object = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UsageError(
                f"--app {spec!r}: {module_name} has no attribute {attr!r}; {_APP_EXAMPLE}"
            ) from None
    return obj


def load_queue(app: str | None, db: str | None, *, need_jobs: bool) -> JobQueue:
    """The ``JobQueue`` that ``--app``/``REQRUNNER_APP`` and ``--db`` name.

    ``need_jobs`` (``run``, ``work``): the user's jobs must be registered, so an app is required.
    Without one the management verbs can still work on the database alone (``--db`` or
    ``REQRUNNER_DATABASE_URL``).
    """
    spec = app or os.environ.get("REQRUNNER_APP")
    django_settings = os.environ.get("DJANGO_SETTINGS_MODULE")
    if spec is None and not db and django_settings and is_settings_module(django_settings):
        # A Django project names its settings already; their TASKS name the queue.
        spec = django_settings
    if spec is None:
        if need_jobs:
            raise UsageError(
                "no app: pass --app MODULE:ATTR or set REQRUNNER_APP, so that your jobs are "
                f"registered ({_APP_EXAMPLE})"
            )
        db = db or os.environ.get("REQRUNNER_DATABASE_URL")
        if not db:
            raise UsageError(
                f"no queue: pass --app MODULE:ATTR ({_APP_EXAMPLE}) or --db URL, "
                "or set REQRUNNER_APP or REQRUNNER_DATABASE_URL"
            )
        try:
            return JobQueue(db)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"--db: {exc}") from None
    wanted = None
    if db:
        # Checked before the app is imported: a bad URL is the URL's fault, not the app's.
        try:
            wanted = resolve(db)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"--db {db!r}: {exc}") from None
        # An app that builds JobQueue() without a URL then opens --db directly and never
        # touches the database it would otherwise default to.
        os.environ["REQRUNNER_DATABASE_URL"] = db
    queue = _import_app(spec)
    if wanted is not None:
        if wanted.same_as(queue.target):
            wanted.dispose()
        else:
            queue = queue.with_database(wanted)
    return queue
