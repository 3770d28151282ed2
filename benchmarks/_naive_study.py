"""The baseline a user would write first: Ray Tune + Keras, done the obvious way.

Each trial runs in a fresh worker process (no actor reuse), decodes the images itself
with `ImageDataGenerator.flow_from_directory`, and augments with Keras's separate
`Random*` layers. Same search space (Optuna TPE + ASHA), data, trial count and epochs as
`tuning/run.py`, so the difference measured is the pipeline, not the search.

Used by benchmarks/study.py; run alone with `python benchmarks/_naive_study.py --help`.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any


def naive_trial(
    config: dict[str, Any], *, data_dir: str, image_size: int, channels: int, epochs: int
) -> None:
    import keras
    import tensorflow as tf
    from ray import tune

    started = time.perf_counter()
    color = "grayscale" if channels == 1 else "rgb"
    gen = tf.keras.preprocessing.image.ImageDataGenerator(rescale=1 / 255)
    train = gen.flow_from_directory(
        f"{data_dir}/train",
        target_size=(image_size, image_size),
        color_mode=color,
        batch_size=32,
        class_mode="categorical",
        seed=0,
    )
    val = gen.flow_from_directory(
        f"{data_dir}/validation",
        target_size=(image_size, image_size),
        color_mode=color,
        batch_size=32,
        class_mode="categorical",
        shuffle=False,
    )
    widths = [max(1, round(config.get("base_width", 2) * 2**i)) for i in range(6)]
    layers: list[Any] = [
        keras.Input((image_size, image_size, channels)),
        keras.layers.RandomFlip("horizontal_and_vertical"),
        keras.layers.RandomRotation(20 / 360),
        keras.layers.RandomZoom(0.2),
        keras.layers.RandomTranslation(0.2, 0.2),
        keras.layers.RandomShear(0.2 / 90),
    ]
    for width in widths:
        layers += [
            keras.layers.Conv2D(
                width,
                3,
                padding="same",
                activation="relu",
                kernel_initializer="he_normal",
                kernel_regularizer=keras.regularizers.l2(1e-3),
            ),
            keras.layers.BatchNormalization(),
            keras.layers.MaxPooling2D(),
        ]
    layers += [
        keras.layers.Flatten(),
        keras.layers.Dropout(config.get("dropout", 0.5)),
        keras.layers.Dense(2, activation="softmax"),
    ]
    model = keras.Sequential(layers)
    optimizer = config.get("optimizer", "adam")
    lr = config.get("learning_rate", 1e-3)
    opt = {
        "adam": keras.optimizers.Adam,
        "adagrad": keras.optimizers.Adagrad,
        "sgd": keras.optimizers.SGD,
    }[optimizer](learning_rate=lr)
    model.compile(
        opt, loss="binary_crossentropy", metrics=["binary_accuracy", keras.metrics.AUC(name="auc")]
    )
    epoch_s: list[float] = []
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        model.fit(train, epochs=1, verbose=0)
        scores = model.evaluate(val, verbose=0, return_dict=True)
        epoch_s.append(time.perf_counter() - t0)
        tune.report(
            {
                "val_auc": float(scores["auc"]),
                "epoch": epoch,
                "epoch_times": list(epoch_s),
                "trial_wall_s": time.perf_counter() - started,
            }
        )


def run_naive(
    data_dir: str,
    space_name: str,
    trials: int,
    epochs: int,
    image_size: int,
    channels: int,
    seed: int,
    storage: str,
) -> dict[str, Any]:
    import optuna
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from search_spaces import get_space

    space = get_space(space_name)
    wall: dict[str, float] = {}
    last: dict[str, dict] = {}

    class Timer(tune.Callback):
        def on_trial_start(self, iteration, trials, trial, **info):
            wall[trial.trial_id] = time.monotonic()

        def on_trial_result(self, iteration, trials, trial, result, **info):
            last[trial.trial_id] = result

        def on_trial_complete(self, iteration, trials, trial, **info):
            wall[trial.trial_id] = time.monotonic() - wall[trial.trial_id]

    ray.init(
        address="local", ignore_reinit_error=True, include_dashboard=False, log_to_driver=False
    )
    started = time.monotonic()
    tuner = tune.Tuner(
        tune.with_resources(
            tune.with_parameters(
                naive_trial,
                data_dir=data_dir,
                image_size=image_size,
                channels=channels,
                epochs=epochs,
            ),
            {"cpu": 1},
        ),
        tune_config=tune.TuneConfig(
            metric="val_auc",
            mode="max",
            num_samples=trials,
            reuse_actors=False,
            search_alg=OptunaSearch(
                space=space.to_optuna(),
                metric="val_auc",
                mode="max",
                sampler=optuna.samplers.TPESampler(seed=seed),
            ),
            scheduler=ASHAScheduler(max_t=epochs, grace_period=1, reduction_factor=3),
        ),
        run_config=tune.RunConfig(
            storage_path=storage, name="naive", verbose=0, callbacks=[Timer()]
        ),
    )
    tuner.fit()
    elapsed = time.monotonic() - started
    ray.shutdown()
    from study import strict_overhead

    overheads = [strict_overhead(wall.get(t), last[t]["epoch_times"]) for t in last]
    overheads = [o for o in overheads if o is not None]
    return {
        "wall_s": elapsed,
        "trials": len(last),
        "trials_per_min": len(last) / elapsed * 60,
        "overhead_s_per_trial": sum(overheads) / len(overheads) if overheads else None,
        "trial_wall_s": sum(wall[t] for t in last) / max(1, len(last)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--space", default="small")
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--storage", default=str(Path("/tmp") / f"covidxr-naive-{os.getpid()}"))
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    out = run_naive(
        args.data,
        args.space,
        args.trials,
        args.epochs,
        args.image_size,
        args.channels,
        args.seed,
        args.storage,
    )
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text)


if __name__ == "__main__":
    main()
