"""The report page: one HTML file with its style inline, and small builders for its parts.

Nothing is loaded from elsewhere (no fonts, scripts or stylesheets from a CDN, images as
``data:`` URIs, charts as inline SVG) and there is no JavaScript, so the file opens the
same offline, in an e-mail attachment or from an archived run folder years later.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

CSS = """
:root { --ink:#1f2933; --muted:#616e7c; --line:#d9dee4; --bg:#f5f7fa; --card:#fff;
  --accent:#0072B2; --warn-bg:#fff4e5; --warn:#8a4b00; --bad-bg:#fdecea; --bad:#a3271b;
  --good-bg:#e8f5ee; --good:#1b6b3a; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
  font:15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
header.top { background:#102a43; color:#f0f4f8; padding:22px 0 18px; }
header.top h1 { margin:0 0 4px; font-size:24px; font-weight:650; }
header.top p { margin:0; color:#bcccdc; }
.wrap { max-width:1240px; margin:0 auto; padding:0 24px; }
nav.toc { display:flex; flex-wrap:wrap; gap:6px 18px; margin-top:12px; font-size:14px; }
nav.toc a { color:#9fb3c8; text-decoration:none; }
nav.toc a:hover { color:#fff; text-decoration:underline; }
section.card { background:var(--card); border:1px solid var(--line); border-radius:8px;
  margin:20px 0; padding:18px 22px 20px; }
section.card > h2 { margin:0 0 4px; font-size:20px; }
h3 { font-size:16px; margin:18px 0 6px; }
p.intro, p.caption, .muted { color:var(--muted); }
p.intro { margin:0 0 12px; }
p.caption { font-size:13px; margin:4px 0 0; }
.banner { border-radius:6px; padding:10px 14px; margin:12px 0; font-weight:560; }
.banner.warn { background:var(--warn-bg); color:var(--warn); border:1px solid #f5c27a; }
.banner.bad { background:var(--bad-bg); color:var(--bad); border:1px solid #f1a79e; }
.banner.good { background:var(--good-bg); color:var(--good); border:1px solid #9fd4b3; }
.banner.info { background:#eaf2fb; color:#12436b; border:1px solid #a9c8ea; }
.missing { background:#f0f2f5; color:var(--muted); border:1px dashed #b8c2cc;
  border-radius:6px; padding:10px 14px; margin:8px 0; }
.kpis { display:grid; grid-template-columns:repeat(auto-fit, minmax(170px, 1fr)); gap:12px;
  margin:12px 0 4px; }
.kpi { border:1px solid var(--line); border-radius:6px; padding:10px 12px; background:#fbfcfd; }
.kpi .v { font-size:22px; font-weight:650; font-variant-numeric:tabular-nums; }
.kpi .k { color:var(--muted); font-size:13px; }
.grid2 { display:grid; grid-template-columns:repeat(auto-fit, minmax(440px, 1fr)); gap:18px; }
.grid3 { display:grid; grid-template-columns:repeat(auto-fill, minmax(340px, 1fr)); gap:14px; }
figure { margin:0; }
svg.chart { width:100%; height:auto; display:block; }
.scroll { overflow-x:auto; border:1px solid var(--line); border-radius:6px; }
table { border-collapse:collapse; width:100%; font-size:13.5px; }
th, td { padding:5px 8px; text-align:left; border-bottom:1px solid #eceff3; vertical-align:top; }
th { background:#f0f3f7; font-weight:600; position:sticky; top:0; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
tbody tr:nth-child(even) { background:#fafbfc; }
tr.winner { background:#eaf5ee !important; }
tr.failed td { color:var(--bad); }
table.kv, table.compact { width:auto; min-width:360px; }
.nowrap { white-space:nowrap; }
table.kv th { background:none; position:static; color:var(--muted); font-weight:500; }
.tag { display:inline-block; border-radius:10px; padding:0 8px; font-size:12px; font-weight:600;
  white-space:nowrap; }
.tag.completed { background:#dbeafe; color:#0b4a7a; }
.tag.early-stopped { background:#fdebd0; color:#7a4a00; }
.tag.failed { background:var(--bad-bg); color:var(--bad); }
.tag.running { background:#eceff3; color:var(--muted); }
.tag.star { background:#1b6b3a; color:#fff; }
code, pre { font-family:ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size:12.5px; }
pre.error { white-space:pre-wrap; word-break:break-word; margin:0; color:var(--bad); }
.cm { width:auto; margin-top:6px; }
.cm td.cell { text-align:center; min-width:84px; font-size:15px; font-variant-numeric:tabular-nums; }
.gallery { display:grid; grid-template-columns:repeat(auto-fill, minmax(270px, 1fr)); gap:14px; }
.gallery figure { border:1px solid var(--line); border-radius:6px; padding:8px; background:#fbfcfd; }
.gallery img { width:100%; height:auto; display:block; border-radius:3px; }
.gallery figcaption { font-size:12.5px; margin-top:6px; line-height:1.35; overflow-wrap:anywhere; }
.ok { color:var(--good); font-weight:600; } .no { color:var(--bad); font-weight:600; }
ul.tight { margin:4px 0; padding-left:20px; }
footer { color:var(--muted); font-size:12.5px; padding:8px 0 28px; }
"""


def esc(value: Any) -> str:
    """HTML-escaped text of any value."""
    return escape(str(value))


def fmt(value: Any, digits: int = 3) -> str:
    """A number for a table cell; an en dash for missing or non-finite values."""
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
    return esc(value)


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


def tag(reason: str) -> str:
    """A coloured label for a stop reason."""
    return f'<span class="tag {esc(reason)}">{esc(reason)}</span>'


def missing(text: str) -> str:
    """What replaces a section (or part) whose inputs are absent."""
    return f'<div class="missing">{esc(text)}</div>'


def banner(text: str, kind: str = "info", raw: bool = False) -> str:
    """A prominent one-line message: ``warn``, ``bad``, ``good`` or ``info``."""
    return f'<div class="banner {kind}">{text if raw else esc(text)}</div>'


def kpis(items: Iterable[tuple[str, str]]) -> str:
    """Headline numbers as tiles: ``(value html, label)``."""
    tiles = "".join(
        f'<div class="kpi"><div class="v">{v}</div><div class="k">{esc(k)}</div></div>'
        for v, k in items
    )
    return f'<div class="kpis">{tiles}</div>'


def key_values(items: Iterable[tuple[str, str]]) -> str:
    """A two-column table of facts; values are HTML."""
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{v}</td></tr>" for k, v in items)
    return f'<table class="kv"><tbody>{rows}</tbody></table>'


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    numeric: Iterable[int] = (),
    table_id: str | None = None,
    row_classes: Sequence[str] | None = None,
    scroll: bool = True,
    compact: bool = False,
) -> str:
    """A table whose cells are already HTML; columns in ``numeric`` align right.

    ``compact`` sizes it to its content instead of the page width (short fact tables).
    """
    num = set(numeric)
    # <wbr> lets snake_case parameter names break after an underscore: a leaderboard with
    # many parameters then still fits a laptop screen.
    head = "".join(
        f'<th{" class=num" if i in num else ""} scope="col">{esc(h).replace("_", "_<wbr>")}</th>'
        for i, h in enumerate(headers)
    )
    body = []
    for r, cells in enumerate(rows):
        cls = f' class="{row_classes[r]}"' if row_classes and row_classes[r] else ""
        tds = "".join(
            f"<td{' class=num' if i in num else ''}>{c}</td>" for i, c in enumerate(cells)
        )
        body.append(f"<tr{cls}>{tds}</tr>")
    ident = f' id="{esc(table_id)}"' if table_id else ""
    ident += ' class="compact"' if compact else ""
    html = f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    return f'<div class="scroll">{html}</div>' if scroll else html


def png_data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def section(section_id: str, title: str, body: str, intro: str | None = None) -> str:
    """One card of the page, reachable as ``#section_id`` from the table of contents."""
    lead = f'<p class="intro">{intro}</p>' if intro else ""
    return (
        f'<section class="card" id="{esc(section_id)}"><h2>{esc(title)}</h2>{lead}{body}</section>'
    )


def page(
    title: str, subtitle: str, toc: Sequence[tuple[str, str]], body: Sequence[str], footer: str
) -> str:
    """The whole document."""
    links = "".join(f'<a href="#{esc(i)}">{esc(label)}</a>' for i, label in toc)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f'<header class="top"><div class="wrap"><h1>{esc(title)}</h1><p>{subtitle}</p>'
        f'<nav class="toc">{links}</nav></div></header>'
        f'<main class="wrap">{"".join(body)}</main>'
        f'<footer class="wrap">{footer}</footer></body></html>\n'
    )


__all__ = [
    "banner",
    "duration",
    "esc",
    "fmt",
    "key_values",
    "kpis",
    "missing",
    "page",
    "png_data_uri",
    "section",
    "table",
    "tag",
]
