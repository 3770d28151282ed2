"""Ray Tune's trial events, translated into leaderboard rows and observer events.

The leaderboard itself knows nothing of Ray; this callback, running in the driver, is the
adapter. It writes the board at the end of Tune's step, after Tune has checkpointed its
own experiment state, so a trial the leaderboard shows as finished is one a resumed study
will not run again.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ray.tune import Callback

from tuning import holds
from tuning.engines.ray_trial import FAILURE_MARKER
from tuning.failures import error_line
from tuning.leaderboard import Leaderboard
from tuning.progress import StudyObserver
from tuning.signals import stop_requested


def read_error(trial: Any) -> str:
    """The last line of a failed trial's error file: the exception, without Ray's wrapping.

    A trial that left the deterministic-failure marker (its time-limit watchdog fired, or
    it failed in a way a retry cannot fix) is described by the marker: without a retry
    to re-raise it, Ray's error file only says that the worker process died.
    """
    # The driver's staging folder (what a trial on this machine writes to), then the storage
    # folder Tune syncs it to.
    for folder in ("local_path", "path"):
        try:
            marker = Path(getattr(trial, folder)) / FAILURE_MARKER
            if marker.is_file():
                return f"TrialFailed: {marker.read_text(errors='replace').strip()}"[:2000]
        except (OSError, TypeError, RuntimeError):
            continue
    try:
        text = Path(trial.error_file).read_text(errors="replace")
    except (OSError, TypeError):
        return "trial failed (no error file)"
    return error_line(text)


class LeaderboardCallback(Callback):
    """Keeps a `Leaderboard` (and an observer) in step with Ray Tune's trial events.

    Args:
        board: The study's leaderboard.
        gpus: GPU fraction per trial (recorded per row).
        cpus: CPUs per trial.
        on_save: Called after each write of the board (a cloud run mirrors it).
        observer: Told of every trial event.
    """

    def __init__(
        self,
        board: Leaderboard,
        gpus: float,
        cpus: float,
        on_save: Callable[[], None] | None = None,
        observer: StudyObserver | None = None,
        frozen: frozenset[str] = frozenset(),
    ):
        self.board = board
        # Trials finished before this driver started (a resume): their rows stand, even
        # where Tune's restored state holds them as unfinished and starts them again.
        self.frozen = frozen
        self.gpus = gpus
        self.cpus = cpus
        self.on_save = on_save
        self.observer = observer or StudyObserver()
        self._dirty = False
        self._passed: list[str] = []

    def __getstate__(self) -> dict[str, Any]:
        # Ray pickles the RunConfig into the experiment folder; the live objects are
        # replaced on resume, so only a placeholder needs to survive.
        return {
            "board": None,
            "gpus": self.gpus,
            "cpus": self.cpus,
            "on_save": None,
            "observer": None,
            "_dirty": False,
            "_passed": [],
            "frozen": frozenset(),
        }

    def _changed(self, trial_id: str, event: str) -> None:
        if event != "epoch":
            self._dirty = True
        if event in HOLD_POINTS:
            self._passed.append(HOLD_POINTS[event])
        self.observer.trial_event(self.board, trial_id, event)

    def _flush(self) -> None:
        if self._dirty:
            self._dirty = False
            self.board.save()
            if self.on_save is not None:
                self.on_save()

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        # A heartbeat: lets a display refresh its clock between events.
        self.observer.trial_event(self.board, "", "tick")

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self._flush()
        passed, self._passed = self._passed, []
        for point in passed:  # saved above: a test may stop the driver here (tuning.holds)
            holds.reached(point)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if trial.trial_id in self.frozen:
            return
        self.board.start(trial.trial_id, trial.config, self.gpus, self.cpus)
        self._changed(trial.trial_id, "started")

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        if trial.trial_id in self.frozen:
            return
        self.board.result(trial.trial_id, result)
        self._changed(trial.trial_id, "epoch")

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if trial.trial_id in self.frozen:
            return
        self.board.finish(trial.trial_id)
        self._changed(trial.trial_id, "completed")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if trial.trial_id in self.frozen:
            return
        self.board.finish(trial.trial_id, error=read_error(trial))
        self._changed(trial.trial_id, "failed")

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if trial.trial_id in self.frozen:
            return
        self.board.retry(trial.trial_id, read_error(trial))
        self._changed(trial.trial_id, "retried")

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if stop_requested():
            # SIGTERM: Tune saved the running trials as running, then ended them; --resume
            # runs them again, so their rows stay "running" instead of "early-stopped".
            self._flush()
            return
        # Ray skips the error callback for a trial whose retry fails before it is marked
        # running again; its final state is still known here, so no row stays "running".
        for trial in trials:
            if self.board.is_finished(trial.trial_id):
                continue
            if trial.trial_id not in self.board.rows:
                if trial.status not in ("ERROR", "TERMINATED"):
                    continue
                # Ray ends a trial whose reused worker failed to reset without any trial
                # callback; it never ran, and the leaderboard says so instead of losing it.
                self.board.start(trial.trial_id, trial.config, self.gpus, self.cpus)
            if trial.status == "ERROR":
                self.board.finish(trial.trial_id, error=read_error(trial))
                self._changed(trial.trial_id, "failed")
            elif trial.status == "TERMINATED":
                self.board.finish(trial.trial_id)
                self._changed(trial.trial_id, "completed")
        self._flush()


# Trial events that are points of tuning.holds.
HOLD_POINTS = {
    "started": "trial-started",
    "completed": "trial-finished",
    "failed": "trial-finished",
}

__all__ = ["LeaderboardCallback", "read_error"]
