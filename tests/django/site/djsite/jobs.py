import os

from django.conf import settings

import reqrunner

queue = reqrunner.JobQueue(
    os.environ.get("REQRUNNER_DATABASE_URL") or f"sqlite:///{settings.DATA / 'reqrunner.sqlite3'}"
)
