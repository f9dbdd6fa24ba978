"""What happens when someone saves a page: the edit is stored and rendered at once, and
everything that can wait is dispatched as jobs."""

from __future__ import annotations

from dataclasses import dataclass

from . import markup
from .jobs import notify_watcher, refresh_links, update_search_index, wiki

__all__ = ["Saved", "save_page", "seed"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Saved:
    refreshes: int
    """Pages queued for a refresh because they include the saved template."""
    emails: int


def save_page(title: str, source: str, *, editor: str, watch: str = "") -> Saved:
    """Store an edit, then queue the search update, the watchers' emails and, for a template,
    one refresh job per page that includes it (MediaWiki does the same on template edits)."""
    rendered = markup.render(source, wiki.source_of, title=title)
    edited_at = wiki.save(title, source, rendered.html, rendered.templates)
    if watch:
        wiki.watch(title, watch)
    update_search_index.dispatch(title)
    watchers = [w for w in wiki.watchers(title) if w != watch]
    notify_watcher.dispatch_many(
        [{"email": w, "title": title, "editor": editor, "edited_at": edited_at} for w in watchers]
    )
    users = wiki.users_of(title) if title.startswith(markup.TEMPLATE_PREFIX) else []
    refresh_links.dispatch_many([{"title": page} for page in users])
    return Saved(refreshes=len(users), emails=len(watchers))


_PLANETS = ("Mercury", "Venus", "Earth", "Mars", "Jupiter", "Saturn", "Uranus", "Neptune")
_DWARFS = ("Pluto", "Ceres", "Eris", "Haumea")

_FIRST_PAGES = {
    "Main Page": (
        "= Welcome to the demo wiki =\n\n"
        "A wiki is the job queue's classic user. Edit [[Template:Body]]: every page that "
        "includes it is queued for a refresh, and the next page views run those jobs.\n\n"
        "The Activity page (top bar) lists the jobs and the outbox; Settings switches how "
        "jobs run.\n\n"
        + "\n".join(f"* [[{name}]]" for name in _PLANETS + _DWARFS)
        + "\n\n{{Footer}}"
    ),
    "Template:Body": (
        "''This body of the Solar System is described by the '''Body''' template.'' "
        "Edit the template and watch the pages refresh."
    ),
    "Template:Footer": "Part of the [[Main Page|demo wiki]].",
}
for _name in _PLANETS + _DWARFS:
    _kind = "planet" if _name in _PLANETS else "dwarf planet"
    _FIRST_PAGES[_name] = f"= {_name} =\n\n{_name} is a {_kind}.\n\n{{{{Body}}}}\n\n{{{{Footer}}}}"

_FIRST_WATCHERS = {
    "Template:Body": ("alice@example.org", "bob@example.org"),
    "Main Page": ("carol@example.org",),
}


def seed() -> None:
    """Write the first pages (templates first, so the pages render with them), without jobs."""
    for title in sorted(_FIRST_PAGES, key=lambda t: not t.startswith(markup.TEMPLATE_PREFIX)):
        source = _FIRST_PAGES[title]
        rendered = markup.render(source, wiki.source_of, title=title)
        wiki.save(title, source, rendered.html, rendered.templates)
        wiki.index(title, rendered.text)
    for title, emails in _FIRST_WATCHERS.items():
        for email in emails:
            wiki.watch(title, email)
