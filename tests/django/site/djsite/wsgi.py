import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

import reqrunner

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djsite.settings")
application = get_wsgi_application()

from reqrunner.django import get_queue  # noqa: E402  (after Django is set up)

application = reqrunner.WSGIMiddleware(application, get_queue(), **settings.REQRUNNER_OPTIONS)
