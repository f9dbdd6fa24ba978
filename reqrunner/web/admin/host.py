"""What the Queue Manager needs of the middleware that mounts it, and nothing more.

The admin is handed an object of this shape (the middleware's core) and reads nothing else of
it, so the middleware can change inside without the admin noticing, and the admin can be tried
against any object that answers these few questions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ...models import RunReport
    from ...queue import JobQueue
    from ..doctor import Report
    from ..health import Health
    from ..signing import Signer

__all__ = ["Host"]


class Host(Protocol):
    """The middleware, as the admin sees it."""

    @property
    def queue(self) -> JobQueue:
        """The job queue the pages show and act on."""
        ...

    @property
    def path(self) -> str:
        """Where reqrunner is mounted in the app (``/_reqrunner``); the admin is below it."""
        ...

    def signer(self) -> Signer:
        """The site's signer, for the CSRF tokens (may block the first time)."""
        ...

    def health(self) -> Health:
        """How this process runs jobs from page views."""
        ...

    def tick_url(self, base_url: str) -> str:
        """The signed tick URL of the site at ``base_url``."""
        ...

    def diagnose(self, base_url: str) -> Report:
        """Run doctor's checks against the site at ``base_url`` and store the report for the
        overview (blocking: it requests the site)."""
        ...

    def run_bounded(self, *, via: str) -> RunReport | None:
        """Run a bounded batch now under the run lease (blocking); ``None`` if one is running."""
        ...
