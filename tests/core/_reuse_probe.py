"""Runs a list of training configs in one process; prints histories and tracing counts.

Used by tests/core/test_reuse.py in a fresh subprocess per case, so what a process has
traced before is exactly what the case says. Argument: a JSON list of
``{"seed": int, "reuse": bool, "model": {ModelConfig overrides}}``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from covidxr_core import _reuse
from covidxr_core.model import ModelConfig
from covidxr_core.train import TrainConfig, train
from tests.core.helpers import make_dataset


def traces(function: Any) -> int:
    """How many programs the backend built for a Keras step function, by its own counter.

    TensorFlow: the tf.function objects the step closes over (at any depth) report
    ``experimental_get_tracing_count``. JAX: jitted functions report their cache size.
    """
    seen: set[int] = set()

    def walk(obj: Any, depth: int) -> int:
        if obj is None or id(obj) in seen or depth > 4:
            return 0
        seen.add(id(obj))
        if hasattr(obj, "experimental_get_tracing_count"):
            return int(obj.experimental_get_tracing_count())
        if hasattr(obj, "_cache_size"):
            return int(obj._cache_size())
        total = 0
        for cell in getattr(obj, "__closure__", None) or ():
            try:
                total += walk(cell.cell_contents, depth + 1)
            except ValueError:  # an empty cell
                continue
        return total

    return walk(function, 0)


def main() -> None:
    runs = json.loads(sys.argv[1])
    data = make_dataset(n_train=40, n_val=16, n_test=8, size=64, channels=1, seed=3)
    out = []
    for run in runs:
        model = ModelConfig(image_size=64, channels=1, **run["model"])
        config = TrainConfig(model=model, epochs=2, batch_size=8, seed=run["seed"])
        result = train(config, data, evaluate_test=False, n_boot=0, reuse=run["reuse"])
        out.append(
            {
                "history": [
                    {k: v for k, v in row.items() if k != "epoch_s"} for row in result.history
                ],
                "model_id": id(result.model),
                "train_traces": traces(result.model.train_function),
                "predict_traces": traces(result.model.predict_function),
                "weights_sum": float(sum(abs(w).sum() for w in result.model.get_weights())),
                "reuse": _reuse.stats(),
            }
        )
    print("RESULT " + json.dumps(out))


if __name__ == "__main__":
    main()
