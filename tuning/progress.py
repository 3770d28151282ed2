"""Watching a study: an observer that the study tells what happens, and the terminal one.

`run_study` accepts any `StudyObserver`; the base class ignores everything (a notebook
or a script that only wants the result), and `RichProgress` draws the live status table
the command line shows in place of Ray's wall of logs. Engines report trial events here
through the study, so nothing in this module knows which engine runs the trials.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from tuning.leaderboard import stop_counts
from tuning.objective import best

if TYPE_CHECKING:
    from rich.console import Console
    from rich.live import Live
    from rich.table import Table

    from tuning.leaderboard import Leaderboard
    from tuning.results import RoleSummary, Verdict

# What an engine says about a trial.
TRIAL_EVENTS = ("started", "epoch", "completed", "failed", "retried")


class StudyObserver:
    """Receives a study's events; every method is a no-op here. Subclass what you need."""

    def note(self, label: str, text: str) -> None:
        """A line of news: ``("data", "covid-cxr: train 224, ...")``."""

    def warning(self, text: str) -> None:
        """Something went wrong that does not stop the study."""

    def search_started(self, board: Leaderboard, total: int) -> None:
        """The search begins; ``total`` trials are planned."""

    def trial_event(self, board: Leaderboard, trial_id: str, event: str) -> None:
        """One of `TRIAL_EVENTS` happened to a trial; ``board`` holds its row already."""

    def search_ended(self, board: Leaderboard) -> None:
        """The search is over (finished, out of budget or interrupted)."""

    def comparison(self, roles: Mapping[str, RoleSummary], verdict: Verdict) -> None:
        """The retrained models (``best``, ``baseline``, ``default``) and the verdict."""


def duration(seconds: float) -> str:
    """``H:MM:SS``."""
    seconds = int(max(0, seconds))
    return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class RichProgress(StudyObserver):
    """The terminal display: notes as lines, the search as a live table.

    Args:
        console: Where to draw (a `rich.console.Console`).
        refresh_s: The live table is redrawn at most this often between trial ends.
    """

    def __init__(self, console: Console | None = None, refresh_s: float = 0.5) -> None:
        from rich.console import Console

        self.console = console or Console()
        self.refresh_s = refresh_s
        self.started = time.monotonic()
        self.total = 0
        self._board: Leaderboard | None = None
        self._last = 0.0
        self._live: Live | None = None

    def note(self, label: str, text: str) -> None:
        from rich.markup import escape

        self.console.print(f"[bold]{escape(label)}[/] {escape(text)}")

    def warning(self, text: str) -> None:
        from rich.markup import escape

        self.console.print(f"[yellow]warning: {escape(text)}[/]")

    def search_started(self, board: Leaderboard, total: int) -> None:
        self._board, self.total, self.started = board, total, time.monotonic()

    def trial_event(self, board: Leaderboard, trial_id: str, event: str) -> None:
        self._board = board
        self._refresh(force=event in ("completed", "failed"))

    def search_ended(self, board: Leaderboard) -> None:
        self._board = board
        if self._live is not None:
            self._live.update(self.render(), refresh=True)
            self._live.stop()
            self._live = None

    def render(self) -> Table:
        """The status table: trials done by outcome, the best so far, elapsed time and ETA."""
        from rich.table import Table

        board = self._board
        rows = list(board.rows.values()) if board is not None else []
        counts = stop_counts(rows)
        finished = counts["completed"] + counts["early-stopped"] + counts["failed"]
        elapsed = time.monotonic() - self.started
        eta = elapsed / finished * (self.total - finished) if finished else None
        table = Table(show_header=False, box=None, pad_edge=False)
        table.add_row(
            "[bold]trials[/]",
            f"{finished}/{self.total} done · [green]{counts['completed']} completed[/] · "
            f"[yellow]{counts['early-stopped']} early-stopped[/] · "
            f"[red]{counts['failed']} failed[/] · {counts['running']} running",
        )
        top = best(rows, lambda r: r.best_metric, board.mode) if board is not None else None
        if board is not None and top is not None and top.best_metric is not None:
            table.add_row(
                "[bold]best[/]",
                f"{board.metric} {top.best_metric:.4f} "
                f"(trial {top.trial_id}, epoch {top.best_epoch})",
            )
        table.add_row(
            "[bold]time[/]",
            f"elapsed {duration(elapsed)} · ETA {duration(eta) if eta is not None else '–'}",
        )
        return table

    def _refresh(self, force: bool = False) -> None:
        from rich.live import Live

        now = time.monotonic()
        if not force and now - self._last < self.refresh_s:
            return
        self._last = now
        if self._live is None:
            self._live = Live(
                self.render(), console=self.console, auto_refresh=False, transient=False
            )
            self._live.start()
        self._live.update(self.render(), refresh=True)

    def comparison(self, roles: Mapping[str, RoleSummary], verdict: Verdict) -> None:
        from rich.markup import escape
        from rich.table import Table

        shown = [(r, label) for r, label in ROLE_LABELS if r in roles]
        table = Table(
            title="test split at each model's operating point (chosen on validation): "
            "mean ± std over seeds, [95% CI] of the exported model"
        )
        table.add_column("metric")
        for _, label in shown:
            table.add_column(label, justify="right")
        table.add_row(
            "threshold",
            *(_threshold(roles[r]) for r, _ in shown),
        )
        for name in TABLE_METRICS:
            table.add_row(name, *(_cell(roles[r], name) for r, _ in shown))
        self.console.print(table)
        style = {"good": "bold green", "bad": "bold red", "warn": "bold yellow", "none": "bold"}
        self.console.print(f"[{style[verdict.kind]}]{escape(verdict.text)}[/]")
        for check in verdict.checks:
            mark = {True: "[green]✓[/]", False: "[red]✗[/]", None: "[yellow]?[/]"}[check.passed]
            self.console.print(f"  {mark} {escape(check.name)}: {escape(check.detail)}")


ROLE_LABELS = (("best", "tuned"), ("default", "sensible default"), ("baseline", "recipe"))
TABLE_METRICS = (
    "auc", "average_precision", "sensitivity", "specificity", "ppv", "npv", "f1", "ece",
)  # fmt: skip


def _threshold(summary: RoleSummary) -> str:
    return "argmax" if summary.threshold is None else f"{summary.threshold:.3f}"


def _cell(summary: RoleSummary, name: str) -> str:
    text = summary.test_stat(name).text()
    interval = summary.exported_test.ci(name) if summary.exported_test else None
    return text + (f"  [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "")


__all__ = ["TRIAL_EVENTS", "RichProgress", "StudyObserver", "duration"]
