"""A small Django project whose tasks reqrunner runs (Django 6's django.tasks, or the
django_tasks backport on Django 5.2)."""

import importlib.util
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("DJSITE_DATA", BASE_DIR))

SECRET_KEY = "reqrunner-tests"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
_BACKPORT = importlib.util.find_spec("django.tasks") is None
INSTALLED_APPS = (["django_tasks"] if _BACKPORT else []) + ["reqrunner.django"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "djsite.urls"
USE_TZ = True
DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(DATA / "django.sqlite3")}
}

TASKS = {
    "default": {
        "BACKEND": "reqrunner.django.ReqrunnerBackend",
        "QUEUES": ["default", "mail"],
        "OPTIONS": {"QUEUE": "djsite.jobs:queue"},
    },
    # The same queue, keeping results for half a second: for the tests of expiry.
    "brief": {
        "BACKEND": "reqrunner.django.ReqrunnerBackend",
        "OPTIONS": {"QUEUE": "djsite.jobs:queue", "RESULT_TTL": 0.5},
    },
}

# DJSITE_RUN_RATE=0: page views run nothing (the project is drained by `reqrunner work`).
REQRUNNER_OPTIONS = {
    "run_rate": float(os.environ.get("DJSITE_RUN_RATE", "1")),
    "mode": "sync",
    "max_time": 20,
}
