"""How trials per minute grow with worker nodes, and what limits them.

    python benchmarks/scaling.py [--json OUT] [--nodes 1,2,4] [--slots 4] [--trial-s 2.0]

A simulated cluster on this machine: `ray.cluster_utils.Cluster` starts a head (no trial
slots, it runs the driver) and N worker raylets, each advertising `--slots` logical CPUs.
The trainable costs a controlled time (sleeping, so 2 real cores can stand in for many
GPU nodes), but everything around it is the real study path: the data set is read from
the object store in every trial, OptunaSearch (TPE, SQLite storage) proposes configs,
ASHA schedules, the leaderboard callback rewrites Parquet, Tune checkpoints its state.

For each cluster size the figure is trials per minute, with `trials = waves × slots × N`
so every size runs the same number of waves: cold (whole run, worker start-up included)
and steady (after the first wave, when every slot has a warm worker). Efficiency at N
nodes = steady throughput(N) / (N × steady throughput(1)); JSON key
`efficiency_4_nodes` (target >= 0.8); the cold efficiency is printed beside it. To show which part
becomes the bottleneck it also records, per trial, the time to fetch the data from the
object store, and, on the driver, the time spent in the searcher (suggest + complete)
and in the leaderboard callback, as shares of the wall time.
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
            }
        )


def run_size(
    nodes: int, slots: int, waves: int, epochs: int, epoch_s: float, data: Any, out: Path
) -> dict[str, Any]:
    import optuna
    import ray
    from ray import tune
    from ray.cluster_utils import Cluster
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from search_spaces import get_space
    from tuning.engines.ray_callbacks import LeaderboardCallback
    from tuning.leaderboard import Leaderboard

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    for _ in range(nodes):
        cluster.add_node(num_cpus=slots)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
    try:
        space = get_space("small")
        trials = waves * slots * nodes
        run_dir = out / f"n{nodes}"
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
        results = tuner.fit()
        wall = time.monotonic() - started
        rows = list(board.rows.values())
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
            "searcher_share": spent["searcher_s"] / wall,
            "callback_share": spent["callback_s"] / wall,
            "object_store_fetch_s_mean": sum(fetch) / max(1, len(fetch)),
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
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    from covidxr_core.data import DataConfig, load_dataset

    data = load_dataset(None, DataConfig(image_size=args.image_size, channels=1))
    sizes = [int(n) for n in args.nodes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        runs = [
            run_size(n, args.slots, args.waves, args.epochs, args.epoch_s, data, Path(tmp))
            for n in sizes
        ]
    base = runs[0]["steady_trials_per_min"] / sizes[0]
    cold_base = runs[0]["trials_per_min"] / sizes[0]
    for r in runs:
        r["efficiency"] = r["steady_trials_per_min"] / (r["nodes"] * base)
        r["cold_efficiency"] = r["trials_per_min"] / (r["nodes"] * cold_base)
    result: dict[str, Any] = {"settings": vars(args), "cpus": os.cpu_count(), "runs": runs}
    four = [r for r in runs if r["nodes"] == 4]
    result["efficiency_4_nodes"] = four[0]["efficiency"] if four else None

    table = Table(
        title=f"simulated cluster: {args.slots} slots/node, trial = {args.epochs} × {args.epoch_s}s, {args.waves} waves"
    )
    for col in (
        "nodes",
        "trials",
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
    ):
        table.add_column(col, justify="right")
    for r in runs:
        table.add_row(
            str(r["nodes"]),
            str(r["trials"]),
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
        )
    Console(width=160).print(table)
    print(f"efficiency_4_nodes = {result['efficiency_4_nodes']}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
