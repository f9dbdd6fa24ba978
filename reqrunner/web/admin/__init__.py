"""The Queue Manager: reqrunner's admin pages at ``{path}/admin``, served by the middleware.

Off unless the middleware is given an access check::

    app = reqrunner.ASGIMiddleware(app, queue, admin=reqrunner.BasicAuth("admin", "s3cret"))
    app = reqrunner.WSGIMiddleware(app, queue, admin=lambda request: request.client == "10.0.0.5")

It shows counts per state, the oldest due job's age, finished jobs per hour and day, the health
of in-request running and of CLI workers, lists per state with progress, and each job's
arguments, history and traceback; and it retries, deletes, releases and runs jobs (POSTs with
CSRF protection). Everything it serves comes from this package: no CDN, no build step.
"""

from .auth import AdminAccess, BasicAuth
from .site import AdminSite

__all__ = ["AdminAccess", "AdminSite", "BasicAuth"]
