"""The demo wiki as a Flask app, wrapped by reqrunner's WSGI middleware."""

from __future__ import annotations

from typing import Any

from flask import Flask, redirect, request
from werkzeug.wrappers import Response

from reqrunner.web.doctor import refresh, stored

from . import views
from .jobs import queue
from .markup import title_from_slug
from .modes import WSGIModeSwitch

__all__ = ["create_app"]

SERVER = "WSGI (Flask)"


def _response(reply: views.Reply) -> Response:
    if reply.location is not None:
        return redirect(reply.location, code=reply.status)
    return Response(reply.body, status=reply.status, content_type=reply.content_type)


def create_app(**options: Any) -> Flask:
    """The Flask wiki, its ``wsgi_app`` behind the mode switch (``options`` go to every
    ``WSGIMiddleware``), as the Flask recipe wraps it."""
    app = Flask(__name__)

    @app.get("/")
    def home() -> Response:
        return _response(views.page("Main Page", server=SERVER))

    @app.get("/wiki/<path:title>")
    def page(title: str) -> Response:
        saved = request.args.get("saved", "")
        return _response(views.page(title_from_slug(title), server=SERVER, saved=saved))

    @app.route("/edit/<path:title>", methods=["GET", "POST"])
    def edit(title: str) -> Response:
        if request.method == "POST":
            return _response(views.save(title_from_slug(title), request.form.to_dict()))
        return _response(views.edit_form(title_from_slug(title), server=SERVER))

    @app.get("/pages")
    def all_pages() -> Response:
        return _response(views.all_pages(server=SERVER))

    @app.get("/search")
    def search() -> Response:
        return _response(views.search(request.args.get("q", ""), server=SERVER))

    @app.get("/activity")
    def activity() -> Response:
        watch = request.args.get("watch") == "1"
        return _response(views.activity(server=SERVER, watch=watch))

    @app.get("/outbox/<name>")
    def email(name: str) -> Response:
        return _response(views.email(name, server=SERVER))

    @app.route("/settings", methods=["GET", "POST"])
    def settings() -> Response:
        if request.method == "POST":
            if request.form.get("doctor"):
                # The checks request this site: waitress serves them on its other threads.
                refresh(switch.current().core, request.host_url.rstrip("/"))
                return redirect("/settings", code=303)
            return _response(views.save_settings(request.form.to_dict()))
        report = stored(queue)
        return _response(views.settings(request.args.get("mode"), server=SERVER, report=report))

    switch = WSGIModeSwitch(app.wsgi_app, queue, mode=views.current_mode, **options)
    app.wsgi_app = switch  # type: ignore[method-assign]
    return app
