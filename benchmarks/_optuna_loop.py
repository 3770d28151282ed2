"""The study a user on one machine writes without Ray: a plain Optuna loop over `train()`.

One trial after another in this process (TensorFlow uses every core for each), Optuna's
TPE sampler with the same seed as `tuning/run.py`, `SuccessiveHalvingPruner` with the
same grace period and reduction factor as our ASHA, the same data (decoded once, through
the same cache), the same base configuration and search space, the same objective
(the last epoch's validation AUC). Nothing from `tuning/` runs besides building those.

Used by benchmarks/study.py; run alone with `python benchmarks/_optuna_loop.py --help`.
Writes a JSON file with the same keys as the other contenders.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def suggest(trial: Any, name: str, dist: Any) -> Any:
    """One value from an Optuna distribution, through the public suggest_* calls."""
    import optuna

    if isinstance(dist, optuna.distributions.FloatDistribution):
        return trial.suggest_float(name, dist.low, dist.high, log=dist.log)
    if isinstance(dist, optuna.distributions.IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, log=dist.log)
    return trial.suggest_categorical(name, dist.choices)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--space", default="small")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", required=True)
    args = parser.parse_args()
    process_started = time.perf_counter()

    import optuna

    from covidxr_core import configure_backend, train
    from covidxr_core.data import load_dataset
    from search_spaces import get_space
    from tuning.spec import StudySpec
    from tuning.study import _data_config, base_config

    configure_backend()
    spec = StudySpec(
        data=args.data, trials=args.trials, epochs=args.epochs, image_size=args.image_size,
        channels=args.channels, space=args.space, seed=args.seed,
    )  # fmt: skip
    data = load_dataset(spec.data, _data_config(spec))
    base = base_config(spec, data)
    space = get_space(spec.space)
    distributions = space.to_optuna()

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=spec.seed),
        pruner=optuna.pruners.SuccessiveHalvingPruner(
            min_resource=max(1, min(spec.grace_epochs, spec.epochs)), reduction_factor=3
        ),
    )
    trials: list[dict[str, Any]] = []

    def objective(trial: optuna.Trial) -> float:
        values = {name: suggest(trial, name, dist) for name, dist in distributions.items()}
        config = space.apply(values, base)
        started = time.perf_counter()
        epoch_s: list[float] = []
        last = {"auc": float("nan")}

        def report(epoch: int, metrics: dict[str, float]) -> None:
            epoch_s.append(metrics["epoch_s"])
            last["auc"] = metrics["val_auc"]
            trial.report(metrics["val_auc"], epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()

        try:
            train(config, data, callbacks=[report], evaluate_test=False, n_boot=0)
        finally:
            trials.append({"wall_s": time.perf_counter() - started, "epoch_s": epoch_s})
        return last["auc"]

    search_started = time.perf_counter()
    study.optimize(objective, n_trials=spec.trials)
    search = time.perf_counter() - search_started

    from benchmarks.study import strict_overhead

    overheads = [strict_overhead(t["wall_s"], t["epoch_s"]) for t in trials]
    overheads = [o for o in overheads if o is not None]
    result = {
        "wall_s": search,
        "process_wall_s": time.perf_counter() - process_started,
        "trials": len(trials),
        "trials_per_min": len(trials) / search * 60,
        "overhead_s_per_trial": sum(overheads) / len(overheads) if overheads else None,
        "trial_wall_s": sum(t["wall_s"] for t in trials) / len(trials),
        "best_val_auc": study.best_value,
        "trials_detail": trials,
    }
    Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
