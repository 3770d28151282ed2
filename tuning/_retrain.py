"""After the search: retrain the winner and the recipe baseline with several seeds.

Protocol (said in every metrics file): each seed trains on the train split for the full
epoch budget, with no early stopping and no checkpoint selection; the validation split is
only measured, and the test split is touched once per model, at the end. Of the winner's
seeds, the one with the best *validation* score is exported, never one picked on test.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

PROTOCOL = (
    "each seed trains on the train split for the full epoch budget (no early stopping); "
    "validation is measured, not used for selection within a run; test is evaluated once "
    "per model; the exported model is the seed with the best validation score"
)
SUMMARY_METRICS = ("auc", "accuracy", "sensitivity", "specificity", "precision", "f1", "loss")


def train_seed(train_config: Any, data: Any, n_boot: int) -> dict[str, Any]:
    """Trains one seed and returns its metrics, test probabilities and the saved model."""
    from covidxr_core._backend import configure_backend

    configure_backend()
    from covidxr_core.train import train

    result = train(train_config, data, evaluate_test=True, n_boot=n_boot)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        result.model.save(path)
        model_bytes = path.read_bytes()
    test_split = data.splits["test"]
    probs = result.model.predict(test_split.images, batch_size=64, verbose=0)
    return {
        "seed": train_config.seed,
        "validation": result.validation,
        "test": result.test,
        "history": result.history,
        "wall_s": result.wall_s,
        "fit_s": result.fit_s,
        "test_probs": np.asarray(probs, dtype=np.float64),
        "test_labels": np.asarray(test_split.labels),
        "model_bytes": model_bytes,
    }


def mean_std(runs: list[dict[str, Any]], split: str) -> dict[str, dict[str, float | None]]:
    """Mean and sample standard deviation of each headline metric over seeds."""
    out: dict[str, dict[str, float | None]] = {}
    for name in SUMMARY_METRICS:
        values = [r[split][name] for r in runs if r[split].get(name) is not None]
        out[name] = {
            "mean": statistics.fmean(values) if values else None,
            "std": statistics.stdev(values) if len(values) > 1 else 0.0 if values else None,
            "n": len(values),
        }
    return out


def pick_exported(runs: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    """The seed with the best validation score (metric name without the `val_` prefix)."""
    key = metric.removeprefix("val_")
    lower_is_better = key == "loss"

    def score(run: dict[str, Any]) -> float:
        value = run["validation"].get(key)
        if value is None:
            return float("inf") if lower_is_better else float("-inf")
        return float(value)

    return min(runs, key=score) if lower_is_better else max(runs, key=score)


def write_role(
    out_dir: Path,
    role: str,
    train_config: Any,
    runs: list[dict[str, Any]],
    metric: str,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """Writes OUT/{model.keras, config.yaml, metrics.json} for `best` or `baseline`."""
    import yaml

    out_dir.mkdir(parents=True, exist_ok=True)
    exported = pick_exported(runs, metric)
    (out_dir / "model.keras").write_bytes(exported["model_bytes"])
    config_dict = dataclasses.asdict(train_config)
    config_dict.pop("seed", None)
    (out_dir / "config.yaml").write_text(
        yaml.safe_dump(_plain(config_dict), sort_keys=False), encoding="utf-8"
    )
    summary = {
        "role": role,
        "protocol": PROTOCOL,
        "seeds": [r["seed"] for r in runs],
        "exported_seed": exported["seed"],
        "test_mean_std": mean_std(runs, "test"),
        "validation_mean_std": mean_std(runs, "validation"),
        "exported": {"validation": exported["validation"], "test": exported["test"]},
        "per_seed": [
            {k: r[k] for k in ("seed", "validation", "test", "history", "wall_s", "fit_s")}
            for r in runs
        ],
        **extra,
    }
    (out_dir / "metrics.json").write_text(json.dumps(_plain(summary), indent=2, allow_nan=False))
    np.save(out_dir / "test_probs.npy", exported["test_probs"])
    np.save(out_dir / "test_labels.npy", exported["test_labels"])
    return summary


def _plain(value: Any) -> Any:
    """JSON/YAML-safe copy: tuples to lists, NumPy scalars to Python, NaN/inf to None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
