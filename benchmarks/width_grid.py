"""What the default space's width grid costs in best validation AUC, and what it buys.

    python benchmarks/width_grid.py [--data DIR] [--seeds 0,1] [--trials 12] [--epochs 3]
                                    [--image-size 64] [--json OUT]

Two versions of the `default` space, identical but for the widths:

- grid (the shipped space): base width {2, 4, 8, 16, 32}, growth {1, 2}, cap {32, 64, 128};
- continuous (the first release's): base width 2..32 (log int), growth 1.0..2.5, same caps.

For each seed, both run as real `tuning/run.py` studies (Optuna TPE + ASHA, no retrain)
on the same data, and the script prints per study the best validation AUC (the winner's
last epoch, what selection uses), how many distinct compiled programs the trials needed
(widths, batch size, optimizer: what `covidxr_core._reuse` keys on) and the search wall
time. Validation AUC on covid-cxr's 59 images has a standard error near 0.05 per trial, so
only a difference well beyond that, across seeds, says anything.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CONTINUOUS = {
    "base_width": {"type": "int", "low": 2, "high": 32, "log": True},
    "width_growth": {"type": "float", "low": 1.0, "high": 2.5},
    "width_cap": {"type": "categorical", "choices": [32, 64, 128]},
}


def spaces(folder: Path) -> dict[str, Path]:
    shipped = yaml.safe_load((REPO / "search_spaces" / "default.yaml").read_text())
    grid = folder / "grid.yaml"
    grid.write_text(yaml.safe_dump(shipped))
    continuous = dict(shipped, params={**shipped["params"], **CONTINUOUS})
    path = folder / "continuous.yaml"
    path.write_text(yaml.safe_dump(continuous))
    return {"grid": grid, "continuous": path}


def run_study(args: argparse.Namespace, space: Path, seed: int, out: Path, name: str) -> dict:
    import pyarrow.parquet as pq

    from search_spaces._params import derive_widths

    cmd = [
        sys.executable, str(REPO / "tuning" / "run.py"), "--data", args.data,
        "--trials", str(args.trials), "--epochs", str(args.epochs),
        "--image-size", str(args.image_size), "--space", str(space), "--seed", str(seed),
        "--retrain-seeds", "0", "--output", str(out), "--name", name,
    ]  # fmt: skip
    subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    summary = json.loads((out / name / "summary.json").read_text())
    rows = pq.read_table(out / name / "leaderboard.parquet").to_pylist()
    recipe_widths = (2, 4, 8, 16, 32, 64)
    programs = set()
    for row in rows:
        values = {k[len("param_") :]: v for k, v in row.items() if k.startswith("param_")}
        widths = derive_widths({k: v for k, v in values.items() if v is not None}, recipe_widths)
        programs.add((widths, values.get("batch_size"), values.get("optimizer")))
    aucs = [r["val_auc"] for r in rows if r["val_auc"] is not None]
    return {
        "best_val_auc": max(aucs) if aucs else None,
        "programs": len(programs),
        "trials": len(rows),
        "search_wall_s": summary["search_wall_s"],
        "study_efficiency": (summary.get("efficiency") or {}).get("study_efficiency"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=None)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    from benchmarks.study import default_data

    args.data = args.data or default_data()
    seeds = [int(s) for s in args.seeds.split(",")]
    results: dict[str, list[dict[str, Any]]] = {"grid": [], "continuous": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = spaces(folder)
        for seed in seeds:
            for label, path in paths.items():
                found = run_study(args, path, seed, folder / "runs", f"{label}-{seed}")
                results[label].append({"seed": seed, **found})
                print(label, seed, found, flush=True)

    def mean_sd(label: str, key: str) -> tuple[float, float]:
        values = [r[key] for r in results[label] if r[key] is not None]
        sd = statistics.stdev(values) if len(values) > 1 else float("nan")
        return statistics.mean(values), sd

    summary = {
        "setup": {k: getattr(args, k) for k in ("data", "trials", "epochs", "image_size")},
        "seeds": seeds,
        "results": results,
    }
    for label in results:
        for key in ("best_val_auc", "programs", "search_wall_s"):
            mean, sd = mean_sd(label, key)
            summary[f"{label}_{key}_mean"] = mean
            print(f"{label:10s} {key:14s} {mean:8.3f} ± {sd:.3f} (sd over {len(seeds)} seeds)")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
