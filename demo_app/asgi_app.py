"""The demo wiki as a Starlette app, wrapped by reqrunner's ASGI middleware."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from reqrunner.web.asgi import ASGIApp
from reqrunner.web.doctor import refresh, stored

from . import views
from .jobs import queue
from .markup import title_from_slug
from .modes import ASGIModeSwitch

__all__ = ["create_app"]

SERVER = "ASGI (Starlette)"


def _response(reply: views.Reply) -> Response:
    if reply.location is not None:
        return RedirectResponse(reply.location, status_code=reply.status)
    return Response(reply.body, status_code=reply.status, media_type=reply.content_type)


async def _form(request: Request) -> dict[str, str]:
    # Two small urlencoded forms don't justify python-multipart, which request.form() needs.
    return dict(parse_qsl((await request.body()).decode("utf-8", "replace")))


# The views read and write SQLite: Starlette runs these sync endpoints in its thread pool.
def home(request: Request) -> Response:
    return _response(views.page("Main Page", server=SERVER))


def page(request: Request) -> Response:
    title = title_from_slug(request.path_params["title"])
    return _response(views.page(title, server=SERVER, saved=request.query_params.get("saved", "")))


async def edit(request: Request) -> Response:
    title = title_from_slug(request.path_params["title"])
    if request.method == "POST":
        form = await _form(request)
        return _response(await run_in_threadpool(views.save, title, form))
    return _response(await run_in_threadpool(views.edit_form, title, server=SERVER))


def all_pages(request: Request) -> Response:
    return _response(views.all_pages(server=SERVER))


def search(request: Request) -> Response:
    return _response(views.search(request.query_params.get("q", ""), server=SERVER))


def activity(request: Request) -> Response:
    watch = request.query_params.get("watch") == "1"
    return _response(views.activity(server=SERVER, watch=watch))


def email(request: Request) -> Response:
    return _response(views.email(request.path_params["name"], server=SERVER))


async def settings(request: Request) -> Response:
    if request.method == "POST":
        form = await _form(request)
        if form.get("doctor"):
            # The checks request this site; the event loop serves them meanwhile.
            middleware = request.app.state.switch.current()
            base = str(request.base_url).rstrip("/")
            await run_in_threadpool(refresh, middleware.core, base)
            return RedirectResponse("/settings", status_code=303)
        return _response(await run_in_threadpool(views.save_settings, form))
    mode = request.query_params.get("mode")
    report = await run_in_threadpool(stored, queue)
    return _response(await run_in_threadpool(views.settings, mode, server=SERVER, report=report))


def create_app(**options: Any) -> ASGIApp:
    """The Starlette wiki behind the mode switch; ``options`` go to every ``ASGIMiddleware``."""
    app = Starlette(
        routes=[
            Route("/", home),
            Route("/wiki/{title:path}", page),
            Route("/edit/{title:path}", edit, methods=["GET", "POST"]),
            Route("/pages", all_pages),
            Route("/search", search),
            Route("/activity", activity),
            Route("/outbox/{name}", email),
            Route("/settings", settings, methods=["GET", "POST"]),
        ]
    )
    switch = ASGIModeSwitch(app, queue, mode=views.current_mode, **options)
    app.state.switch = switch
    return switch
