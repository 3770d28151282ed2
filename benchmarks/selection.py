"""Optimism of selection: the winner's validation AUC against its test AUC, with and without --cv.

    python benchmarks/selection.py [--data DIR] [--seeds 0,1,2] [--budget-s 600] [--json OUT]

For each seed, two studies run one after the other through `tuning/run.py` on the same
data, space, epochs and image size, under the same wall-clock search budget
(``--time-budget-s``; ``--trials`` is set high so the budget is what ends the search):

- plain: each trial trains once on train and is scored on the validation split;
- cv: ``--cv K`` (default 3), each trial trains K folds of train + validation pooled and
  is scored by the mean over folds; under the same budget it runs about K times fewer
  trials.

The winner of each is retrained (``--retrain-seeds``, default 2) on the train split and
scored on the test split (covid-cxr has none: it is carved, 20% per class, seed 0 of the
data so both studies share it). Per study the JSON records the winner's search
validation AUC (with --cv the mean over folds and their standard deviation), the
retrained test AUC (mean over retrain seeds), the gap (validation minus test: the
optimism of the selection), the trials run and the wall time; then, per mode, the mean
and standard deviation over seeds of the gap and of the test AUC.

The retrain protocol is the study's own in both modes: train split, full epoch budget,
validation measured, test once per seed (with --cv the folds only score trials).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def run_one(args: argparse.Namespace, out: Path, seed: int, cv: int) -> dict[str, Any]:
    """One study; returns what the benchmark compares."""
    import pyarrow.parquet as pq

    name = f"{'cv' if cv else 'plain'}-s{seed}"
    command = [
        sys.executable, str(REPO / "tuning" / "run.py"),
        "--data", args.data, "--space", args.space, "--epochs", str(args.epochs),
        "--image-size", str(args.image_size), "--trials", "1000",
        "--time-budget-s", str(args.budget_s), "--seed", str(seed),
        "--retrain-seeds", str(args.retrain_seeds), "--n-boot", "100",
        "--output", str(out), "--name", name,
    ] + (["--cv", str(cv)] if cv else [])  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(command, cwd=REPO)
    wall = time.monotonic() - started
    run = out / name
    metrics = run / "best" / "metrics.json"
    if not metrics.is_file():  # no trial finished within the budget: say so, go on
        return {"seed": seed, "cv": cv, "wall_s": wall, "gap": None, "test_auc": None,
                "trials": 0, "error": f"exit {done.returncode}: no retrained winner in {run}"}  # fmt: skip
    best = json.loads(metrics.read_text())
    rows = {r["trial_id"]: r for r in pq.read_table(run / "leaderboard.parquet").to_pylist()}
    winner = rows[best["trial_id"]]
    test = (best.get("test_mean_std") or {}).get("auc") or {}
    val = winner.get("val_auc")
    test_auc = test.get("mean")
    return {
        "seed": seed,
        "cv": cv,
        "trials": len(rows),
        "wall_s": wall,
        "winner": best["trial_id"],
        "winner_val_auc": val,
        "winner_val_auc_fold_std": winner.get("val_auc_std"),
        "winner_val_auc_folds": winner.get("fold_val_auc") or None,
        "test_auc": test_auc,
        "test_auc_std_over_retrain_seeds": test.get("std"),
        "gap": (val - test_auc) if val is not None and test_auc is not None else None,
    }


def _mean_std(values: list[float | None]) -> dict[str, float | None]:
    good = [v for v in values if v is not None]
    return {
        "mean": statistics.fmean(good) if good else None,
        "std": statistics.stdev(good) if len(good) > 1 else None,
        "n": len(good),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=None, help="data folder (default: covid-cxr)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated study seeds (>= 3)")
    parser.add_argument("--cv", type=int, default=3)
    parser.add_argument("--budget-s", type=float, default=600, help="search seconds per study")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--space", default="small")
    parser.add_argument("--retrain-seeds", type=int, default=2)
    parser.add_argument("--output", default=None, help="where the run folders go (default: tmp)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    from benchmarks.study import default_data

    args.data = args.data or default_data()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    out = Path(args.output or tempfile.mkdtemp(prefix="covidxr-selection-"))
    studies = [run_one(args, out, seed, cv) for seed in seeds for cv in (0, args.cv)]
    result: dict[str, Any] = {
        "data": args.data,
        "budget_s": args.budget_s,
        "epochs": args.epochs,
        "image_size": args.image_size,
        "space": args.space,
        "seeds": seeds,
        "studies": studies,
    }
    for label, cv in (("plain", 0), (f"cv{args.cv}", args.cv)):
        mine = [s for s in studies if s["cv"] == cv]
        result[label] = {
            "gap": _mean_std([s["gap"] for s in mine]),
            "test_auc": _mean_std([s["test_auc"] for s in mine]),
            "trials": _mean_std([float(s["trials"]) for s in mine]),
        }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text)


if __name__ == "__main__":
    main()
