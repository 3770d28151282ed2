"""The search itself: a Ray Tune Tuner with Optuna's TPE and ASHA early stopping."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.console import Console

from search_spaces import SearchSpace
from tuning._leaderboard import Leaderboard, LeaderboardCallback
from tuning._progress import ProgressCallback
from tuning.spec import StudySpec
from tuning._storage import RunLocation
from tuning._trainable import run_trial

TUNE_DIR = "tune"


def optuna_storage_url(run_dir: Path) -> str:
    return f"sqlite:///{run_dir / 'optuna.db'}"


def run_search(
    spec: StudySpec,
    space: SearchSpace,
    data: Any,
    base: Any,
    location: RunLocation,
    resume: bool,
    console: Console,
) -> Leaderboard:
    """Runs (or resumes) the trials; returns the leaderboard, also saved as Parquet."""
    import optuna
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    from tuning.study import _gpus_per_trial

    gpus = _gpus_per_trial(spec)
    run_dir = location.local
    board = Leaderboard(run_dir / "leaderboard.parquet", space, spec.metric, spec.mode, spec.epochs)
    progress = ProgressCallback(board, spec.trials, console)
    callbacks = [
        LeaderboardCallback(
            board,
            gpus,
            spec.cpus_per_trial,
            on_save=lambda: location.push("leaderboard.parquet", "optuna.db"),
        ),
        progress,
    ]

    # The data set goes into the object store once; trials get a zero-copy view of it.
    data_ref = ray.put(data)
    trainable = tune.with_resources(
        tune.with_parameters(
            run_trial, data=data_ref, base=base, space=space, time_limit_s=spec.trial_timeout_s
        ),
        {"cpu": spec.cpus_per_trial, "gpu": gpus},
    )
    tune_path = f"{location.tune_storage}/{TUNE_DIR}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if resume and tune.Tuner.can_restore(tune_path):
        console.print(f"[bold]resuming[/] {tune_path}")
        tuner = tune.Tuner.restore(
            tune_path, trainable=trainable, resume_unfinished=True, resume_errored=False
        )
        # Ray pickles the RunConfig with the study; the live callbacks replace those copies.
        tuner._local_tuner._run_config.callbacks = callbacks  # type: ignore[union-attr]
    else:
        searcher: Any = OptunaSearch(
            space=space.to_optuna(),
            metric=spec.metric,
            mode=spec.mode,
            sampler=optuna.samplers.TPESampler(seed=spec.seed),
            storage=optuna.storages.RDBStorage(optuna_storage_url(run_dir)),
            study_name=run_dir.name,
        )
        if spec.max_concurrent:
            searcher = ConcurrencyLimiter(searcher, max_concurrent=spec.max_concurrent)
        scheduler = ASHAScheduler(
            time_attr="training_iteration",
            max_t=spec.epochs,
            grace_period=max(1, min(spec.grace_epochs, spec.epochs)),
            reduction_factor=3,
        )
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                metric=spec.metric,
                mode=spec.mode,
                search_alg=searcher,
                scheduler=scheduler,
                num_samples=spec.trials,
                reuse_actors=True,
                max_concurrent_trials=spec.max_concurrent,
                time_budget_s=spec.time_budget_s,
            ),
            run_config=tune.RunConfig(
                name=TUNE_DIR,
                storage_path=location.tune_storage,
                verbose=2 if spec.verbose else 0,
                callbacks=callbacks,
                failure_config=tune.FailureConfig(max_failures=spec.max_failures),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            ),
        )
    started = time.monotonic()
    try:
        tuner.fit()
    finally:
        board.search_wall_s = time.monotonic() - started
        progress.close()
        board.save()
    return board
