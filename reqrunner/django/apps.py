"""The optional Django app ``reqrunner.django``: with it in ``INSTALLED_APPS``, every
``ReqrunnerBackend`` in ``TASKS`` is set up when Django starts, so a web worker can run a
stored task before any code of its own has touched the tasks."""

from __future__ import annotations

from django.apps import AppConfig


class ReqrunnerConfig(AppConfig):  # type: ignore[misc]
    name = "reqrunner.django"
    label = "reqrunner"
    verbose_name = "reqrunner"

    def ready(self) -> None:
        from . import ready_backends  # noqa: PLC0415 (the package imports Django's models)

        ready_backends()
