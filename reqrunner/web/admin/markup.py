"""A few lines of HTML templating where escaping is the default.

Every value interpolated by :func:`render` is escaped unless it is :class:`Safe` (a fragment this
package rendered itself). Job arguments, error messages, labels, queue names and anything else a
job or a visitor can influence therefore reach the page as text, never as markup. The pages'
larger bodies are files in ``templates/``, read from the package like the stylesheet and the
script, with ``{name}`` where a value goes.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from urllib.parse import quote, urlencode

__all__ = ["Safe", "ago", "duration", "esc", "join", "render", "template", "url"]


class Safe(str):
    """Markup that is already escaped and may be inserted as is."""

    __slots__ = ()


def esc(value: object) -> Safe:
    """``value`` as HTML text (quotes included, so it is safe in attributes too)."""
    if isinstance(value, Safe):
        return value
    return Safe(html.escape("" if value is None else str(value), quote=True))


def render(template: str, /, **values: object) -> Safe:
    """``template.format(**values)`` with every value escaped (see :func:`esc`)."""
    return Safe(template.format(**{k: esc(v) for k, v in values.items()}))


@cache
def _template(name: str) -> str:
    return (resources.files(__package__) / "templates" / name).read_text("utf-8")


def template(name: str, /, **values: object) -> Safe:
    """The template file ``templates/{name}`` rendered with ``values`` (see :func:`render`)."""
    return render(_template(name), **values)


def join(parts: Iterable[Safe]) -> Safe:
    """Concatenate rendered fragments."""
    return Safe("".join(parts))


def url(base: str, path: str = "", /, **params: object) -> str:
    """``base + path`` with the non-empty ``params`` as a query string (escape it with
    :func:`esc`/:func:`render` when putting it in an attribute)."""
    query = urlencode({k: str(v) for k, v in params.items() if v not in (None, "")})
    return base + quote(path, safe="/") + (f"?{query}" if query else "")


def _span(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def ago(when: datetime | float | None, now: float) -> Safe:
    """A ``<time>`` element: relative ("3 min ago", "in 20 s") with the UTC time on hover."""
    if when is None:
        return Safe("—")
    ts = when.timestamp() if isinstance(when, datetime) else float(when)
    moment = datetime.fromtimestamp(ts, UTC)
    delta = ts - now
    text = (
        "just now"
        if abs(delta) < 1
        else (f"in {_span(delta)}" if delta > 0 else f"{_span(delta)} ago")
    )
    return render(
        '<time datetime="{iso}" title="{full}">{text}</time>',
        iso=moment.isoformat(timespec="seconds"),
        full=moment.strftime("%Y-%m-%d %H:%M:%S UTC"),
        text=text,
    )


def duration(seconds: float | None) -> str:
    """A length of time for people: "42 s", "3 min", "1.5 h"."""
    return "—" if seconds is None else _span(seconds)
