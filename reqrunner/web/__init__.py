"""The web side: the framework-neutral middleware core, its ASGI and WSGI adapters, the
signed run endpoint, the triggers and the admin pages."""
