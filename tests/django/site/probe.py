"""Run by the tests as a process of its own: ask Django's task API about results.

``python probe.py ID...`` prints one JSON line per id: what ``default_task_backend
.get_result(id)`` says, or ``{"missing": true}``.
"""

import json
import os
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djsite.settings")
django.setup()

try:
    from django.tasks import default_task_backend
    from django.tasks.exceptions import TaskResultDoesNotExist
except ImportError:
    from django_tasks import default_task_backend
    from django_tasks.exceptions import TaskResultDoesNotExist


def describe(result_id: str) -> dict[str, object]:
    try:
        result = default_task_backend.get_result(result_id)
    except TaskResultDoesNotExist:
        return {"missing": True}
    out: dict[str, object] = {
        "id": result.id,
        "status": str(result.status),
        "name": result.task.name,
        "module_path": result.task.module_path,
        "args": result.args,
        "errors": [[e.exception_class_path, e.traceback] for e in result.errors],
        "worker_ids": result.worker_ids,
        "times": [
            t is not None for t in (result.enqueued_at, result.started_at, result.finished_at)
        ],
    }
    if result.status == "SUCCESSFUL":
        out["return_value"] = result.return_value
    if result.errors:
        out["exception_class"] = result.errors[-1].exception_class.__name__
    return out


for result_id in sys.argv[1:]:
    print(json.dumps(describe(result_id)))
