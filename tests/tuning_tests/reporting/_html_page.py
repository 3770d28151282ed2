"""What the report tests look for in a page, and a private copy of the session's tiny run."""

from __future__ import annotations

import shutil
from html.parser import HTMLParser
from pathlib import Path

SECTIONS = (
    "overview",
    "study",
    "leaderboard",
    "selection",
    "progress",
    "parameters",
    "curves",
    "workers",
    "test",
    "calibration",
    "external",
    "gradcam",
    "failed",
)


class Page(HTMLParser):
    """Section ids, table rows, links and images of a page."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.rows: dict[str, int] = {}  # table id -> rows in its <tbody>
        self.links: list[str] = []  # every src= and href= value
        self.images: dict[str, list[str]] = {}  # section id -> <img> sources
        self._table: str | None = None
        self._in_body = False
        self._section: str | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.links += [v or "" for k, v in attrs if k in ("src", "href")]
        if tag == "section":
            self._section = a.get("id")
            self.sections.append(self._section or "")
        elif tag == "table":
            self._table = a.get("id")
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body and self._table:
            self.rows[self._table] = self.rows.get(self._table, 0) + 1
        elif tag == "img":
            self.images.setdefault(self._section or "", []).append(a.get("src") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self._in_body = False
        elif tag == "table":
            self._table = None


def copy_run(run_dir: Path, parent: Path) -> Path:
    """A copy of a finished run folder under ``parent``, keeping its name (the Optuna
    study in optuna.db is named after the folder)."""
    copy = parent / run_dir.name
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("tune", ".lock", "report.html"))
    return copy
