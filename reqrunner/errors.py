"""The exceptions reqrunner raises.

The tree::

    ReqRunnerError                 anything reqrunner itself raises on purpose
    ├── JobNotFound                a job id that is not (or no longer) in the store
    ├── UnknownJob                 a stored job whose name no registered function carries
    ├── JobInterrupted             recorded for a job whose runner died (lease expired)
    └── StoreError                 the job database could not be used

Bad arguments to the public API are plain ``ValueError`` / ``TypeError`` with a message that says
what is allowed, as in the standard library.
"""

from __future__ import annotations

__all__ = ["JobInterrupted", "JobNotFound", "ReqRunnerError", "StoreError", "UnknownJob"]


class ReqRunnerError(Exception):
    """Base class of reqrunner's own exceptions."""


class JobNotFound(ReqRunnerError, LookupError):
    """No job with this id is in the store (it may have finished and been deleted)."""


class UnknownJob(ReqRunnerError, LookupError):
    """A stored job names a function that no ``@queue.job`` in this process registered."""


class JobInterrupted(ReqRunnerError):
    """The runner holding the job died or stopped before finishing it; its lease expired."""


class StoreError(ReqRunnerError):
    """The job database could not be reached or refused a statement."""
