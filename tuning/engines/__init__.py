"""Search engines: what drives the trials of a study, behind one small contract.

An engine starts (or joins) whatever runs trials, holds the decoded data set where trials
can read it, runs the search into a `Leaderboard`, and runs the final retrain's seeds.
`tuning.study` only talks to this `Engine` protocol; the registry below maps the names
``--engine`` accepts to the classes, imported only when chosen.

    ray          Ray Tune + Optuna TPE + ASHA, on this machine or a Ray cluster
    keras-tuner  KerasTuner (Hyperband, Bayesian optimisation or random search), in this process
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from covidxr_core.errors import ConfigError
from tuning.engines.registry import ENGINE_NAMES, KERAS_TUNER_ALGORITHMS, REGISTRY

if TYPE_CHECKING:
    from search_spaces import SearchSpace
    from tuning.leaderboard import Leaderboard
    from tuning.progress import StudyObserver
    from tuning.runfolder import RunLocation
    from tuning.spec import StudySpec


@dataclass(frozen=True)
class SearchJob:
    """What an engine's search gets: the study, its space, data and where results go.

    ``data`` is what `Engine.share` returned; ``base`` the `TrainConfig` each trial's
    sampled values are applied to; ``folds`` the cross-validation folds (``--cv``);
    ``starts`` the starting points to run first; ``early`` the early-stopping decision.
    """

    spec: StudySpec
    space: SearchSpace
    data: Any
    base: Any
    location: RunLocation
    resume: bool
    observer: StudyObserver
    folds: Any = None  # with --cv K: the K (train_idx, val_idx) pairs every trial trains
    # The known-good configurations run first, for the full budget (tuning.starts.Start).
    starts: tuple[Any, ...] = ()
    # Whether and when the scheduler may stop trials (tuning.budget.EarlyStopping); None:
    # the rule of tuning.budget with what the engine knows.
    early: Any = None


class Engine(Protocol):
    """The contract between a study and whatever drives its trials.

    Call order: `start` (before the run folder is claimed, so an unreachable cluster
    leaves nothing behind), `share` once, `check_storage`, `search`, then `run_jobs` for
    the retrain, and `hardware` for the summary; `stop` at the end.
    """

    name: str

    def start(self, spec: StudySpec) -> None:
        """Connects to (or starts) what runs trials; raises `StudyError` if it cannot."""

    def share(self, data: Any) -> Any:
        """Puts the decoded data set where trials read it, once per study; returns the handle."""

    def check_storage(self, location: RunLocation) -> None:
        """Raises `StorageError` if some worker cannot reach the run folder."""

    def search(self, job: SearchJob) -> Leaderboard:
        """Runs (or resumes) the trials; returns the filled leaderboard, saved as Parquet."""

    def run_jobs(
        self,
        fn: Callable[..., Any],
        calls: Sequence[tuple[Any, ...]],
        data: Any,
        spec: StudySpec,
        on_done: Callable[[int, Any], None] | None = None,
        on_epoch: Callable[[int, int], None] | None = None,
    ) -> list[Any]:
        """``[fn(*call, data) for call in calls]``, run where the engine runs work.

        ``on_done(index, result)`` is called as each call finishes (in finishing order),
        so a caller can save finished work before the rest is done. With ``on_epoch``,
        ``fn`` is called with a ``progress=`` keyword, a function of the epoch it just
        finished, and the engine passes those on as ``on_epoch(index, epoch)``.
        """

    def hardware(self) -> dict[str, float]:
        """``nodes``, ``cpus`` and ``gpus`` the study ran on."""

    def stop(self) -> None:
        """Releases what `start` acquired (a no-op where nothing was)."""


def get_engine(name: str) -> Engine:
    """A new engine by its registered name.

    Raises:
        ConfigError: ``name`` is not registered (the message lists the names that are).
    """
    if name not in REGISTRY:
        raise ConfigError(f"engine must be one of {list(ENGINE_NAMES)}, but got {name!r}")
    module, _, cls = REGISTRY[name].partition(":")
    engine: Engine = getattr(importlib.import_module(module), cls)()
    return engine


__all__ = ["ENGINE_NAMES", "KERAS_TUNER_ALGORITHMS", "Engine", "SearchJob", "get_engine"]
