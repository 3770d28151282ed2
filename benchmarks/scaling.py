"""How trials per minute grow with worker nodes, and what limits them.

    python benchmarks/scaling.py [--json OUT] [--nodes 1,2,4] [--slots 4] [--no-baseline]

A simulated cluster on this machine: `ray.cluster_utils.Cluster` starts a head (no trial
slots, it runs the driver) and N worker raylets, each advertising `--slots` logical CPUs.
The trainable costs a controlled time (sleeping, so 2 real cores can stand in for many
GPU nodes), but everything around it is the real study path: the data set is read from
the object store in every trial, OptunaSearch (TPE, SQLite storage) proposes configs,
ASHA schedules, the leaderboard callback rewrites Parquet, Tune checkpoints its state.

Two contenders, one after the other: ours, staging as many trials as the cluster has
slots (`tuning.engines.ray_tune.staged_ahead`, what `tuning/run.py` does on a cluster it
joins), and Ray Tune's default for a custom searcher with no concurrency cap, which stages
one trial at a time, so trials that end together each start a fresh worker.

For each cluster size the figure is trials per minute, with `trials = waves × slots × N`
so every size runs the same number of waves: cold (whole run, worker start-up included)
and steady (after the first wave, when every slot has a warm worker). Efficiency at N
nodes = steady throughput(N) / (N × steady throughput(1)); JSON key
`efficiency_4_nodes` (target >= 0.8; `ray_default_efficiency_4_nodes` beside it); the
cold efficiency is printed too. To show which part becomes the bottleneck it records the
worker processes started, the time to fetch the data from the object store, the driver's
time in the searcher (suggest + complete) and in the leaderboard callback as shares of
the wall time, the driver's CPU-seconds per trial, and the CPU-seconds per trial of every
kind of process in the cluster (benchmarks/_proc_cpu.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "0")  # as tuning/study.py runs it
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")


def timed_trial(config: dict[str, Any], *, data: Any, epochs: int, epoch_s: float) -> None:
    """Costs `epochs × epoch_s` seconds; reads the shared data set like a real trial."""
    import ray
    from ray import tune

    t0 = time.perf_counter()
    dataset = ray.get(data) if isinstance(data, ray.ObjectRef) else data
    n = int(dataset.splits["train"].images.shape[0])
    fetch_s = time.perf_counter() - t0
    node = ray.get_runtime_context().get_node_id()
    for epoch in range(1, epochs + 1):
        time.sleep(epoch_s)
        score = 0.5 + 0.4 * config["dropout"] * epoch / epochs + 1e-6 * n
        tune.report(
            {
                "val_auc": score,
                "epoch": epoch,
                "epoch_s": epoch_s,
                "node_id": node,
                "fetch_s": fetch_s,
                "train_s": epoch * epoch_s,
                "pid": os.getpid(),
            }
        )


def run_size(
    nodes: int,
    slots: int,
    waves: int,
    epochs: int,
    epoch_s: float,
    data: Any,
    out: Path,
    ahead: int | None,
) -> dict[str, Any]:
    """One study on a fresh simulated cluster; ``ahead``: trials Tune may stage (None: Ray's
    default for a custom searcher, one)."""
    import optuna
    import ray
    from ray import tune
    from ray.cluster_utils import Cluster
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from benchmarks._proc_cpu import TreeCPU
    from search_spaces import get_space
    from tuning.engines.ray_callbacks import LeaderboardCallback
    from tuning.engines.ray_tune import staged_ahead
    from tuning.leaderboard import Leaderboard

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    for _ in range(nodes):
        cluster.add_node(num_cpus=slots)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
    try:
        space = get_space("small")
        trials = waves * slots * nodes
        run_dir = out / f"n{nodes}-{ahead or 'default'}"
        run_dir.mkdir(parents=True)
        board = Leaderboard(run_dir / "leaderboard.parquet", space, "val_auc", "max", epochs)
        spent = {"searcher_s": 0.0, "callback_s": 0.0}

        class TimedSearch(OptunaSearch):
            def suggest(self, trial_id):
                t0 = time.perf_counter()
                try:
                    return super().suggest(trial_id)
                finally:
                    spent["searcher_s"] += time.perf_counter() - t0

            def on_trial_complete(self, trial_id, result=None, error=False):
                t0 = time.perf_counter()
                try:
                    return super().on_trial_complete(trial_id, result, error)
                finally:
                    spent["searcher_s"] += time.perf_counter() - t0

        class TimedBoard(LeaderboardCallback):
            def on_trial_result(self, *a, **k):
                t0 = time.perf_counter()
                super().on_trial_result(*a, **k)
                spent["callback_s"] += time.perf_counter() - t0

            def on_trial_complete(self, *a, **k):
                t0 = time.perf_counter()
                super().on_trial_complete(*a, **k)
                spent["callback_s"] += time.perf_counter() - t0

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        data_ref = ray.put(data)
        tuner = tune.Tuner(
            tune.with_resources(
                tune.with_parameters(timed_trial, data=data_ref, epochs=epochs, epoch_s=epoch_s),
                {"cpu": 1},
            ),
            tune_config=tune.TuneConfig(
                metric="val_auc",
                mode="max",
                num_samples=trials,
                reuse_actors=True,
                search_alg=TimedSearch(
                    space=space.to_optuna(),
                    metric="val_auc",
                    mode="max",
                    sampler=optuna.samplers.TPESampler(seed=0),
                    storage=optuna.storages.RDBStorage(f"sqlite:///{run_dir / 'optuna.db'}"),
                    study_name=f"n{nodes}",
                ),
                scheduler=ASHAScheduler(max_t=epochs, grace_period=epochs, reduction_factor=3),
            ),
            run_config=tune.RunConfig(
                storage_path=str(run_dir),
                name="tune",
                verbose=0,
                callbacks=[TimedBoard(board, 0.0, 1.0)],
            ),
        )
        started = time.monotonic()
        with staged_ahead(ahead), TreeCPU() as cpu:
            results = tuner.fit()
        wall = time.monotonic() - started
        rows = list(board.rows.values())
        by_kind = cpu.by_kind()
        fetch = [r.metrics.get("fetch_s", 0.0) for r in results if r.metrics]
        # Steady state: from the end of the first wave (every slot has a warm worker) to
        # the last finish. On this machine all simulated nodes start their workers on the
        # same 2 cores; on a real cluster each node starts its own in parallel.
        ends = sorted(r.finished_at for r in rows if r.finished_at)
        width = slots * nodes
        steady = (
            (len(ends) - width) / (ends[-1] - ends[width - 1]) * 60 if len(ends) > width else None
        )
        return {
            "nodes": nodes,
            "slots": slots * nodes,
            "trials": len(rows),
            "wall_s": wall,
            "trials_per_min": len(rows) / wall * 60,
            "steady_trials_per_min": steady,
            "ideal_trials_per_min": slots * nodes * 60 / (epochs * epoch_s),
            "distinct_nodes_used": len({r.node_id for r in rows}),
            # processes that ran a trial, and every worker process seen (idle ones included)
            "trial_pids": len({r.pid for r in rows if r.pid}),
            "worker_processes": cpu.processes("workers"),
            "searcher_share": spent["searcher_s"] / wall,
            "callback_share": spent["callback_s"] / wall,
            "object_store_fetch_s_mean": sum(fetch) / max(1, len(fetch)),
            "driver_cpu_s_per_trial": cpu.driver_s / max(1, len(rows)),
            "cpu_s_per_trial_by_process": {
                k: v / max(1, len(rows)) for k, v in sorted(by_kind.items())
            },
            "machine_cpu_share": sum(by_kind.values()) / (wall * (os.cpu_count() or 1)),
        }
    finally:
        ray.shutdown()
        cluster.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", default="1,2,4")
    parser.add_argument("--slots", type=int, default=4, help="trial slots per worker node")
    parser.add_argument("--waves", type=int, default=4, help="trials per slot")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--epoch-s", type=float, default=1.0, help="simulated seconds per epoch")
    parser.add_argument("--image-size", type=int, default=128, help="size of the shared data set")
    parser.add_argument(
        "--checkpoint-s",
        default=None,
        help="Tune's experiment-checkpoint period (TUNE_GLOBAL_CHECKPOINT_S); default: as the study runs",
    )
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip the run with Ray's default staging"
    )
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.checkpoint_s is not None:
        os.environ["TUNE_GLOBAL_CHECKPOINT_S"] = args.checkpoint_s

    from rich.console import Console

    from covidxr_core.data import DataConfig, load_dataset

    data = load_dataset(None, DataConfig(image_size=args.image_size, channels=1))
    sizes = [int(n) for n in args.nodes.split(",")]
    contenders = {
        # what tuning/run.py does on a cluster it joins: stage as many trials as there are slots
        "ours": lambda n: n * args.slots,
        # Ray Tune's default for a custom searcher with no concurrency cap: one staged trial
        "ray default": lambda n: None,
    }
    if args.no_baseline:
        contenders.pop("ray default")
    result: dict[str, Any] = {"settings": vars(args), "cpus": os.cpu_count()}
    console = Console(width=170)
    with tempfile.TemporaryDirectory() as tmp:
        for name, ahead in contenders.items():
            runs = [
                run_size(
                    n, args.slots, args.waves, args.epochs, args.epoch_s, data, Path(tmp), ahead(n)
                )
                for n in sizes
            ]
            add_efficiency(runs, sizes)
            key = "" if name == "ours" else "ray_default_"
            result[f"{key}runs"] = runs
            four = [r for r in runs if r["nodes"] == 4]
            result[f"{key}efficiency_4_nodes"] = four[0]["efficiency"] if four else None
            print_runs(console, name, args, runs)
    print(f"efficiency_4_nodes = {result['efficiency_4_nodes']}")
    if "ray_default_efficiency_4_nodes" in result:
        print(f"ray_default_efficiency_4_nodes = {result['ray_default_efficiency_4_nodes']}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


def add_efficiency(runs: list[dict[str, Any]], sizes: list[int]) -> None:
    base = runs[0]["steady_trials_per_min"] / sizes[0]
    cold_base = runs[0]["trials_per_min"] / sizes[0]
    for r in runs:
        r["efficiency"] = r["steady_trials_per_min"] / (r["nodes"] * base)
        r["cold_efficiency"] = r["trials_per_min"] / (r["nodes"] * cold_base)


def print_runs(
    console: Any, name: str, args: argparse.Namespace, runs: list[dict[str, Any]]
) -> None:
    from rich.table import Table

    table = Table(
        title=f"{name}: {args.slots} slots/node, trial = {args.epochs} × {args.epoch_s}s, "
        f"{args.waves} waves"
    )
    for col in (
        "nodes",
        "trials",
        "trial workers",
        "worker procs",
        "wall s",
        "tpm cold",
        "tpm steady",
        "ideal",
        "eff.",
        "eff. cold",
        "nodes used",
        "searcher",
        "callbacks",
        "fetch s",
        "driver CPU s/trial",
    ):
        table.add_column(col, justify="right")
    for r in runs:
        table.add_row(
            str(r["nodes"]),
            str(r["trials"]),
            str(r["trial_pids"]),
            str(r["worker_processes"]),
            f"{r['wall_s']:.1f}",
            f"{r['trials_per_min']:.1f}",
            f"{r['steady_trials_per_min']:.1f}",
            f"{r['ideal_trials_per_min']:.1f}",
            f"{r['efficiency']:.2f}",
            f"{r['cold_efficiency']:.2f}",
            str(r["distinct_nodes_used"]),
            f"{r['searcher_share']:.1%}",
            f"{r['callback_share']:.1%}",
            f"{r['object_store_fetch_s_mean']:.3f}",
            f"{r['driver_cpu_s_per_trial']:.2f}",
        )
    console.print(table)
    for r in runs:
        where = ", ".join(f"{k} {v:.2f}" for k, v in r["cpu_s_per_trial_by_process"].items())
        console.print(
            f"  {r['nodes']} node(s), CPU-seconds per trial: {where}; the whole tree used "
            f"{r['machine_cpu_share']:.0%} of the machine's {os.cpu_count()} cores"
        )


if __name__ == "__main__":
    main()
