"""Watching a study: an observer that the study tells what happens, and the terminal one.

`run_study` accepts any `StudyObserver`; the base class ignores everything (a notebook
or a script that only wants the result), and `RichProgress` draws the live status table
the command line shows in place of Ray's wall of logs. `PlainProgress` is its twin for an
output that is not a terminal (a log file, ``ray job submit``, CI, ``nohup``): one plain
line per trial event and a status line at most every 30 s, so ``tail -f`` shows the study.
Engines report trial events here through the study, so nothing in this module knows
which engine runs the trials.

`library_logs_to` sends the Python loggers of Ray (and the libraries under it) to a file
in the run folder, so their warnings never land in the middle of the display.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from tuning.leaderboard import stop_counts
from tuning.objective import best

if TYPE_CHECKING:
    from rich.console import Console
    from rich.live import Live
    from rich.table import Table

    from tuning.leaderboard import Leaderboard, TrialRow
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

    def retrain_started(self, roles: Sequence[str], seeds: Sequence[int], epochs: int) -> None:
        """The final retrain begins: each role trains once per seed for ``epochs`` epochs."""

    def retrain_progress(
        self, role: str, seed: int, epoch: int, epochs: int, finished: bool = False
    ) -> None:
        """A retrain seed finished ``epoch`` of ``epochs``; ``finished``: the whole seed is
        done (its model trained and evaluated)."""

    def retrain_finished(self, wall_s: float, complete: bool = True) -> None:
        """The retrain is over: every seed done, or (``complete`` False) stopped early by a
        signal or a failure, its finished seeds kept for ``--resume``."""

    def comparison(self, roles: Mapping[str, RoleSummary], verdict: Verdict) -> None:
        """The retrained models (``best``, ``baseline``, ``default``) and the verdict."""


class _RetrainClock:
    """What the retrain has done so far, and the ETA that follows from it."""

    def __init__(self, roles: Sequence[str], seeds: Sequence[int], epochs: int) -> None:
        self.roles, self.seeds, self.epochs = tuple(roles), tuple(seeds), max(1, epochs)
        self.started = time.monotonic()
        self.epoch: dict[tuple[str, int], int] = {(r, s): 0 for r in roles for s in seeds}
        self.done: set[tuple[str, int]] = set()

    def update(self, role: str, seed: int, epoch: int, finished: bool) -> None:
        key = (role, seed)
        self.epoch[key] = max(self.epoch.get(key, 0), epoch)
        if finished:
            self.done.add(key)
            self.epoch[key] = self.epochs

    @property
    def total(self) -> int:
        return len(self.epoch) * self.epochs

    @property
    def fraction(self) -> float:
        return sum(self.epoch.values()) / self.total if self.total else 0.0

    def eta(self) -> float | None:
        frac = self.fraction
        elapsed = time.monotonic() - self.started
        return elapsed * (1 - frac) / frac if frac > 0 else None

    def status(self) -> str:
        eta = self.eta()
        return (
            f"{len(self.done)}/{len(self.epoch)} seeds done · "
            f"{sum(self.epoch.values())}/{self.total} epochs · "
            f"elapsed {duration(time.monotonic() - self.started)} · "
            f"ETA {duration(eta) if eta is not None else '–'}"
        )


def _search_status(board: Leaderboard | None, total: int, started: float) -> dict[str, str]:
    """The search's status in words: ``trials``, ``best`` (when known) and ``time``."""
    rows = list(board.rows.values()) if board is not None else []
    counts = stop_counts(rows)
    finished = counts["completed"] + counts["early-stopped"] + counts["failed"]
    elapsed = time.monotonic() - started
    eta = elapsed / finished * (total - finished) if finished else None
    out = {
        "trials": f"{finished}/{total} done · {counts['completed']} completed · "
        f"{counts['early-stopped']} early-stopped · {counts['failed']} failed · "
        f"{counts['running']} running",
        "time": f"elapsed {duration(elapsed)} · ETA {duration(eta) if eta is not None else '–'}",
    }
    top = best(rows, lambda r: r.best_metric, board.mode) if board is not None else None
    if board is not None and top is not None and top.best_metric is not None:
        out["best"] = (
            f"{board.metric} {top.best_metric:.4f} (trial {top.trial_id}, epoch {top.best_epoch})"
        )
    return out


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
        self._retrain: _RetrainClock | None = None
        self._told: set[str] = set()  # what the verdict's checks said (see `warning`)

    def note(self, label: str, text: str) -> None:
        from rich.markup import escape

        self.console.print(f"[bold]{escape(label)}[/] {escape(text)}")

    def warning(self, text: str) -> None:
        """Prints the warning, unless a check of the verdict already said the same words
        (the study warns about an external set after the comparison showed its check)."""
        from rich.markup import escape

        if text in self._told:
            return
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
        from rich.markup import escape
        from rich.table import Table

        status = _search_status(self._board, self.total, self.started)
        table = Table(show_header=False, box=None, pad_edge=False)
        for key in ("trials", "best", "time"):
            if key in status:
                table.add_row(f"[bold]{key}[/]", escape(status[key]))
        return table

    def retrain_started(self, roles: Sequence[str], seeds: Sequence[int], epochs: int) -> None:
        from rich.live import Live

        self._retrain = _RetrainClock(roles, seeds, epochs)
        self._live = Live(
            self._render_retrain(), console=self.console, auto_refresh=False, transient=False
        )
        self._live.start()

    def retrain_progress(
        self, role: str, seed: int, epoch: int, epochs: int, finished: bool = False
    ) -> None:
        clock = getattr(self, "_retrain", None)
        if clock is None:
            return
        clock.update(role, seed, epoch, finished)
        if self._live is not None:
            self._live.update(self._render_retrain(), refresh=True)

    def retrain_finished(self, wall_s: float, complete: bool = True) -> None:
        if self._live is not None:
            self._live.update(self._render_retrain(), refresh=True)
            self._live.stop()
            self._live = None
        self._retrain = None

    def _render_retrain(self) -> Table:
        from rich.table import Table

        clock: _RetrainClock = self._retrain  # type: ignore[assignment]
        table = Table(show_header=False, box=None, pad_edge=False)
        for role in clock.roles:
            cells = []
            for seed in clock.seeds:
                done = (role, seed) in clock.done
                epoch = clock.epoch.get((role, seed), 0)
                cells.append(
                    f"seed {seed} [green]done[/]" if done else f"seed {seed} {epoch}/{clock.epochs}"
                )
            table.add_row(f"[bold]retrain {role}[/]", " · ".join(cells))
        table.add_row("[bold]time[/]", clock.status())
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
            "the exported model with its [95% CI], then (seeds: mean ± sd)"
        )
        table.add_column("metric")
        for _, label in shown:
            table.add_column(label, justify="right")
        table.add_row(
            "threshold",
            *(_threshold(roles[r]) for r, _ in shown),
        )
        for name in TABLE_METRICS:
            table.add_row(name, *(_plain_cell(roles[r], name) for r, _ in shown))
        self.console.print(table)
        style = {"good": "bold green", "bad": "bold red", "warn": "bold yellow", "none": "bold"}
        self.console.print(f"[{style[verdict.kind]}]{escape(verdict.text)}[/]")
        for check in verdict.checks:
            mark = {True: "[green]✓[/]", False: "[red]✗[/]", None: "[yellow]?[/]"}[check.passed]
            self.console.print(f"  {mark} {escape(check.name)}: {escape(check.detail)}")
        self._told.update(c.detail for c in verdict.checks)
        for label, text in _unstable(roles):
            self.console.print(f"[yellow]seeds of the {escape(label)} model: {escape(text)}[/]")


class PlainProgress(StudyObserver):
    """Progress as plain lines, for an output that is not a terminal.

    One line per trial event (``trial 3f2a_00001 started on 10.0.0.2: learning_rate=...``)
    and, at most every ``status_s`` seconds, a status line with trials done, running, the
    best so far and the ETA. Every line is flushed at once, so a log file that is read
    while the study runs is up to date.

    Args:
        stream: Where lines go (default: ``sys.stdout`` at the time of each write).
        status_s: Least seconds between two status lines.
    """

    def __init__(self, stream: TextIO | None = None, status_s: float = 30.0) -> None:
        self.stream = stream
        self.status_s = status_s
        self.started = time.monotonic()
        self.total = 0
        self._board: Leaderboard | None = None
        self._last_status = time.monotonic()
        self._retrain: _RetrainClock | None = None
        self._told: set[str] = set()  # what the verdict's checks said (see `warning`)

    def _line(self, text: str) -> None:
        stream = self.stream or sys.stdout
        stream.write(f"{time.strftime('%H:%M:%S')} {text}\n")
        stream.flush()

    def note(self, label: str, text: str) -> None:
        self._line(f"{label} {text}")

    def warning(self, text: str) -> None:
        """Writes the warning, unless a check of the verdict already said the same words
        (the study warns about an external set after the comparison showed its check)."""
        if text in self._told:
            return
        self._line(f"warning: {text}")

    def search_started(self, board: Leaderboard, total: int) -> None:
        self._board, self.total, self.started = board, total, time.monotonic()
        self._last_status = self.started
        self._line(f"search: {total} trials planned")

    def trial_event(self, board: Leaderboard, trial_id: str, event: str) -> None:
        self._board = board
        row = board.rows.get(trial_id) if trial_id else None
        if row is not None and event in TRIAL_EVENTS:
            self._line(_event_line(board, row, event))
        self._maybe_status()

    def search_ended(self, board: Leaderboard) -> None:
        self._board = board
        self._status()

    def _maybe_status(self, force: bool = False) -> None:
        if force or time.monotonic() - self._last_status >= self.status_s:
            self._status()

    def _status(self) -> None:
        self._last_status = time.monotonic()
        if self._retrain is not None:
            self._line(f"status retrain: {self._retrain.status()}")
            return
        status = _search_status(self._board, self.total, self.started)
        self._line("status " + " | ".join(f"{k} {v}" for k, v in status.items()))

    def retrain_started(self, roles: Sequence[str], seeds: Sequence[int], epochs: int) -> None:
        self._retrain = _RetrainClock(roles, seeds, epochs)
        self._last_status = time.monotonic()
        self._line(
            f"retrain: {', '.join(roles)} × seeds {list(seeds)}, {epochs} epochs each "
            f"({len(roles) * len(seeds)} runs)"
        )

    def retrain_progress(
        self, role: str, seed: int, epoch: int, epochs: int, finished: bool = False
    ) -> None:
        if self._retrain is None:
            self._retrain = _RetrainClock([role], [seed], epochs)
        self._retrain.update(role, seed, epoch, finished)
        eta = self._retrain.eta()
        what = "done" if finished else f"epoch {epoch}/{epochs}"
        self._line(
            f"retrain {role} seed {seed} {what} · ETA {duration(eta) if eta is not None else '–'}"
        )
        self._maybe_status()

    def retrain_finished(self, wall_s: float, complete: bool = True) -> None:
        if complete:
            self._line(f"retrain: all seeds done in {duration(wall_s)}")
        else:
            done = len(self._retrain.done) if self._retrain is not None else 0
            self._line(
                f"retrain: stopped after {duration(wall_s)} with {done} seed(s) done; "
                "they are kept, and --resume trains the others"
            )
        self._retrain = None

    def comparison(self, roles: Mapping[str, RoleSummary], verdict: Verdict) -> None:
        for role, label in ROLE_LABELS:
            if role not in roles:
                continue
            cells = " · ".join(f"{name} {_plain_cell(roles[role], name)}" for name in TABLE_METRICS)
            self._line(f"test {label}: threshold {_threshold(roles[role])} · {cells}")
        self._line(f"verdict: {verdict.text}")
        for check in verdict.checks:
            mark = {True: "ok", False: "FAILED", None: "unknown"}[check.passed]
            self._line(f"  [{mark}] {check.name}: {check.detail}")
        self._told.update(c.detail for c in verdict.checks)
        for label, text in _unstable(roles):
            self._line(f"seeds of the {label} model: {text}")


def _event_line(board: Leaderboard, row: TrialRow, event: str) -> str:
    """One trial event as a line: id, what happened, the values that go with it, the node."""
    where = f" on {row.node_ip}" if row.node_ip else ""
    head = f"trial {row.trial_id}"
    if event == "started":
        params = ", ".join(f"{k}={_value(v)}" for k, v in sorted(row.params.items()))
        return f"{head} started{where}: {params}"
    if event == "epoch":
        values = " ".join(
            f"{name} {_value(row.column(name))}"
            for name in ("val_auc", "val_loss", "val_accuracy")
            if row.column(name) is not None
        )
        return f"{head} epoch {row.epochs_run}/{row.max_epochs or '?'}{where}: {values}"
    if event == "failed":
        return f"{head} failed{where} after {row.epochs_run or 0} epoch(s): {row.error}"
    if event == "retried":
        return f"{head} retried{where} (retry {row.retries}): {row.error}"
    best_text = f"{board.metric} {_value(row.best_metric)} at epoch {row.best_epoch}"
    return f"{head} stopped ({row.reason}){where} after {row.epochs_run} epoch(s): best {best_text}"


def _value(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _plain_cell(summary: RoleSummary, name: str) -> str:
    """The exported model's value with its 95% CI, then the spread over seeds: the
    interval belongs to the value printed beside it, never to the seeds' mean."""
    metrics = summary.exported_test
    value = metrics.value(name) if metrics is not None else None
    interval = metrics.ci(name) if metrics is not None else None
    text = "–" if value is None else f"{value:.3f}"
    if interval:
        text += f" [{interval[0]:.3f}, {interval[1]:.3f}]"
    seeds = summary.test_stat(name)
    if seeds.n > 1:
        text += f" (seeds {seeds.text()})"
    return text


def progress_for(stream: TextIO | None = None) -> StudyObserver:
    """The display for ``stream`` (default stdout): `RichProgress` on a terminal, else
    `PlainProgress`."""
    stream = stream or sys.stdout
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    if tty:
        from rich.console import Console

        return RichProgress(Console(file=stream))
    return PlainProgress(stream)


# Loggers whose records go to the run folder's log instead of the console (py.warnings:
# Python warnings of any library, e.g. a FutureWarning raised inside an exporter).
LIBRARY_LOGGERS = ("ray", "py.warnings")
LIBRARY_LOG_FILE = "ray.log"


@contextlib.contextmanager
def library_logs_to(path: Path, names: Sequence[str] = LIBRARY_LOGGERS) -> Iterator[Path]:
    """Sends the records of the ``names`` loggers and their children to the file ``path``.

    Ray's loggers write to the console themselves (``ray`` does not propagate), so their
    console handlers are swapped for one file handler while the block runs, and put
    back afterwards. Ray's warnings ("Failed to fetch metrics for 3 trial(s)", autoscaler
    and worker messages) then land in ``runs/NAME/ray.log``, not in the progress display.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    saved: list[tuple[logging.Logger, list[logging.Handler], bool]] = []
    for logger in _loggers_under(names):
        if logger.name in names or logger.handlers:
            console = [h for h in logger.handlers if _is_console(h)]
            saved.append((logger, console, logger.propagate))
            for h in console:
                logger.removeHandler(h)
            if logger.name in names or console:
                logger.addHandler(handler)
                logger.propagate = False
    capture = "py.warnings" in names
    if capture:
        logging.captureWarnings(True)
    restore_ray = (
        _ray_driver_prints_to(logging.getLogger("ray.driver_output")) if ("ray" in names) else None
    )
    try:
        yield path
    finally:
        if restore_ray is not None:
            restore_ray()
        if capture:
            logging.captureWarnings(False)
        for logger, console, propagate in saved:
            logger.removeHandler(handler)
            for h in console:
                logger.addHandler(h)
            logger.propagate = propagate
        handler.close()


def _ray_driver_prints_to(logger: logging.Logger) -> Callable[[], None] | None:
    """Routes what Ray's driver prints itself (raylet and autoscaler messages such as "A
    worker died or was killed while executing a task", with ``log_to_driver=False`` too)
    to ``logger``; returns the undo, or None where this Ray has no such function."""
    module = sys.modules.get("ray._private.worker")
    original = getattr(module, "print_to_stdstream", None)
    if module is None or original is None:
        return None

    def to_log(data: dict, ignore_prefix: bool = False) -> None:
        source = data.get("pid", "?")
        for line in data.get("lines", ()):
            logger.warning("(%s) %s", source, line)

    module.print_to_stdstream = to_log  # type: ignore[attr-defined]

    def undo() -> None:
        module.print_to_stdstream = original  # type: ignore[attr-defined]

    return undo


def _loggers_under(names: Sequence[str]) -> list[logging.Logger]:
    out = [logging.getLogger(n) for n in names]
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and any(name.startswith(n + ".") for n in names):
            out.append(logger)
    return out


def _is_console(handler: logging.Handler) -> bool:
    return isinstance(handler, logging.StreamHandler) and not isinstance(
        handler, logging.FileHandler
    )


ROLE_LABELS = (("best", "tuned"), ("default", "sensible default"), ("baseline", "recipe"))
TABLE_METRICS = (
    "auc", "average_precision", "sensitivity", "specificity", "ppv", "npv", "f1", "ece",
)  # fmt: skip


def _unstable(roles: Mapping[str, RoleSummary]) -> list[tuple[str, str]]:
    """(label, flag) for each role whose seeds disagree by more than its interval
    (`tuning.results.seed_spread`)."""
    from tuning.results import seed_spread

    flagged = [(label, seed_spread(roles[r])) for r, label in ROLE_LABELS if r in roles]
    return [(label, spread.text) for label, spread in flagged if spread.unstable]


def _threshold(summary: RoleSummary) -> str:
    return "argmax" if summary.threshold is None else f"{summary.threshold:.3f}"


__all__ = [
    "LIBRARY_LOG_FILE",
    "TRIAL_EVENTS",
    "PlainProgress",
    "RichProgress",
    "StudyObserver",
    "duration",
    "library_logs_to",
    "progress_for",
]
