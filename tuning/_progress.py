"""Live study progress in the terminal, in place of Ray's own wall of logs."""

from __future__ import annotations

import time
from typing import Any

from ray.tune import Callback
from rich.console import Console
from rich.live import Live
from rich.table import Table

from tuning._leaderboard import Leaderboard


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class ProgressCallback(Callback):
    """Redraws a small status table from the leaderboard a few times per second."""

    def __init__(self, board: Leaderboard, total: int, console: Console, refresh_s: float = 0.5):
        self.board = board
        self.total = total
        self.console = console
        self.refresh_s = refresh_s
        self.started = time.monotonic()
        self._last = 0.0
        self._live: Live | None = None

    def __getstate__(self) -> dict[str, Any]:
        # Pickled with the RunConfig by Ray; the console and live display stay behind.
        state = self.__dict__.copy()
        state.update(board=None, console=None, _live=None)
        return state

    def counts(self) -> dict[str, int]:
        out = {"completed": 0, "early-stopped": 0, "failed": 0, "running": 0}
        for row in self.board.rows.values():
            reason = row.get("stop_reason") or "running"
            if reason in out:
                out[reason] += 1
        return out

    def render(self) -> Table:
        counts = self.counts()
        finished = counts["completed"] + counts["early-stopped"] + counts["failed"]
        elapsed = time.monotonic() - self.started
        eta = elapsed / finished * (self.total - finished) if finished else None
        best = None
        for row in self.board.rows.values():
            value = row.get("best_metric")
            if value is None:
                continue
            if best is None or (
                value > best["best_metric"]
                if self.board.mode == "max"
                else value < best["best_metric"]
            ):
                best = row
        table = Table(show_header=False, box=None, pad_edge=False)
        table.add_row(
            "[bold]trials[/]",
            f"{finished}/{self.total} done · [green]{counts['completed']} completed[/] · "
            f"[yellow]{counts['early-stopped']} early-stopped[/] · [red]{counts['failed']} failed[/] · "
            f"{counts['running']} running",
        )
        if best is not None:
            table.add_row(
                "[bold]best[/]",
                f"{self.board.metric} {best['best_metric']:.4f} (trial {best['trial_id']}, epoch {best['best_epoch']})",
            )
        table.add_row(
            "[bold]time[/]",
            f"elapsed {_duration(elapsed)} · ETA {_duration(eta) if eta is not None else '–'}",
        )
        return table

    def _refresh(self, force: bool = False) -> None:
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

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        self._refresh()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._refresh(force=True)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._refresh(force=True)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.close()

    def close(self) -> None:
        if self._live is not None:
            self._live.update(self.render(), refresh=True)
            self._live.stop()
            self._live = None
