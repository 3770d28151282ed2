"""A trial that hangs is ended by its time limit, and the leaderboard says why.

A real Ray Tune `Tuner` runs `tuning.engines.ray_trial.run_trial` (the production trainable,
with its watchdog) and a real `LeaderboardCallback`. One of two trials hangs: the data it
is given is a real `Dataset` behind a wrapper whose ``splits`` attribute blocks for
trials whose folder name says "hang" (as a read from a stalled network file system
would), so the hang happens inside `train`, where no Tune callback can see it.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import ray
from _figures import observe
from ray import cloudpickle, tune

from covidxr_core.data import DataConfig, Dataset, load_dataset
from covidxr_core.model import preset
from covidxr_core.train import TrainConfig
from search_spaces import get_space
from tuning.engines.ray_callbacks import LeaderboardCallback
from tuning.engines.ray_trial import run_trial
from tuning.leaderboard import Leaderboard

pytestmark = pytest.mark.slow

# Long enough for a healthy trial (Keras import + one 64 px epoch) on two busy cores.
TIME_LIMIT_S = 60.0


class HangingSplits:
    """A `Dataset` whose ``splits`` never returns inside a trial whose folder says "hang"."""

    def __init__(self, dataset: Dataset) -> None:
        self._dataset = dataset

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # pickling looks for dunders before _dataset exists
            raise AttributeError(name)
        return getattr(self._dataset, name)

    @property
    def splits(self) -> dict:
        if "hang" in Path(tune.get_context().get_trial_dir()).name:
            while True:
                time.sleep(1.0)
        return self._dataset.splits


class RetryCounter(tune.Callback):
    """Counts Tune's retries of each trial (a failure it will run again)."""

    def __init__(self) -> None:
        self.retries: Counter[str] = Counter()

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.retries[trial.trial_id] += 1


@pytest.fixture(scope="module")
def local_ray():
    # Ray workers cannot import this test module: ship its classes by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    # "local": a Ray of our own, even if another test left a cluster running on this machine.
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def _dirname(trial: Any) -> str:
    return f"{trial.trial_id}-{'hang' if trial.config['dropout'] > 0.2 else 'ok'}"


def _tune(
    tmp_path: Path, dropouts: list[float], limit_s: float, max_failures: int
) -> tuple[Leaderboard, RetryCounter, float]:
    """Run one trial per dropout (those above 0.2 hang) through the production trainable
    and leaderboard callback; return the leaderboard, the retry counts and the wall time."""
    data = load_dataset(None, DataConfig(image_size=64))
    space = get_space("small")
    model = preset("seed", image_size=64, channels=1, class_names=data.class_names,
                   positive_class=data.positive_class)  # fmt: skip
    base = TrainConfig(model=model, epochs=1, batch_size=32, seed=0)
    board = Leaderboard(tmp_path / "leaderboard.parquet", space, "val_auc", "max", 1)
    retries = RetryCounter()
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, data=HangingSplits(data), base=base, space=space,
                             time_limit_s=limit_s),
        {"cpu": 1},
    )  # fmt: skip
    tuner = tune.Tuner(
        trainable,
        param_space={"learning_rate": 0.01, "base_width": 2, "dropout": tune.grid_search(dropouts)},
        tune_config=tune.TuneConfig(reuse_actors=True, trial_dirname_creator=_dirname),
        run_config=tune.RunConfig(
            name="hang", storage_path=str(tmp_path), verbose=0,
            callbacks=[LeaderboardCallback(board, 0.0, 1.0), retries],
            failure_config=tune.FailureConfig(max_failures=max_failures),
        ),
    )  # fmt: skip
    started = time.monotonic()
    tuner.fit()
    return board, retries, time.monotonic() - started


def test_a_hung_trial_is_ended_by_its_time_limit(local_ray: None, tmp_path: Path) -> None:
    with observe(
        "cluster",
        f"a trial hangs inside train() (data access blocks), --trial-timeout {TIME_LIMIT_S:g}s",
        "the watchdog ends the hung trial's worker at the limit; its retry fails at once and "
        "the leaderboard row says TrialTimeout; the healthy trial completes",
    ) as obs:
        board, retries, wall = _tune(tmp_path, [0.1, 0.4], TIME_LIMIT_S, max_failures=1)
        rows = {r["param_dropout"]: r for r in pq.read_table(board.path).to_pylist()}
        hung, healthy = rows[0.4], rows[0.1]
        obs.update(
            observed=f"hung trial: {hung['status']}, error {hung['error']!r} after "
            f"{hung['wall_s']:.0f}s; healthy trial: {healthy['stop_reason']} in "
            f"{healthy['wall_s']:.0f}s; Tune retried the hung trial {retries.retries.total()}x",
            trials=len(rows),
            trials_lost=2 - len(rows),
            retries=retries.retries.total(),
            hung_trial_wall_s=round(hung["wall_s"], 1),
            study_wall_s=round(wall, 1),
        )
        assert len(rows) == 2
        assert healthy["stop_reason"] == "completed", healthy
        assert hung["status"] == "ERROR" and hung["stop_reason"] == "failed"
        assert "TrialTimeout" in hung["error"], hung["error"]
        assert f"{TIME_LIMIT_S:g}s limit" in hung["error"], hung["error"]
        assert TIME_LIMIT_S <= hung["wall_s"] < TIME_LIMIT_S + 120, hung["wall_s"]
        assert (hung["retries"], healthy["retries"]) == (1, 0)


def test_a_hung_trial_without_retries_still_says_why(local_ray: None, tmp_path: Path) -> None:
    """--max-failures 0: no retry re-raises the watchdog's marker, so the row must say why."""
    limit = 30.0
    with observe(
        "cluster",
        f"a trial hangs, --trial-timeout {limit:g}s and --max-failures 0 (no retry)",
        "the leaderboard row still says TrialTimeout, not only that a worker died",
    ) as obs:
        board, _, _ = _tune(tmp_path, [0.4], limit, max_failures=0)
        (row,) = pq.read_table(board.path).to_pylist()
        obs.update(
            observed=f"{row['status']}, error {row['error']!r} after {row['wall_s']:.0f}s",
            trials=1,
            trials_lost=0,
        )
        assert row["status"] == "ERROR"
        assert "TrialTimeout" in row["error"], row["error"]
