"""The report's HTML: one Jinja2 environment with autoescaping, and small helpers around it.

Nothing is loaded from elsewhere (no fonts, scripts or stylesheets from a CDN, images as
``data:`` URIs, charts as inline SVG) and there is no JavaScript, so the file opens the
same offline, in an e-mail attachment or from an archived run folder years later.

Escaping is Jinja's job: every value that reaches a template is escaped unless it is
`Markup`, which is what the helpers here return. Plain ``str`` is text, always. A chart
function's SVG string becomes Markup through `svg` (its text was escaped as it was drawn);
small inline pieces use ``Markup("<code>{}</code>").format(value)``, which escapes
``value``. Never build HTML with f-strings and pass it on as Markup.
"""

from __future__ import annotations

import base64
import functools
import math
from collections.abc import Iterable, Sequence
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, Template
from markupsafe import Markup, escape

Html = str | Markup  # text (escaped on output) or markup (kept as is)


def fmt(value: Any, digits: int = 3) -> str:
    """A number for a table cell; an en dash for missing or non-finite values (plain text)."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "–"
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.2e}"
        return f"{value:.{digits}f}"
    return str(value)


def duration(seconds: float | None) -> str:
    """``3h 02m``, ``4m 05s`` or ``12.3 s``."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def _wbr(text: Any) -> Markup:
    """Escaped text that may break after an underscore (long snake_case header names);
    Markup is kept as it is."""
    if isinstance(text, Markup):
        return text
    return escape(str(text)).replace("_", Markup("_<wbr>"))


@functools.cache
def environment() -> Environment:
    """The report's Jinja2 environment: templates from ``tuning/reporting/templates``."""
    env = Environment(
        loader=PackageLoader("tuning.reporting", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(fmt=fmt, duration=duration, wbr=_wbr)
    return env


def template(name: str) -> Template:
    return environment().get_template(name)


def render_template(name: str, **values: Any) -> Markup:
    """A template rendered to Markup, to nest in another part of the page."""
    return Markup(template(name).render(**values))


@functools.cache
def _parts() -> Any:
    return template("parts.html.j2").module


def svg(chart: str) -> Markup:
    """A chart function's ``<svg>`` string, trusted: its text was escaped as it was drawn."""
    return Markup(chart)


def join(parts: Iterable[Html], sep: str = "") -> Markup:
    """Parts side by side; plain strings among them are escaped."""
    return Markup(sep).join(parts)


def code(text: Any) -> Markup:
    return Markup("<code>{}</code>").format(text)


def muted(text: Any) -> Markup:
    return Markup("<span class=muted>{}</span>").format(text)


def bold(text: Any) -> Markup:
    return Markup("<b>{}</b>").format(text)


def heading(text: Any) -> Markup:
    return Markup("<h3>{}</h3>").format(text)


def caption(text: Html) -> Markup:
    return Markup('<p class="caption">{}</p>').format(text)


def grid(parts: Iterable[Html], columns: int = 2) -> Markup:
    """Parts in a responsive grid of (about) ``columns`` columns."""
    return Markup('<div class="grid{}">{}</div>').format(
        columns, join(Markup("<div>{}</div>").format(p) for p in parts)
    )


def tag(reason: str) -> Markup:
    """A coloured label for a stop reason."""
    return Markup(_parts().tag(reason))


def missing(text: Html) -> Markup:
    """What replaces a section (or part) whose inputs are absent."""
    return Markup(_parts().missing(text))


def banner(text: Html, kind: str = "info") -> Markup:
    """A prominent one-line message: ``warn``, ``bad``, ``good`` or ``info``."""
    return Markup(_parts().banner(text, kind))


def checks(items: Iterable[tuple[bool | None, Html, Html]], green: bool = False) -> Markup:
    """A verdict's checks, one line each: ✓ passed, ✗ failed, ? not shown.

    ``green`` colours the ✓ marks green; only a green verdict should pass it.
    """
    return Markup(_parts().checks(list(items), green))


def kpis(items: Iterable[tuple[Html, Html]]) -> Markup:
    """Headline numbers as tiles: ``(value, label)``."""
    return Markup(_parts().kpis(list(items)))


def key_values(items: Iterable[tuple[Html, Html]]) -> Markup:
    """A two-column table of facts."""
    return Markup(_parts().key_values(list(items)))


def bullets(items: Iterable[Html], code: bool = False) -> Markup:
    """A tight bulleted list; ``code`` sets each item in monospace."""
    return Markup(_parts().bullets(list(items), code))


def figure(chart: Html, caption: Html | None = None) -> Markup:
    return Markup(_parts().figure(chart, caption))


def table(
    headers: Sequence[Html],
    rows: Iterable[Sequence[Html]],
    *,
    numeric: Iterable[int] = (),
    table_id: str | None = None,
    row_classes: Sequence[str] | None = None,
    scroll: bool = True,
    compact: bool = False,
) -> Markup:
    """A table of text or Markup cells; columns in ``numeric`` align right.

    ``compact`` sizes it to its content instead of the page width (short fact tables).
    """
    return Markup(
        _parts().table(
            list(headers),
            [list(r) for r in rows],
            set(numeric),
            table_id,
            list(row_classes) if row_classes else None,
            scroll,
            compact,
        )
    )


def section(section_id: str, title: str, body: Html, intro: Html | None = None) -> Markup:
    """One card of the page, reachable as ``#section_id`` from the table of contents."""
    return Markup(_parts().section(section_id, title, body, intro))


def page(
    title: str, subtitle: Html, toc: Sequence[tuple[str, str]], body: Sequence[Html], footer: Html
) -> str:
    """The whole document."""
    return template("page.html.j2").render(
        title=title, subtitle=subtitle, toc=list(toc), body=list(body), footer=footer
    )


def png_data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


__all__ = [
    "Html",
    "banner",
    "bold",
    "bullets",
    "caption",
    "checks",
    "code",
    "duration",
    "environment",
    "figure",
    "fmt",
    "grid",
    "heading",
    "join",
    "key_values",
    "kpis",
    "missing",
    "muted",
    "page",
    "png_data_uri",
    "render_template",
    "section",
    "svg",
    "table",
    "tag",
    "template",
]
