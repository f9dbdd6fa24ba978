"""What :class:`~reqrunner.ASGIMiddleware` and :class:`~reqrunner.WSGIMiddleware` share: their
options, declared, documented and checked here once, and the core they build from them.

:class:`Middleware` holds the one public signature; :class:`Options` is its checked, frozen
value, the only form in which the options reach the rest of the package. The adapters add
nothing but the translation of their protocol.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar
from urllib.parse import urlsplit

from .. import deferred
from ..models import Limits
from .core import MiddlewareCore
from .http import AdminAccess
from .policy import Mode, Qualify

if TYPE_CHECKING:
    from ..queue import JobQueue

__all__ = ["MODES", "Middleware", "Options"]

MODES: tuple[Mode, ...] = ("sync", "async", "js", "auto")

App = TypeVar("App")


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, not {value!r}")
    return float(value)


def _check_path(path: object) -> None:
    if not isinstance(path, str):
        raise TypeError(f"path must be a string like '/_reqrunner', not {path!r}")
    if (
        not path.startswith("/")
        or path == "/"
        or path.endswith("/")
        or any(c in path for c in "?#")
    ):
        raise ValueError(
            f"path={path!r}: must start with '/', not end with '/' and hold no '?' or '#', "
            "e.g. '/_reqrunner'"
        )


def _check_self_url(url: object) -> None:
    if url is None:
        return
    if not isinstance(url, str):
        raise TypeError(f"self_url must be a URL string or None, not {url!r}")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(
            f"self_url={url!r}: give the site's own base URL, e.g. 'http://127.0.0.1:8000' "
            "(http or https, a host, no query or fragment)"
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class Options:
    """The middleware's options once checked (see :class:`Middleware` for their meaning).

    Every field is required: the defaults live in one place, :class:`Middleware`'s signature.
    Building one raises :class:`TypeError` or :class:`ValueError` saying what to change.
    """

    run_rate: float
    mode: Mode
    limits: Limits
    """``max_jobs``, ``max_time`` and ``max_memory``, checked by :class:`~reqrunner.Limits`."""
    max_concurrent_runs: int
    path: str
    self_url: str | None
    secret: str | None
    qualify: Qualify | None
    admin: AdminAccess | None

    def __post_init__(self) -> None:
        rate = _number("run_rate", self.run_rate)
        if not 0.0 <= rate <= 1.0:
            raise ValueError(
                f"run_rate={self.run_rate!r}: must be between 0 and 1 (the share of page views "
                "that may start a run; 0 turns in-request running off)"
            )
        object.__setattr__(self, "run_rate", rate)
        if self.mode not in MODES:
            raise ValueError(f"mode={self.mode!r}: must be one of {', '.join(map(repr, MODES))}")
        runs = self.max_concurrent_runs
        if isinstance(runs, bool) or not isinstance(runs, int):
            raise TypeError(f"max_concurrent_runs must be a whole number, not {runs!r}")
        if runs < 1:
            raise ValueError(f"max_concurrent_runs={runs}: must be at least 1")
        # A run's lease lives twice its time bound, so an in-request run needs one.
        _number("max_time", self.limits.max_time)
        secret = self.secret
        if secret is not None and (not isinstance(secret, str) or not secret):
            raise ValueError("secret must be a non-empty string, or None to use the site's own")
        for name, hook in (("qualify", self.qualify), ("admin", self.admin)):
            if hook is not None and not callable(hook):
                raise TypeError(f"{name} must be callable or None, not {hook!r}")
        _check_path(self.path)
        _check_self_url(self.self_url)


class Middleware(Generic[App]):
    """The base of both adapters: the options, and the core built from them."""

    keeps_by_thread = False
    """Whether this adapter finds a request's ``after_response`` jobs by thread
    (:mod:`reqrunner.deferred`): building one makes the process keep them so."""

    def __init__(
        self,
        app: App,
        queue: JobQueue,
        *,
        run_rate: float = 1.0,
        mode: Mode = "auto",
        max_jobs: int | None = 30,
        max_time: float = 30.0,
        max_memory: int | float | str | None = 80,
        max_concurrent_runs: int = 1,
        path: str = "/_reqrunner",
        self_url: str | None = None,
        secret: str | None = None,
        qualify: Qualify | None = None,
        admin: AdminAccess | None = None,
    ) -> None:
        """Wrap ``app`` so that some of its page views run ``queue``'s due jobs.

        Options (keyword-only):

        - ``run_rate``: share of qualifying page views (0…1) that start a run when jobs are due
          (MediaWiki's ``$wgJobRunRate``); 0 turns in-request running off.
        - ``mode``: ``"sync"`` (run in this process after the response), ``"async"`` (signed
          self-request to ``{path}/run``, in-process if that fails), ``"js"`` (the visitor's
          browser makes that request from an injected script) or ``"auto"`` (``sync``, except
          where the process ends with its one request, as under CGI: ``js``; see
          :func:`reqrunner.web.policy.resolve_auto`).
        - ``max_jobs``, ``max_time`` (seconds), ``max_memory`` (percent or ``"128M"``): bounds
          of one run (PKP's ``job_runner_max_*``).
        - ``max_concurrent_runs``: in-request runs at once across all processes of the site.
        - ``path``: mount point of reqrunner's own routes (``{path}/run``, ``{path}/admin``).
        - ``self_url``: base URL for the self-request. Without it the self-request goes to the
          address the server listens on (never to the visitor's ``Host``); set it where that
          address does not answer plainly (TLS in the app server, a Unix socket).
        - ``secret``: signing key; default ``REQRUNNER_SECRET``, else one stored in the
          database.
        - ``qualify``: replaces the rule deciding which page views may trigger
          (:func:`reqrunner.web.policy.default_qualify`).
        - ``admin``: who may use the Queue Manager at ``{path}/admin``:
          :class:`~reqrunner.BasicAuth`, or a callable taking the
          :class:`~reqrunner.web.http.Request` and returning ``True`` to allow; ``None`` (the
          default) answers those paths with 404.

        Raises :class:`TypeError` or :class:`ValueError` for an option out of range.
        """
        self.app = app
        options = Options(
            run_rate=run_rate,
            mode=mode,
            limits=Limits(max_jobs=max_jobs, max_time=max_time, max_memory=max_memory),
            max_concurrent_runs=max_concurrent_runs,
            path=path,
            self_url=self_url,
            secret=secret,
            qualify=qualify,
            admin=admin,
        )
        self.core = MiddlewareCore(queue, options)
        if self.keeps_by_thread:
            deferred.keep_by_thread()
        self.path = options.path
        """The ``path`` option: where reqrunner's own routes are mounted."""
        self.run_rate = options.run_rate
        """The ``run_rate`` option: a page view rolled the die when :attr:`die` is below it."""
        self.die: Callable[[], float] = random.Random().random
        """The die cast for every page view: a number in ``[0, 1)``, so that ``run_rate`` 0
        never passes and 1 always does. A bound C method that takes no lock, safe from many
        threads; replace it (``random.Random(seed).random``) for a reproducible sequence."""

    def rolled(self) -> bool:
        """Cast the die: ``True`` with probability ``run_rate``. The adapters compare
        :attr:`die` with :attr:`run_rate` themselves, without this Python call between."""
        return self.die() < self.run_rate

    def tick_url(self, base_url: str) -> str:
        """The signed URL that makes this site run a bounded batch of due jobs when fetched:
        give it to an uptime monitor or a remote cron so that a site without visitors still
        runs its jobs. ``base_url`` is the site's public address (``"https://example.org"``,
        with the app's mount point if it has one); the URL is valid for a year."""
        return self.core.tick_url(base_url)
