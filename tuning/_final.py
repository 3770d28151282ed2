"""Retrain the best configuration and the recipe baseline, then compare them on test."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from search_spaces import SearchSpace
from tuning._compare import compare
from tuning._leaderboard import Leaderboard, param_column
from tuning._retrain import train_seed, write_role
from tuning.spec import StudySpec


def best_trial(board: Leaderboard) -> dict[str, Any] | None:
    """The best trial by its final metric among those that ran the full budget.

    Preferring full-budget trials compares like with like: an early epoch's score of a
    trial ASHA stopped is not what retraining for the full budget would give. If none
    completed, the best of the rest.
    """
    rows = [
        r
        for r in board.rows.values()
        if r["status"] == "TERMINATED" and r[board.metric] is not None
    ]
    completed = [r for r in rows if r["stop_reason"] == "completed"] or rows
    if not completed:
        return None
    sign = 1 if board.mode == "max" else -1
    return max(completed, key=lambda r: sign * r[board.metric])


def retrain_and_compare(
    spec: StudySpec,
    space: SearchSpace,
    data: Any,
    base: Any,
    board: Leaderboard,
    run_dir: Path,
    console: Console,
) -> str | None:
    import ray

    from tuning.study import _gpus_per_trial

    winner = best_trial(board)
    if winner is None:
        console.print("[red]no trial finished: nothing to retrain[/]")
        return None
    params = {p.name: winner[param_column(p.name)] for p in space.params}
    best_config = space.apply(params, base)
    seeds = [spec.seed + i for i in range(spec.retrain_seeds)]
    console.print(
        f"[bold]retraining[/] trial {winner['trial_id']} ({spec.metric} {winner[board.metric]:.4f}) "
        f"and the recipe baseline with seeds {seeds}, {spec.epochs} epochs each"
    )
    remote = ray.remote(train_seed).options(
        num_cpus=spec.cpus_per_trial, num_gpus=_gpus_per_trial(spec), max_retries=1
    )
    data_ref = ray.put(data)
    jobs = {
        role: [
            remote.remote(dataclasses.replace(cfg, seed=s), data_ref, spec.n_boot) for s in seeds
        ]
        for role, cfg in (("best", best_config), ("baseline", base))
    }
    runs = {role: ray.get(refs) for role, refs in jobs.items()}
    common = {
        "budget_epochs": spec.epochs,
        "image_size": spec.image_size,
        "channels": spec.channels,
    }
    best = write_role(
        run_dir / "best",
        "best",
        best_config,
        runs["best"],
        spec.metric,
        {**common, "trial_id": winner["trial_id"], "params": params},
    )
    baseline = write_role(
        run_dir / "baseline",
        "baseline",
        base,
        runs["baseline"],
        spec.metric,
        {**common, "preset": "seed"},
    )
    test = data.splits["test"]
    comparison = compare(
        best,
        baseline,
        test.labels,
        np.load(run_dir / "best" / "test_probs.npy"),
        np.load(run_dir / "baseline" / "test_probs.npy"),
        data.positive_index,
        n_boot=spec.n_boot,
        seed=spec.seed,
    )
    (run_dir / "comparison.json").write_text(json.dumps(comparison, indent=2))
    _print_comparison(console, best, baseline, comparison)
    return comparison["verdict"]


def _fmt(stat: dict[str, Any]) -> str:
    if stat["mean"] is None:
        return "–"
    return f"{stat['mean']:.3f} ± {stat['std']:.3f}" if stat["n"] > 1 else f"{stat['mean']:.3f}"


def _ci(summary: dict[str, Any], name: str) -> str:
    interval = summary["exported"]["test"]["ci95"].get(name)
    return f"[{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "–"


def _print_comparison(
    console: Console, best: dict[str, Any], baseline: dict[str, Any], comparison: dict[str, Any]
) -> None:
    table = Table(
        title="test split: tuned vs recipe (mean ± std over seeds; 95% CI of the exported model)"
    )
    table.add_column("metric")
    table.add_column("tuned", justify="right")
    table.add_column("recipe", justify="right")
    for name in ("auc", "accuracy", "sensitivity", "specificity", "f1"):
        ci = name in ("auc", "sensitivity", "specificity")
        table.add_row(
            name,
            _fmt(best["test_mean_std"][name]) + (f"  {_ci(best, name)}" if ci else ""),
            _fmt(baseline["test_mean_std"][name]) + (f"  {_ci(baseline, name)}" if ci else ""),
        )
    console.print(table)
    style = {True: "bold green", False: "bold red", None: "bold yellow"}[comparison["beat_recipe"]]
    console.print(f"[{style}]{comparison['verdict']}[/]")
