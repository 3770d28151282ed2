"""The typed description of one study: every CLI flag lands here, and nothing else is read."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from covidxr_core.errors import ConfigError

DEFAULT_METRIC = "val_auc"
ENGINES = ("ray", "keras-tuner")
KT_TUNERS = ("hyperband", "bayesian", "random")
_METRICS = {
    "val_auc": "max",
    "val_accuracy": "max",
    "val_loss": "min",
    "val_sensitivity": "max",
    "val_specificity": "max",
}


@dataclass(frozen=True)
class StudySpec:
    """Everything that defines a study. Saved as `study.json` in the run folder."""

    trials: int = 50  # number of configurations Optuna proposes
    data: str | None = None  # data folder; None = the synthetic demo set
    space: str = "default"  # built-in search space name, or a YAML path
    epochs: int = 10  # epoch budget of a trial (ASHA may stop it earlier)
    image_size: int = 128  # decoded image side in pixels (the recipe uses 300)
    channels: int = 1  # 1 = greyscale, 3 = RGB (the recipe)
    cpus_per_trial: float = 1.0
    gpus_per_trial: float | None = None  # None: 0.25 when the cluster has GPUs, else 0
    max_concurrent: int | None = None  # None: as many as resources allow
    address: str | None = None  # join an existing Ray cluster ("auto" or host:port)
    output: str = "runs"  # parent folder of run folders
    name: str | None = None  # run folder name; default: a timestamp
    seed: int = 0  # sampler seed, data carving seed and the first retrain seed
    retrain_seeds: int = 3  # seeds of the final retrain (and of the baseline)
    metric: str = DEFAULT_METRIC  # what ASHA and Optuna optimise
    grace_epochs: int = 2  # ASHA: epochs every trial gets before it can be stopped
    max_failures: int = 1  # retries of a trial whose worker died (not of deterministic errors)
    trial_timeout_s: float | None = None  # per-trial wall-clock limit
    time_budget_s: float | None = None  # wall-clock limit of the whole search; None: no limit
    cache_dir: str | None = None
    n_boot: int = 1000  # bootstrap resamples for confidence intervals
    engine: str = "ray"  # "ray" (Ray Tune + Optuna + ASHA) or "keras-tuner"
    tuner: str = "hyperband"  # KerasTuner's algorithm: hyperband | bayesian | random
    precision: str = "fp32"  # "fp32" or "bf16" (mixed precision)
    verbose: bool = False

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise ConfigError(f"--trials must be >= 1, but got {self.trials}")
        if self.epochs < 1:
            raise ConfigError(f"--epochs must be >= 1, but got {self.epochs}")
        if self.retrain_seeds < 0:
            raise ConfigError(f"--retrain-seeds must be >= 0, but got {self.retrain_seeds}")
        if self.channels not in (1, 3):
            raise ConfigError(f"--channels must be 1 or 3, but got {self.channels}")
        if self.cpus_per_trial <= 0:
            raise ConfigError(f"--cpus-per-trial must be > 0, but got {self.cpus_per_trial}")
        if self.gpus_per_trial is not None and not self.gpus_per_trial >= 0:
            raise ConfigError(f"--gpus-per-trial must be >= 0, but got {self.gpus_per_trial}")
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise ConfigError(f"--max-concurrent must be >= 1, but got {self.max_concurrent}")
        if self.time_budget_s is not None and not self.time_budget_s > 0:
            raise ConfigError(f"--time-budget-s must be > 0, but got {self.time_budget_s}")
        if self.engine not in ENGINES:
            raise ConfigError(f"--engine must be one of {list(ENGINES)}, but got {self.engine!r}")
        if self.tuner not in KT_TUNERS:
            raise ConfigError(f"--tuner must be one of {list(KT_TUNERS)}, but got {self.tuner!r}")
        if self.precision not in ("fp32", "bf16"):
            raise ConfigError(f"--precision must be fp32 or bf16, but got {self.precision!r}")
        if self.metric not in _METRICS:
            raise ConfigError(
                f"--metric must be one of {sorted(_METRICS)}, but got {self.metric!r}"
            )

    @property
    def mode(self) -> str:
        return _METRICS[self.metric]

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, path: Path) -> StudySpec:
        data: dict[str, Any] = json.loads(path.read_text())
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
