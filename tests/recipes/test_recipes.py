"""Each recipe in docs/recipes.md, taken out of the page as written, served by a real server.

A POST to the recipe's form handler dispatches a job, and the server's process must run it after
that response (Flask's and Django's redirects are small HTML pages) or after the next page view,
through the recipe's wrapping: a job nobody runs, or that the server does not know, stays.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import httpx
import pytest

import reqrunner
from tests.live import BIN, ROOT, free_port, started, wait_for

RECIPES_MD = ROOT / "docs" / "recipes.md"
DJANGO_MD = ROOT / "docs" / "django.md"

# recipe -> (protocol, the server's app target)
RECIPES = {
    "starlette": ("asgi", "app:app"),
    "fastapi": ("asgi", "app:app"),
    "flask": ("wsgi", "app:app"),
    "django-wsgi": ("wsgi", "mysite.wsgi:application"),
    "django-asgi": ("asgi", "mysite.asgi:application"),
    "django-tasks-wsgi": ("wsgi", "mysite.wsgi:application"),
    "django-tasks-asgi": ("asgi", "mysite.asgi:application"),
    "wsgi": ("wsgi", "app:application"),
    "asgi": ("asgi", "app:app"),
}

# What the Django recipes leave to the project (a `startproject` layout, trimmed).
DJANGO_PROJECT = {
    "mysite/__init__.py": "",
    "mysite/settings.py": (
        "from pathlib import Path\n\n"
        "BASE_DIR = Path(__file__).resolve().parent.parent\n"
        "SECRET_KEY = 'recipe-test'\n"
        "DEBUG = False\n"
        "ALLOWED_HOSTS = ['127.0.0.1']\n"
        "INSTALLED_APPS: list[str] = []\n"
        "MIDDLEWARE: list[str] = []\n"
        "ROOT_URLCONF = 'mysite.urls'\n"
        "USE_TZ = True\n\n"
    ),
    "mysite/urls.py": (
        "from django.urls import path\n\n"
        "from mysite import views\n\n"
        "urlpatterns = [\n"
        "    path('', views.home),\n"
        "    path('photos/<int:photo_id>/publish', views.publish),\n"
        "]\n"
    ),
}

_BLOCK = re.compile(
    r"<!-- recipe: (?P<names>[\w,-]+) (?P<path>\S+)(?P<append> append)? -->\n"
    r"```python\n(?P<code>.*?)```",
    re.DOTALL,
)


def _recipe_files() -> dict[str, list[tuple[str, str, bool]]]:
    found: dict[str, list[tuple[str, str, bool]]] = defaultdict(list)
    for block in _BLOCK.finditer(RECIPES_MD.read_text() + DJANGO_MD.read_text()):
        for name in block["names"].split(","):
            found[name].append((block["path"], block["code"], bool(block["append"])))
    return found


def _write_site(recipe: str, site: Path) -> None:
    files = dict(DJANGO_PROJECT) if recipe.startswith("django") else {}
    blocks = _recipe_files()[recipe]
    assert blocks, f"docs/recipes.md has no code blocks marked for the {recipe!r} recipe"
    for path, code, append in blocks:
        files[path] = files.get(path, "") + code if append else code
    for path, text in files.items():
        (site / path).parent.mkdir(parents=True, exist_ok=True)
        (site / path).write_text(text)


def test_every_recipe_block_belongs_to_a_tested_recipe() -> None:
    assert set(_recipe_files()) == set(RECIPES)


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_recipe_runs_a_job_after_a_page_view(
    recipe: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    protocol, target = RECIPES[recipe]
    site = tmp_path / "site"
    _write_site(recipe, site)
    port = free_port()
    if protocol == "asgi":
        command = [
            str(BIN / "uvicorn"), target, "--app-dir", str(site),
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
        ]  # fmt: skip
    else:
        command = [str(BIN / "waitress-serve"), f"--listen=127.0.0.1:{port}", target]
    # The recipes' default store, ./reqrunner.sqlite3 of the site, whatever CI has set.
    monkeypatch.delenv("REQRUNNER_DATABASE_URL", raising=False)
    env = {"PYTHONPATH": str(site)}
    with started(command, port=port, log=tmp_path / "server.log", cwd=site, env=env) as server:
        queue = reqrunner.JobQueue(f"sqlite:///{site / 'reqrunner.sqlite3'}")
        try:
            with httpx.Client(base_url=server.url, timeout=10) as client:
                posted = client.post("/photos/7/publish")
                assert posted.status_code in (302, 303), posted.text
                page = client.get("/")
                assert page.status_code == 200
                assert page.headers["content-type"].startswith("text/html")

            # Only a successful run removes a job (a failed or unknown one is kept for a retry
            # or as failed), and nothing else here deletes jobs.
            wait_for(lambda: queue.stats().total == 0, 10, "the job to run")
            if recipe.startswith("django-tasks"):
                # Django's tasks keep their results: the task ran here, and returned.
                info = queue.get(1)
                assert info is not None and info.name == "mysite.tasks.make_thumbnails"
                assert info.result == {"photo": 7, "sizes": 3}
        finally:
            queue.close()
