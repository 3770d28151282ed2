"""The sensible default with Keras' BatchNorm momentum (0.99) against 0.9, seed by seed.

    python benchmarks/bn_momentum.py [--data DIR] [--seeds 0,1,2] [--epochs 6] [--image-size 96]

Trains the ``default`` preset once per seed and momentum with `covidxr_core.train.train`
(no data: the embedded synthetic demo set) and prints each run's final validation and
test AUC and its validation AUC per epoch. docs/tuning.md has the figures and why they
matter: with momentum 0.99 the moving statistics a model predicts with still hold a third
of their initial values after 110 steps.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="a data folder (default: the synthetic demo set)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--momenta", default="0.99,0.9")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()

    from covidxr_core.config import preset
    from covidxr_core.data import DataConfig, load_dataset
    from covidxr_core.train import TrainConfig, train

    data = load_dataset(args.data, DataConfig(image_size=args.image_size, channels=1))
    rows = []
    for momentum in (float(m) for m in args.momenta.split(",")):
        for seed in (int(s) for s in args.seeds.split(",")):
            model = preset(
                "default",
                image_size=args.image_size,
                channels=1,
                class_names=tuple(data.class_names),
                positive_class=data.positive_class,
                bn_momentum=momentum,
            )
            config = TrainConfig(model=model, epochs=args.epochs, batch_size=32, seed=seed)
            result = train(config, data, n_boot=0)
            row = {
                "bn_momentum": momentum,
                "seed": seed,
                "val_auc": round(float(result.validation["auc"]), 3),
                "test_auc": round(float(result.test["auc"]), 3) if result.test else None,
                "val_auc_per_epoch": [round(float(h["val_auc"]), 3) for h in result.history],
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
