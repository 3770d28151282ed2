"""Best validation AUC at equal wall-clock budgets: Ray Tune + Optuna + ASHA vs KerasTuner.

    python benchmarks/engines.py [--json OUT] [--seeds 3] [--budget-s 120] [--data DIR]

For each seed, both engines search the same space on the same data, each for the same
wall-clock budget (`tuning/run.py --time-budget-s`), with a trial cap high enough never
to bind and no retraining. Each study runs in a fresh process, one after the other, the
engine that goes first alternating with the seed so a drift in machine load does not
favour one engine. The budget covers the search only (from the engine's start to its
last trial), not loading data or starting Ray.

* Ray Tune: Optuna TPE, ASHA (grace 2 epochs, reduction factor 3), one CPU per trial,
  so as many trials at once as the machine has cores.
* KerasTuner: Hyperband (max_epochs = --epochs, factor 3), one trial at a time in the
  driver, using every core. It starts no trial after the budget and stops the running
  one at the end of its current epoch; as with Ray, an epoch that ends after the budget
  does not count. Each run's real search time is reported beside its score.

A run's score is the best validation AUC any of its trials reached at any epoch, the
number each engine optimises. JSON keys: ``ray`` and ``keras_tuner``, each with
``best_auc`` (one per seed), ``mean``, ``std``, ``min``, ``max``, ``trials`` and
``search_wall_s``; ``settings`` and ``load_avg`` (the machine's 1-minute load average
before and after, since a shared machine's load moves the numbers).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ENGINES = {
    "ray": ("Ray Tune\nOptuna + ASHA", ["--engine", "ray"]),
    "keras_tuner": ("KerasTuner\nHyperband", ["--engine", "keras-tuner", "--tuner", "hyperband"]),
}


def default_data() -> str:
    """The shared real data set if it is here, else the synthetic demo set."""
    shared = REPO.parent / "shared" / "data" / "covid-cxr"
    if shared.is_dir():
        return str(shared)
    from covidxr_core.data import demo_data_path

    return str(demo_data_path())


def run_engine(engine: str, seed: int, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """One budgeted study in a fresh process; returns its score and how it got there."""
    import pyarrow.parquet as pq

    name = f"{engine}-seed{seed}"
    cmd = [
        sys.executable, str(REPO / "tuning" / "run.py"), *ENGINES[engine][1],
        "--data", args.data, "--space", args.space, "--epochs", str(args.epochs),
        "--image-size", str(args.image_size), "--trials", str(args.trials),
        "--time-budget-s", str(args.budget_s), "--retrain-seeds", "0",
        "--seed", str(seed), "--output", str(out), "--name", name,
    ]  # fmt: skip
    # RAY_ADDRESS=local: each study starts its own Ray, never joining a cluster that
    # happens to run on this machine (`ray start`), which would change what is measured.
    env = {**os.environ, "RAY_ADDRESS": "local"}
    done = subprocess.run(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True, env=env)  # fmt: skip
    if done.returncode != 0:
        tail = "\n".join(done.stderr.splitlines()[-20:])
        raise SystemExit(f"{engine} (seed {seed}) failed with exit code {done.returncode}:\n{tail}")
    run_dir = out / name
    rows = pq.read_table(run_dir / "leaderboard.parquet").to_pylist()
    summary = json.loads((run_dir / "summary.json").read_text())
    scores = [r["best_metric"] for r in rows if r["best_metric"] is not None]
    return {
        "best_auc": max(scores) if scores else None,
        "trials": len(rows),
        "epochs_trained": sum(r["epochs_run"] or 0 for r in rows),
        "search_wall_s": summary["search_wall_s"],
    }


def spread(values: list[float]) -> dict[str, float | None]:
    """Mean, sample standard deviation, min and max (None where undefined)."""
    return {
        "mean": statistics.fmean(values) if values else None,
        "std": statistics.stdev(values) if len(values) > 1 else None,
        "min": min(values, default=None),
        "max": max(values, default=None),
    }


def side_by_side(report: dict[str, Any]) -> Any:
    """The results as a rich table: per seed, then mean ± std and the range, per engine."""
    from rich.table import Table

    settings, load = report["settings"], report["load_avg"]
    table = Table(
        title=f"best validation AUC in {settings['budget_s']:g} s of search\n"
        f"{settings['space']} space, {settings['epochs']} epochs, {settings['image_size']} px, "
        f"{settings['cpus']} CPUs, load {load['before']:.1f} → {load['after']:.1f}"
    )
    table.add_column("seed", justify="right")
    for label, _ in ENGINES.values():
        table.add_column(label, justify="right", no_wrap=True)
        table.add_column("trials\nepochs\nsearch s", justify="right", style="dim")
    for i, seed in enumerate(settings["seeds"]):
        cells = []
        for engine in ENGINES:
            r = report[engine]
            auc = r["best_auc"][i]
            cells.append("–" if auc is None else f"{auc:.4f}")
            cells.append(f"{r['trials'][i]}·{r['epochs_trained'][i]}·{r['search_wall_s'][i]:.0f}")
        table.add_row(str(seed), *cells, end_section=i == len(settings["seeds"]) - 1)
    means, ranges = [], []
    for engine in ENGINES:
        r = report[engine]
        std = f" ± {r['std']:.4f}" if r["std"] is not None else ""
        means += ["–" if r["mean"] is None else f"[bold]{r['mean']:.4f}{std}[/]", ""]
        ranges += ["–" if r["min"] is None else f"{r['min']:.4f} – {r['max']:.4f}", ""]
    table.add_row("mean ± std", *means)
    table.add_row("min – max", *ranges)
    return table


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1, one study per engine each")
    p.add_argument("--budget-s", type=float, default=120.0, help="search wall-clock budget")
    p.add_argument(
        "--data", default=None, help="data folder (default: shared covid-cxr, else demo)"
    )
    p.add_argument("--space", default="small", help="search space for both engines")
    p.add_argument("--epochs", type=int, default=6, help="epoch budget of a trial (both engines)")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--trials", type=int, default=10_000, help="trial cap, high so the clock binds")
    p.add_argument("--smoke-test", action="store_true", help="one seed, 20 s, 2 epochs")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.smoke_test:
        args.seeds, args.budget_s, args.epochs = 1, 20.0, 2
    args.data = args.data or default_data()

    from rich.console import Console

    console = Console()
    load_before = os.getloadavg()[0]
    results: dict[str, list[dict[str, Any]]] = {engine: [] for engine in ENGINES}
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            order = list(ENGINES) if seed % 2 == 0 else list(reversed(ENGINES))
            for engine in order:
                label = ENGINES[engine][0].replace("\n", ", ")
                console.print(f"[dim]seed {seed}: {label}, {args.budget_s:g} s…[/]")
                results[engine].append(run_engine(engine, seed, args, Path(tmp)))
    load_after = os.getloadavg()[0]

    report: dict[str, Any] = {
        "settings": {
            **{k: getattr(args, k) for k in ("data", "space", "epochs", "image_size", "trials")},
            "budget_s": args.budget_s,
            "seeds": list(range(args.seeds)),
            "cpus": os.cpu_count(),
            "total_wall_s": time.monotonic() - started,
        },
        "load_avg": {"before": load_before, "after": load_after},
    }
    for engine, runs in results.items():
        scores = [r["best_auc"] for r in runs if r["best_auc"] is not None]
        report[engine] = {
            "best_auc": [r["best_auc"] for r in runs],
            **spread(scores),
            "scored": len(scores),  # seeds whose search finished an epoch within the budget
            "trials": [r["trials"] for r in runs],
            "epochs_trained": [r["epochs_trained"] for r in runs],
            "search_wall_s": [r["search_wall_s"] for r in runs],
        }

    console.print(side_by_side(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
        console.print(f"[bold]wrote[/] {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
