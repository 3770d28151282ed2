"""What a cross-validated trial reports, and the model measurements objectives ask for.

With ``--cv K`` a trial trains its K folds one after another in its worker, each with
`covidxr_core.train` on `covidxr_core.data._folds.fold_dataset` (the later folds reuse the
first fold's traced steps). `combine` then turns the K per-epoch histories into one
report per epoch: each metric's mean over the folds under its own name (what ASHA and
Optuna see), ``val_auc_std`` (and the other rates' ``_std``), and every fold's value as
``NAME_fold_I``. ``epoch_s`` is the sum over folds: what the epoch cost.

Because the folds run one after another, epoch 1's mean is known only when the last fold
has finished: a trial reports all its epochs after training them. ASHA still decides on
the means, epoch by epoch, but stopping a trial then saves no compute, only its record
ends at that rung.

`measure` gives the model's parameter count (``params``) and the CPU latency of one
image (``latency_ms``): the median of `LATENCY_CALLS` calls of the model on one image,
after two warm-up calls, on the CPU even where the worker has a GPU. A freshly built
model of the trial's architecture is measured, before training: neither number depends
on the weights' values.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from typing import Any

FOLD_KEYS = ("val_auc", "val_loss", "val_accuracy", "val_sensitivity", "val_specificity")
MEASURED = ("params", "latency_ms")
LATENCY_CALLS = 7


def _finite(values: Sequence[Any]) -> list[float]:
    out = []
    for v in values:
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
            out.append(float(v))
    return out


def combine(histories: Sequence[Sequence[dict[str, float]]]) -> list[dict[str, float]]:
    """One report per epoch from K folds' per-epoch metrics (module docstring).

    Args:
        histories: Per fold, the metrics dicts its epochs reported, in epoch order.

    Returns:
        As many reports as the shortest fold has epochs; each has every key of the first
        fold's epoch (means over folds; ``epoch_s`` summed), ``cv_folds``, and for
        `FOLD_KEYS` the ``_std`` over folds (population, 0 for equal values) and
        ``NAME_fold_I``. A mean over folds some of which are NaN is NaN.
    """
    k = len(histories)
    if k == 0:
        return []
    epochs = min(len(h) for h in histories)
    out = []
    for e in range(epochs):
        per_fold = [histories[f][e] for f in range(k)]
        report: dict[str, float] = {"cv_folds": float(k)}
        for key in per_fold[0]:
            values = [m.get(key, math.nan) for m in per_fold]
            good = _finite(values)
            if key == "epoch_s":
                report[key] = sum(good)
            else:
                report[key] = statistics.fmean(good) if len(good) == k else math.nan
        for key in FOLD_KEYS:
            values = [m.get(key, math.nan) for m in per_fold]
            good = _finite(values)
            report[f"{key}_std"] = statistics.pstdev(good) if len(good) == k else math.nan
            for f, v in enumerate(values):
                report[f"{key}_fold_{f}"] = v
        out.append(report)
    return out


def needs_measuring(names: Sequence[str]) -> tuple[str, ...]:
    """Which of `MEASURED` the study's objectives, constraints and pick name."""
    return tuple(m for m in MEASURED if m in names)


def measure(model_config: Any, what: Sequence[str]) -> dict[str, float]:
    """``model_params`` and/or ``latency_ms`` of a fresh model of ``model_config``."""
    if not what:
        return {}
    import numpy as np

    from covidxr_core.model import build_model

    out: dict[str, float] = {}
    with _on_cpu():
        model = build_model(model_config)
        if "params" in what:
            out["model_params"] = float(model.count_params())
        if "latency_ms" in what:
            shape = (1, model_config.image_size, model_config.image_size, model_config.channels)
            image = np.random.default_rng(0).integers(0, 256, size=shape).astype("uint8")
            times = []
            for i in range(2 + LATENCY_CALLS):
                t0 = time.perf_counter()
                np.asarray(model(image, training=False))
                if i >= 2:
                    times.append((time.perf_counter() - t0) * 1000.0)
            out["latency_ms"] = statistics.median(times)
    del model
    return out


class _on_cpu:
    """Places the measured model on the CPU under TensorFlow or JAX (a no-op otherwise)."""

    def __enter__(self) -> None:
        import keras

        self._context: Any = None
        backend = keras.backend.backend()
        if backend == "tensorflow":
            import tensorflow as tf

            self._context = tf.device("/CPU:0")
        elif backend == "jax":
            import jax

            self._context = jax.default_device(jax.devices("cpu")[0])
        if self._context is not None:
            self._context.__enter__()

    def __exit__(self, *exc: Any) -> None:
        if self._context is not None:
            self._context.__exit__(*exc)


__all__ = ["FOLD_KEYS", "LATENCY_CALLS", "MEASURED", "combine", "measure", "needs_measuring"]
