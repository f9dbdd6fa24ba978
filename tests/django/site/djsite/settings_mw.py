"""The project with the MIDDLEWARE entry instead of a wrap (served by plain_wsgi/plain_asgi)."""

from djsite.settings import *  # noqa: F403

MIDDLEWARE = ["reqrunner.django.middleware.ReqrunnerMiddleware"]
