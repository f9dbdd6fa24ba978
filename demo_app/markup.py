"""The wiki's tiny markup: a small, safe subset of MediaWiki's.

``= Heading =`` and ``== Subheading ==``, ``'''bold'''`` and ``''italic''``, ``* list items``,
``[[Page]]`` and ``[[Page|text]]`` links, blank lines between paragraphs, and ``{{Name}}``, which
includes the page ``Template:Name``. Templates may include templates; what a page includes is
recorded, because that is what tells the wiki which pages to refresh when a template changes.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["TEMPLATE_PREFIX", "Rendered", "render", "slug", "title_from_slug"]

TEMPLATE_PREFIX = "Template:"
MAX_DEPTH = 5
"""How deep templates may nest; deeper (or circular) inclusion shows an error in place."""

_INCLUDE = re.compile(r"\{\{\s*([^{}|]+?)\s*\}\}")
_LINK = re.compile(r"\[\[([^\[\]|]+)(?:\|([^\[\]]+))?\]\]")
_BOLD = re.compile(r"'''(.+?)'''")
_ITALIC = re.compile(r"''(.+?)''")
_HEADING = re.compile(r"^(={1,3})\s*(.+?)\s*\1$")

Fetch = Callable[[str], str | None]
"""Looks up a page's source by title; ``None`` when the page does not exist."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Rendered:
    """A page turned into HTML, with what it included and its plain text (for search)."""

    html: str
    templates: frozenset[str]
    text: str


def slug(title: str) -> str:
    """The URL form of a title, as MediaWiki writes it: spaces become underscores."""
    return title.strip().replace(" ", "_")


def title_from_slug(value: str) -> str:
    """The title a URL names."""
    return value.replace("_", " ").strip()


def _expand(source: str, fetch: Fetch, used: set[str], stack: tuple[str, ...]) -> str:
    def include(match: re.Match[str]) -> str:
        title = TEMPLATE_PREFIX + title_from_slug(match.group(1))
        used.add(title)
        if title in stack or len(stack) >= MAX_DEPTH:
            return f"'''(template loop: {title})'''"
        body = fetch(title)
        if body is None:
            return f"[[{title}|{title} (missing)]]"
        return _expand(body, fetch, used, (*stack, title))

    return _INCLUDE.sub(include, source)


def _inline(text: str) -> str:
    out = html.escape(text, quote=False)

    def link(match: re.Match[str]) -> str:
        # The parts were escaped with the rest of the line; unescape before building the URL.
        target = html.unescape(match.group(1)).strip()
        label = match.group(2) or match.group(1)
        href = html.escape("/wiki/" + slug(target))
        return f'<a href="{href}">{label.strip()}</a>'

    out = _LINK.sub(link, out)
    out = _BOLD.sub(r"<b>\1</b>", out)
    return _ITALIC.sub(r"<i>\1</i>", out)


def _plain(text: str) -> str:
    text = _LINK.sub(lambda m: m.group(2) or m.group(1), text)
    return text.replace("'''", "").replace("''", "")


def render(source: str, fetch: Fetch, *, title: str = "") -> Rendered:
    """Expand the templates in ``source`` and turn the result into HTML."""
    used: set[str] = set()
    expanded = _expand(source, fetch, used, (title,) if title else ())
    blocks: list[str] = []
    paragraph: list[str] = []
    items: list[str] = []
    plain: list[str] = []

    def flush() -> None:
        if paragraph:
            blocks.append("<p>" + " ".join(paragraph) + "</p>")
            paragraph.clear()
        if items:
            blocks.append("<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>")
            items.clear()

    for raw in expanded.splitlines():
        line = raw.strip()
        heading = _HEADING.match(line)
        if not line:
            flush()
        elif heading:
            flush()
            level = len(heading.group(1)) + 1
            blocks.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
            plain.append(_plain(heading.group(2)))
        elif line.startswith("* "):
            if paragraph:
                flush()
            items.append(_inline(line[2:]))
            plain.append(_plain(line[2:]))
        else:
            if items:
                flush()
            paragraph.append(_inline(line))
            plain.append(_plain(line))
    flush()
    return Rendered(html="\n".join(blocks), templates=frozenset(used), text="\n".join(plain))
