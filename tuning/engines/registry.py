"""The engines by name: what ``--engine`` accepts, and where each engine's class lives.

Kept apart from the `Engine` protocol so that `tuning.spec` can take its choices from here
without importing anything that refers back to the spec.
"""

from __future__ import annotations

# name -> "module:class", imported on first use
REGISTRY = {
    "ray": "tuning.engines.ray_tune:RayTuneEngine",
    "keras-tuner": "tuning.engines.keras_tuner:KerasTunerEngine",
}
ENGINE_NAMES = tuple(REGISTRY)
KERAS_TUNER_ALGORITHMS = ("hyperband", "bayesian", "random")

__all__ = ["ENGINE_NAMES", "KERAS_TUNER_ALGORITHMS", "REGISTRY"]
