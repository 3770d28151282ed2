"""What a trial costs on an accelerator, and what a 50-trial study costs when trials share it.

    python benchmarks/gpu.py [--json OUT] [--trials 50] [--packing 1,4,8]
    python benchmarks/gpu.py --quick        # a CPU-sized run of the same code path

Records, in one run:
  1. training images/s of one trial at the recipe's settings (300 px, 3 channels, batch 32,
     fused affine augmentation, uint8 input), measured over the epochs after the first;
  2. per-trial overhead: a trial's wall time minus its training epochs, from a study's
     leaderboard (worker reuse, import and compile costs are what it holds);
  3. wall time of a `--trials`-trial study at the recipe's settings (the 224-image
     synthetic demo set, 300 px × 3) with trials packed 1, 4 and 8 per GPU
     (`--gpus-per-trial` 1, 0.25, 0.125). Without a GPU, packing is skipped and one CPU
     study is timed instead.
Run it on the Keras backend you care about (KERAS_BACKEND=jax on the GPU machine).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def device_name() -> str:
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return f"jax: {jax.devices()[0].device_kind}"
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        return "tensorflow: " + (gpus[0].name if gpus else f"CPU ({os.cpu_count()} cores)")
    return backend


def has_gpu() -> bool:
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return jax.devices()[0].platform == "gpu"
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    return False


def images_per_second(data, image_size: int, channels: int, epochs: int, precision: str) -> dict:
    """Steady-state training throughput of one trial (epochs after the first)."""
    from covidxr_core.model import preset
    from covidxr_core.train import TrainConfig, train

    times: list[float] = []
    config = TrainConfig(
        model=preset("seed", image_size=image_size, channels=channels),
        epochs=epochs,
        batch_size=32,
        precision=precision,
    )
    started = time.perf_counter()
    result = train(
        config,
        data,
        callbacks=[lambda e, m: times.append(m["epoch_s"])],
        evaluate_test=False,
        n_boot=0,
    )
    n = len(data.splits["train"])
    steady = times[1:] or times
    return {
        "images_per_s": n * len(steady) / sum(steady),
        "first_epoch_s": times[0],
        "steady_epoch_s": sum(steady) / len(steady),
        "trial_wall_s": time.perf_counter() - started,
        "val_auc": result.validation.get("auc"),
    }


def study(
    name: str,
    out: Path,
    trials: int,
    epochs: int,
    image_size: int,
    channels: int,
    gpus_per_trial: float,
    precision: str,
) -> dict:

    from tuning import StudySpec, run_study

    spec = StudySpec(
        trials=trials,
        epochs=epochs,
        image_size=image_size,
        channels=channels,
        space="recipe",
        gpus_per_trial=gpus_per_trial,
        retrain_seeds=0,
        output=str(out),
        name=name,
        precision=precision,
        cpus_per_trial=1,
    )
    outcome = run_study(spec)
    rows = outcome.leaderboard.to_dict("records")
    overhead = [r["wall_s"] - r["train_s"] for r in rows if r["wall_s"] and r["train_s"]]
    summary = json.loads((outcome.run_dir / "summary.json").read_text())
    return {
        "gpus_per_trial": gpus_per_trial,
        "trials": len(rows),
        "search_wall_s": summary["search_wall_s"],
        "trials_per_min": len(rows) / summary["search_wall_s"] * 60,
        "overhead_s_per_trial": sum(overhead) / len(overhead) if overhead else None,
        "train_s_per_trial": sum(r["train_s"] or 0 for r in rows) / len(rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--image-size", type=int, default=300)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--packing", default="1,4,8", help="trials per GPU to time")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    parser.add_argument("--quick", action="store_true", help="CPU-sized: 64 px, 4 trials, 2 epochs")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.quick:
        args.trials, args.epochs, args.image_size, args.packing = 4, 2, 64, "1"

    from covidxr_core import configure_backend

    configure_backend()
    import ray
    from rich.console import Console
    from rich.table import Table

    from covidxr_core.data import DataConfig, load_dataset

    data = load_dataset(None, DataConfig(image_size=args.image_size, channels=args.channels))
    result: dict = {
        "device": device_name(),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "settings": vars(args).copy(),
    }
    result["one_trial"] = images_per_second(
        data, args.image_size, args.channels, max(3, min(args.epochs, 5)), args.precision
    )
    ray.init(address="local", include_dashboard=False, log_to_driver=False)
    gpu = has_gpu() and ray.cluster_resources().get("GPU", 0) > 0
    packings = [int(p) for p in args.packing.split(",")] if gpu else [0]
    result["studies"] = []
    with tempfile.TemporaryDirectory() as tmp:
        for pack in packings:
            fraction = 1 / pack if pack else 0.0
            result["studies"].append(
                study(
                    f"pack{pack}",
                    Path(tmp),
                    args.trials,
                    args.epochs,
                    args.image_size,
                    args.channels,
                    fraction,
                    args.precision,
                )
            )
    ray.shutdown()

    one = result["one_trial"]
    console = Console()
    console.print(
        f"[bold]{result['device']}[/]  one trial: {one['images_per_s']:.0f} images/s "
        f"(first epoch {one['first_epoch_s']:.2f}s, then {one['steady_epoch_s']:.3f}s)"
    )
    table = Table(
        title=f"{args.trials}-trial study, {args.epochs} epochs, {args.image_size}px × {args.channels}"
    )
    for col in (
        "trials per GPU",
        "wall (s)",
        "trials/min",
        "overhead/trial (s)",
        "train/trial (s)",
    ):
        table.add_column(col, justify="right")
    for s in result["studies"]:
        table.add_row(
            str(round(1 / s["gpus_per_trial"])) if s["gpus_per_trial"] else "CPU",
            f"{s['search_wall_s']:.1f}",
            f"{s['trials_per_min']:.1f}",
            f"{s['overhead_s_per_trial']:.2f}" if s["overhead_s_per_trial"] is not None else "–",
            f"{s['train_s_per_trial']:.2f}",
        )
    console.print(table)
    console.print(
        "targets on one H100: ≥ 6,000 images/s per trial; overhead ≤ 3 s; 50 trials ≤ 60 s"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
