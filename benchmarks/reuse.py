"""What reusing a compiled model saves per trial, and what eager execution would cost.

    python benchmarks/reuse.py [--data DIR] [--image-size 128] [--epochs 2] [--trials 4]
                               [--json OUT]

In one process, the same architecture (the `small` space's widths, Adam) is trained
`--trials` times with different learning rates and dropout, three ways:

- fresh: `train(...)` as before, every trial a new model (traced again);
- reuse: `train(..., reuse=True)`, as a Ray worker runs trials (covidxr_core._reuse);
- eager: TensorFlow's functions run op by op, no tracing (one trial shows its cost).

It prints, per way, the first epoch (where tracing lands), the steady epoch (median of the
others) and the whole `train()` call, and the break-even step count at which tracing
pays for itself: trace cost / (eager step - traced step).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=None)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    from benchmarks.study import default_data
    from covidxr_core import configure_backend, train
    from covidxr_core.data import load_dataset
    from search_spaces import get_space
    from tuning.spec import StudySpec
    from tuning.study import _data_config, base_config

    configure_backend()
    data_dir = args.data or default_data()
    spec = StudySpec(data=data_dir, epochs=args.epochs, image_size=args.image_size, space="small")
    data = load_dataset(spec.data, _data_config(spec))
    base = base_config(spec, data)
    space = get_space("small")
    draws = [
        {"learning_rate": 10 ** (-3 + 1.5 * i / max(1, args.trials - 1)), "dropout": 0.1 * i}
        for i in range(args.trials)
    ]
    steps = math.ceil(len(data.splits["train"]) / base.batch_size)

    def run(values: dict[str, Any], reuse: bool, eager: bool = False) -> dict[str, float]:
        config = space.apply({**values, "base_width": 2}, base)
        started = time.perf_counter()
        if eager:
            import tensorflow as tf  # TensorFlow backend: its functions run op by op

            tf.config.run_functions_eagerly(True)
            try:
                result = train(config, data, evaluate_test=False, n_boot=0)
            finally:
                tf.config.run_functions_eagerly(False)
        else:
            result = train(config, data, evaluate_test=False, n_boot=0, reuse=reuse)
        epochs = [h["epoch_s"] for h in result.history]
        return {
            "first_epoch_s": epochs[0],
            "steady_epoch_s": statistics.median(epochs[1:]) if len(epochs) > 1 else math.nan,
            "train_s": time.perf_counter() - started,
        }

    ways: dict[str, list[dict[str, float]]] = {
        "fresh": [run(v, reuse=False) for v in draws],
        "reuse": [run(v, reuse=True) for v in draws],
        "eager": [run(draws[0], reuse=False, eager=True)],
    }

    def mean(way: str, key: str, skip_first: bool = False) -> float:
        rows = ways[way][1:] if skip_first and len(ways[way]) > 1 else ways[way]
        return statistics.mean(r[key] for r in rows)

    traced_step = mean("fresh", "steady_epoch_s") / steps
    eager_step = mean("eager", "steady_epoch_s") / steps
    trace_cost = mean("fresh", "first_epoch_s") - mean("fresh", "steady_epoch_s")
    break_even = trace_cost / (eager_step - traced_step) if eager_step > traced_step else math.inf
    summary = {
        "setup": {
            "data": data_dir,
            "image_size": args.image_size,
            "epochs": args.epochs,
            "trials": args.trials,
            "steps_per_epoch": steps,
        },
        "ways": ways,
        "first_epoch_s_fresh": mean("fresh", "first_epoch_s"),
        "first_epoch_s_reused": mean("reuse", "first_epoch_s", skip_first=True),
        "train_s_fresh": mean("fresh", "train_s"),
        "train_s_reused": mean("reuse", "train_s", skip_first=True),
        "trace_cost_s": trace_cost,
        "traced_step_s": traced_step,
        "eager_step_s": eager_step,
        "break_even_steps": break_even,
    }
    print(f"{'':28s}{'fresh':>10s}{'reused':>10s}")
    print(
        f"{'first epoch (s)':28s}{summary['first_epoch_s_fresh']:10.2f}"
        f"{summary['first_epoch_s_reused']:10.2f}"
    )
    print(
        f"{'train() call (s)':28s}{summary['train_s_fresh']:10.2f}{summary['train_s_reused']:10.2f}"
    )
    print(
        f"tracing {trace_cost:.2f} s; a step {traced_step * 1000:.0f} ms traced, "
        f"{eager_step * 1000:.0f} ms eager: tracing pays for itself after {break_even:.1f} "
        f"steps ({steps} per epoch here)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
