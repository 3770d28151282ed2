"""Trials per minute: `tuning/run.py` against two studies a user might write instead.

    python benchmarks/study.py [--data DIR] [--trials 6] [--epochs 2] [--json OUT]

All three search the same space over the same data, trial count and epochs, one after
the other in this process tree:

- ours: `tuning/run.py` (Ray Tune, Optuna TPE + ASHA, trials side by side);
- naive (benchmarks/_naive_study.py): Ray Tune + Optuna TPE + ASHA done the obvious way,
  a fresh process per trial, images decoded in every trial with `ImageDataGenerator`,
  augmentation by Keras's separate `Random*` layers;
- optuna loop (benchmarks/_optuna_loop.py): no Ray, a plain in-process Optuna loop (TPE +
  `SuccessiveHalvingPruner`) over the same `train()`, one trial after another with
  TensorFlow on every core: what a user on one machine writes without Ray.

Per-trial overhead = a trial's wall time (driver's view, start to finish) minus its
training steps, counted as epochs run × the trial's steady epoch time (median of epochs
after the first), so the first epoch's tracing/compilation counts as overhead, not as
training. Study efficiency (ours) = the trials' steady epoch time × epochs, summed over
trials and divided by the concurrent slots, over the search wall time (tuning/efficiency.py).
JSON keys: `speedup_trials_per_min` (ours vs naive), `speedup_vs_optuna_loop`,
`overhead_s_per_trial` and `study_efficiency` (both ours).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def default_data() -> str:
    shared = REPO.parent / "shared" / "data" / "covid-cxr"
    if shared.is_dir():
        return str(shared)
    from covidxr_core.data import demo_data_path

    return str(demo_data_path())


def strict_overhead(wall_s: float | None, epoch_s: list[float]) -> float | None:
    """Wall time minus epochs × steady epoch time; None without a second epoch.

    The steady epoch time is the study report's (tuning.efficiency.steady_epoch_s).
    """
    from tuning.efficiency import steady_epoch_s

    steady = steady_epoch_s(epoch_s)
    if wall_s is None or steady is None:
        return None
    return wall_s - len(epoch_s) * steady


def same_study(args: argparse.Namespace) -> list[str]:
    """The flags both studies share: data, trials, epochs, image size, channels, space."""
    return [
        "--data", args.data, "--trials", str(args.trials), "--epochs", str(args.epochs),
        "--image-size", str(args.image_size), "--channels", str(args.channels),
        "--space", args.space,
    ]  # fmt: skip


def run_ours(args: argparse.Namespace, out: Path) -> dict:
    import pyarrow.parquet as pq

    cmd = [
        sys.executable,
        str(REPO / "tuning" / "run.py"),
        *same_study(args),
        "--retrain-seeds",
        "0",
        "--output",
        str(out),
        "--name",
        "ours",
        "--seed",
        str(args.seed),
    ]
    started = time.monotonic()
    subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    total = time.monotonic() - started
    summary = json.loads((out / "ours" / "summary.json").read_text())
    rows = pq.read_table(out / "ours" / "leaderboard.parquet").to_pylist()
    overheads = [strict_overhead(r["wall_s"], r["curve_epoch_s"]) for r in rows]
    overheads = [o for o in overheads if o is not None]
    search = summary["search_wall_s"]
    efficiency = summary.get("efficiency") or {}
    return {
        "study_efficiency": efficiency.get("study_efficiency"),
        "slots": efficiency.get("slots"),
        "wall_s": search,
        "process_wall_s": total,
        "trials": len(rows),
        "trials_per_min": len(rows) / search * 60,
        "overhead_s_per_trial": sum(overheads) / len(overheads),
        "trial_wall_s": sum(r["wall_s"] for r in rows) / len(rows),
    }


def run_naive(args: argparse.Namespace, out: Path) -> dict:
    result = out / "naive.json"
    cmd = [
        sys.executable,
        str(REPO / "benchmarks" / "_naive_study.py"),
        *same_study(args),
        "--seed",
        str(args.seed),
        "--storage",
        str(out / "naive"),
        "--json",
        str(result),
    ]
    subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return json.loads(result.read_text())


def run_optuna_loop(args: argparse.Namespace, out: Path) -> dict:
    result = out / "optuna_loop.json"
    cmd = [
        sys.executable, str(REPO / "benchmarks" / "_optuna_loop.py"), *same_study(args),
        "--seed", str(args.seed), "--json", str(result),
    ]  # fmt: skip
    subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return json.loads(result.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data",
        default=None,
        help="data folder (default: ../shared/data/covid-cxr, else the demo)",
    )
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--space", default="small")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    args.data = args.data or default_data()

    from rich.console import Console
    from rich.table import Table

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        os.environ["COVIDXR_CACHE"] = str(out / "cache")  # ours starts from a cold cache too
        ours = run_ours(args, out)
        naive = run_naive(args, out)
        loop = run_optuna_loop(args, out)

    result = {
        "setup": {
            k: getattr(args, k)
            for k in ("data", "trials", "epochs", "image_size", "channels", "space")
        },
        "cpus": os.cpu_count(),
        "ours": ours,
        "naive": naive,
        "optuna_loop": {k: v for k, v in loop.items() if k != "trials_detail"},
        "speedup_trials_per_min": ours["trials_per_min"] / naive["trials_per_min"],
        "speedup_vs_optuna_loop": ours["trials_per_min"] / loop["trials_per_min"],
        "overhead_s_per_trial": ours["overhead_s_per_trial"],
        "study_efficiency": ours["study_efficiency"],
        "naive_overhead_s_per_trial": naive["overhead_s_per_trial"],
        "optuna_loop_overhead_s_per_trial": loop["overhead_s_per_trial"],
    }
    table = Table(
        title=f"study throughput: {args.trials} trials × {args.epochs} epochs, {args.image_size}px, {os.cpu_count()} CPUs"
    )
    table.add_column("")
    table.add_column("tuning/run.py", justify="right")
    table.add_column("naive Ray Tune + Keras", justify="right")
    table.add_column("plain Optuna loop", justify="right")
    table.add_column("ours / naive", justify="right")
    table.add_column("ours / loop", justify="right")

    def cell(value: float | None) -> str:
        return "–" if value is None else f"{value:.2f}"

    def ratio(a: float | None, b: float | None) -> str:
        return f"{a / b:.2f}×" if a is not None and b else "–"

    for key, label in (
        ("wall_s", "search wall (s)"),
        ("process_wall_s", "whole process (s)"),
        ("trials_per_min", "trials / min"),
        ("trial_wall_s", "mean trial wall (s)"),
        ("overhead_s_per_trial", "overhead / trial (s)"),
    ):
        a, b, c = ours.get(key), naive.get(key), loop.get(key)
        table.add_row(label, cell(a), cell(b), cell(c), ratio(a, b), ratio(a, c))
    table.add_row("study efficiency", cell(ours["study_efficiency"]), "", "", "", "")
    Console().print(table)
    for key in (
        "speedup_trials_per_min", "speedup_vs_optuna_loop", "overhead_s_per_trial",
        "study_efficiency",
    ):  # fmt: skip
        print(f"{key} = {cell(result[key])}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
