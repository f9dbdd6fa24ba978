"""The demo's background jobs, shared by the ASGI and the WSGI site.

The job store is ``jobs.sqlite3`` in the data directory (or ``$REQRUNNER_DATABASE_URL``, e.g. a
PostgreSQL URL), separate from the wiki's own ``wiki.sqlite3``. A CLI worker finds these jobs
with ``reqrunner work --app demo_app.jobs:queue``.
"""

from __future__ import annotations

import os
import time

import reqrunner

from . import markup
from .storage import Outbox, Wiki, data_dir

__all__ = [
    "notify_watcher",
    "queue",
    "recent_changes_digest",
    "refresh_links",
    "update_search_index",
    "wiki",
]

JOB_DELAY_ENV = "DEMO_JOB_DELAY"
"""Seconds each refresh job pretends to work (``--job-delay``)."""

wiki = Wiki(data_dir())
outbox = Outbox(data_dir())

# keep_done: the activity page lists finished jobs too, so a visitor sees what ran.
queue = reqrunner.JobQueue(
    os.environ.get("REQRUNNER_DATABASE_URL") or f"sqlite:///{data_dir() / 'jobs.sqlite3'}",
    keep_done=True,
)


def _job_delay() -> float:
    return float(os.environ.get(JOB_DELAY_ENV) or 0.2)


# unique: a template edited twice before its pages were refreshed needs one refresh per page.
@queue.job(name="wiki.refresh_links", unique=True)
def refresh_links(title: str, ctx: reqrunner.JobContext) -> None:
    """Render a page again after a template it includes changed (MediaWiki's refreshLinks)."""
    ctx.describe(f"Refresh {title}")
    source = wiki.source_of(title)
    if source is None:
        return  # deleted since the job was queued: nothing to refresh
    ctx.progress(0.25, "expanding templates")
    rendered = markup.render(source, wiki.source_of, title=title)
    # Rendering this markup takes microseconds; a real wiki's parser takes a good part of a
    # second on a long page, and the pause makes progress and the run's bounds visible.
    time.sleep(_job_delay())
    ctx.progress(0.75, "storing links and search text")
    wiki.store_render(title, rendered.html, rendered.templates)
    wiki.index(title, rendered.text)
    ctx.progress(1.0, "done")


@queue.job(name="wiki.update_search_index", unique=True)
def update_search_index(title: str) -> None:
    """Put a saved page's current text into the FTS5 search index."""
    source = wiki.source_of(title)
    if source is not None:
        wiki.index(title, markup.render(source, wiki.source_of, title=title).text)


@queue.job(name="wiki.notify_watcher", attempts=5, backoff=30)
def notify_watcher(email: str, title: str, editor: str, edited_at: float) -> None:
    """Tell one watcher about an edit: an email written to the outbox, not sent."""
    url = "/wiki/" + markup.slug(title)
    outbox.write(
        to=email,
        subject=f"[demo wiki] {title} was changed by {editor}",
        body=f"{editor} edited {title!r}.\n\nSee the page at {url}\n",
        key=f"{int(edited_at * 1000)}-{title}-{email}",
    )


# MediaWiki's and WordPress's sites run such digests from cron (or WP-Cron's page views);
# here page views, the tick URL or a worker fire it, once a night whichever comes first.
@queue.periodic("0 3 * * *", name="wiki.recent_changes_digest")
def recent_changes_digest(ctx: reqrunner.JobContext) -> None:
    """Mail the editors the pages changed in the last day (an email in the outbox)."""
    since = time.time() - 24 * 3600
    changed = sorted(
        (page.updated_at, page.title)
        for page in map(wiki.get, wiki.titles())
        if page is not None and page.updated_at >= since
    )
    ctx.describe(f"Recent changes digest: {len(changed)} page(s)")
    if not changed:
        return  # a quiet day: no email
    lines = [
        f"- {title} ({time.strftime('%H:%M UTC', time.gmtime(at))}): /wiki/{markup.slug(title)}"
        for at, title in changed
    ]
    outbox.write(
        to=wiki.setting("digest_to", "editors@example.org"),
        subject=f"[demo wiki] {len(changed)} page(s) changed in the last day",
        body="Recent changes:\n\n" + "\n".join(lines) + "\n",
        key=f"digest-{ctx.job_id}",
    )
