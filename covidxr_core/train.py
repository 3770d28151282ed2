"""One training run: ``train(config, data) -> TrainResult``, ``save_run`` and a small CLI.

Whoever drives training (Ray Tune, KerasTuner, the CLI below) passes plain callables that
receive each epoch's validation metrics; raising in one stops the run, which is how a
scheduler prunes a trial. All classification numbers come from ``covidxr_core.metrics``.

    python -m covidxr_core.train --data DIR --preset seed --epochs 10 --output runs/one
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from covidxr_core import _reuse
from covidxr_core.atomic import replacing, write_text
from covidxr_core.data import Dataset
from covidxr_core.errors import ConfigError, CovidxrError, DataError, for_cli
from covidxr_core.jsonsafe import dumps
from covidxr_core.metrics import classification_metrics
from covidxr_core.numbers import finite
from covidxr_core.outputs import check_output_folder

# Keras (and with it TensorFlow) is imported inside the functions that need it, so that
# importing covidxr_core (for its configs, or to load data) costs no TensorFlow start-up.
if TYPE_CHECKING:
    import keras

    from covidxr_core.config import ModelConfig
    from covidxr_core.operating_point import OperatingPoint

# precision name -> Keras dtype policy
PRECISIONS = {"fp32": "float32", "bf16": "mixed_bfloat16"}

# What an epoch callback receives, besides the 1-based epoch number. A value undefined on
# the validation split (e.g. AUC with one class) is NaN here and null in metrics.json.
EPOCH_KEYS = (
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "val_auc",
    "val_sensitivity",
    "val_specificity",
    "val_threshold",
    "epoch_s",
)

EpochCallback = Callable[[int, dict[str, float]], None]


class TrainingDiverged(CovidxrError):
    """The training loss became NaN or infinite; more epochs cannot bring it back."""

    def __init__(self, epoch: int, loss: float) -> None:
        self.epoch = epoch
        self.loss = loss
        super().__init__(
            f"training diverged: train loss is {loss} after epoch {epoch} "
            "(lower the learning rate, or use a different optimizer)"
        )


class TrainingStopped(Exception):
    """Raised between two batches when the driver of the run asked it to stop.

    Not a `CovidxrError`: nothing is wrong with the configuration; a scheduler (ASHA, a
    time limit, a SIGTERM) wants the worker back now rather than at the epoch's end.
    """

    def __init__(self, epoch: int, batch: int) -> None:
        self.epoch, self.batch = epoch, batch
        super().__init__(f"stopped on request in epoch {epoch}, after batch {batch}")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides one training run besides the data."""

    model: ModelConfig
    epochs: int = 10  # recipe: 10 epochs
    batch_size: int = 32  # recipe: batch 32
    seed: int = 0  # weights, augmentation draws and shuffling all follow from it
    precision: str = "fp32"  # "fp32", or "bf16" (Keras' mixed_bfloat16 policy)
    verbose: int = 0  # Keras fit's progress output: 0 silent, 1 bar, 2 one line per epoch
    # How the decision threshold is chosen on validation: youden, sens=T or spec=T
    # (covidxr_core.operating_point); binary problems only, argmax otherwise.
    operating_point: str = "youden"

    def __post_init__(self) -> None:
        from covidxr_core.config import ModelConfig

        if isinstance(self.model, Mapping):
            object.__setattr__(self, "model", ModelConfig.from_dict(self.model))

        def fail(name: str, rule: str, value: object) -> None:
            raise ConfigError(f"TrainConfig.{name}: {rule}, but got {value!r}")

        if not isinstance(self.model, ModelConfig):
            fail("model", "must be a ModelConfig", self.model)
        if self.epochs < 1:
            fail("epochs", "`epochs >= 1` must hold", self.epochs)
        if self.batch_size < 1:
            fail("batch_size", "`batch_size >= 1` must hold", self.batch_size)
        if self.precision not in PRECISIONS:
            fail("precision", f"must be one of {', '.join(PRECISIONS)}", self.precision)
        if self.verbose not in (0, 1, 2):
            fail("verbose", "must be 0, 1 or 2", self.verbose)
        from covidxr_core.operating_point import OperatingPoint

        try:
            OperatingPoint.parse(self.operating_point)
        except ConfigError as exc:
            fail("operating_point", str(exc), self.operating_point)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class TrainResult:
    """What one run produced.

    ``history`` has one dict per epoch: ``epoch`` plus ``EPOCH_KEYS``. ``train_loss`` is
    Keras' objective on augmented batches (cross-entropy plus the L2 penalty), averaged
    over the epoch; the ``val_*`` values are plain cross-entropy and metrics on the
    unaugmented validation split after the epoch. Sensitivity, specificity and accuracy
    are at the operating point's threshold chosen on that same validation split
    (``val_threshold``), so in-sample for it.

    ``validation`` and ``test`` are at ``threshold``, chosen on the final validation
    predictions; ``calibration`` holds the temperature fitted on validation and the ECE,
    Brier score and NLL before and after it. The model carries the threshold, the
    operating point and the temperature (`covidxr_core.model.model_metadata`).
    """

    history: list[dict[str, float]]
    validation: dict[str, Any]  # classification_metrics of the final model
    test: dict[str, Any] | None  # same on the test split; None if not evaluated
    model: keras.Model
    wall_s: float  # the whole call, including model building and tracing
    fit_s: float  # inside model.fit's training epochs (first one includes tracing)
    config: TrainConfig  # as trained: class names and positive class from the data
    backend: str = ""
    data_summary: dict[str, Any] = field(default_factory=dict)  # source, counts, notes...
    threshold: float | None = None  # chosen on validation; None: argmax (3+ classes)
    calibration: dict[str, Any] = field(default_factory=dict)
    # The final model's validation probabilities, (N, classes): what a tuner compares
    # runs on (never the test split's).
    validation_probs: np.ndarray | None = None


def _model_config_for(config: ModelConfig, data: Dataset) -> ModelConfig:
    """The model config with the data's classes; refuse data of another size or depth."""
    if data.image_size != config.image_size or data.channels != config.channels:
        raise ConfigError(
            f"data and model disagree: the data set is {data.image_size} px with "
            f"{data.channels} channel(s), the model expects {config.image_size} px with "
            f"{config.channels} channel(s); decode the data at the model's size or set "
            "the model's image_size/channels to the data's"
        )
    return dataclasses.replace(
        config,
        class_names=tuple(data.class_names),
        positive_class=data.positive_class,
        num_classes=len(data.class_names),
    )


def _check_splits(data: Dataset) -> None:
    expected = (data.image_size, data.image_size, data.channels)
    for name in ("train", "validation"):
        if name not in data.splits or len(data.splits[name]) == 0:
            raise DataError(f"the {name} split of {data.source} is empty; training needs it")
    for name, split in data.splits.items():
        if len(split) and (split.images.dtype != np.uint8 or split.images.shape[1:] != expected):
            raise DataError(
                f"the {name} split of {data.source}: images must be uint8 with shape "
                f"(N, {', '.join(map(str, expected))}), but got {split.images.dtype} "
                f"{split.images.shape}"
            )


@contextlib.contextmanager
def _dtype_policy(precision: str) -> Iterator[None]:
    import keras

    # Layers read the global policy when they are created; restore it so one bf16 run does
    # not change the next run in the same process (a reused Ray worker).
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(PRECISIONS[precision])
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _nan_if_none(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def _batches(images: np.ndarray, batch_size: int) -> list[Any]:
    """``images`` cut into equal batches, the last padded with blank images, on the device.

    Equal batches only: under JAX every new batch shape is a new XLA compilation, so
    validation and test share one. The batches are backend tensors, so images that are
    scored every epoch (validation) cross to the accelerator once per run, not per epoch.
    """
    import keras

    short = -images.shape[0] % batch_size
    if short:
        images = np.concatenate([images, np.zeros((short, *images.shape[1:]), images.dtype)])
    return [
        keras.ops.convert_to_tensor(images[i : i + batch_size])
        for i in range(0, images.shape[0], batch_size)
    ]


def _predict(
    model: keras.Model, images: np.ndarray, batch_size: int, batches: list[Any] | None = None
) -> np.ndarray:
    """Softmax outputs for ``images`` (or for its ``batches``, made once by `_batches`).

    Batch by batch through the model's traced predict step: `model.predict` would build a
    tf.data pipeline on every call (about 0.1 s each, twice per epoch here).
    """
    if batches is None:
        batches = _batches(images, batch_size)
    out = [np.asarray(model.predict_on_batch(batch)) for batch in batches]
    return np.concatenate(out)[: images.shape[0]]


def _threshold(
    labels: np.ndarray, probs: np.ndarray, positive_index: int, point: OperatingPoint
) -> float | None:
    """The operating point's threshold on these validation predictions (binary only)."""
    from covidxr_core.operating_point import choose_threshold

    if probs.shape[1] != 2:
        return None
    return choose_threshold(labels, probs[:, positive_index], positive_index, point)


def _calibration(
    val_labels: np.ndarray,
    val_probs: np.ndarray,
    test_labels: np.ndarray | None,
    test_probs: np.ndarray | None,
    positive_index: int,
) -> dict[str, Any]:
    """Temperature scaling fitted on validation, and what it does to ECE, Brier and NLL."""
    from covidxr_core.calibration import apply_temperature, brier, ece, fit_temperature, nll

    temperature = fit_temperature(val_labels, val_probs)
    out: dict[str, Any] = {"temperature": temperature, "fitted_on": "validation"}
    splits = [("validation", val_labels, val_probs)]
    if test_labels is not None and test_probs is not None:
        splits.append(("test", test_labels, test_probs))
    for name, labels, probs in splits:
        scaled = apply_temperature(probs, temperature)
        is_pos = np.asarray(labels) == positive_index
        out[name] = {
            "ece_before": ece(is_pos, probs[:, positive_index]),
            "ece_after": ece(is_pos, scaled[:, positive_index]),
            "brier_before": brier(is_pos, probs[:, positive_index]),
            "brier_after": brier(is_pos, scaled[:, positive_index]),
            "nll_before": nll(labels, probs),
            "nll_after": nll(labels, scaled),
        }
    return out


@functools.cache
def _reporter_class() -> type:
    """The Keras callback class, defined on first use so importing this module stays light."""
    import keras

    class _EpochReporter(keras.callbacks.Callback):
        """After each epoch: check the loss, score the validation split, call the user."""

        def __init__(
            self,
            data: Dataset,
            batch_size: int,
            callbacks: Sequence[EpochCallback],
            point: OperatingPoint,
            should_stop: Callable[[], bool] | None = None,
        ) -> None:
            super().__init__()
            self._point = point
            self._should_stop = should_stop
            self._epoch = 0
            self._split = data.splits["validation"]
            self._class_names = tuple(data.class_names)
            self._positive_index = data.positive_index
            self._batch_size = batch_size
            self._callbacks = tuple(callbacks)
            self._started = 0.0
            self.history: list[dict[str, float]] = []
            self.fit_s = 0.0
            self.last_probs: np.ndarray | None = None
            self._val_batches: list[Any] | None = None  # made on the first epoch's end

        def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self._started = time.perf_counter()
            self._epoch = epoch + 1

        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            # Checked between batches: a stopped trial gives its worker back within a batch,
            # not at the end of an epoch that may outlast its scheduler's patience.
            if self._should_stop is not None and self._should_stop():
                raise TrainingStopped(self._epoch, batch + 1)

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            epoch_s = time.perf_counter() - self._started
            self.fit_s += epoch_s
            logs = logs or {}
            train_loss = float(logs.get("loss", float("nan")))
            if finite(train_loss) is None:
                raise TrainingDiverged(epoch + 1, train_loss)

            if self._val_batches is None:
                self._val_batches = _batches(self._split.images, self._batch_size)
            probs = _predict(self.model, self._split.images, self._batch_size, self._val_batches)
            self.last_probs = probs
            threshold = _threshold(self._split.labels, probs, self._positive_index, self._point)
            val = classification_metrics(
                self._split.labels,
                probs,
                self._positive_index,
                self._class_names,
                n_boot=0,
                threshold=threshold,
            )
            row = {
                "train_loss": train_loss,
                "train_accuracy": float(logs.get("accuracy", float("nan"))),
                "val_loss": _nan_if_none(val["loss"]),
                "val_accuracy": _nan_if_none(val["accuracy"]),
                "val_auc": _nan_if_none(val["auc"]),
                "val_sensitivity": _nan_if_none(val["sensitivity"]),
                "val_specificity": _nan_if_none(val["specificity"]),
                "val_threshold": _nan_if_none(threshold),
                "epoch_s": epoch_s,
            }
            self.history.append({"epoch": epoch + 1, **row})
            # A user callback's exception ends model.fit and leaves train(); the tuner relies
            # on that to stop a trial.
            for callback in self._callbacks:
                callback(epoch + 1, dict(row))

    return _EpochReporter


def _data_summary(data: Dataset) -> dict[str, Any]:
    return {
        "source": data.source,
        "synthetic": data.synthetic,
        "notes": list(data.notes),
        "counts": data.counts(),
        "image_size": data.image_size,
        "channels": data.channels,
        "class_names": list(data.class_names),
        "positive_class": data.positive_class,
        "skipped": len(data.skipped),
        "cache_hit": data.cache_hit,
    }


def _training_input(
    images: np.ndarray, onehot: np.ndarray, batch_size: int, seed: int, backend: str
) -> dict[str, Any]:
    """``fit``'s data arguments: arrays with their batch size, or on TensorFlow a dataset.

    Given arrays, Keras' TensorFlow trainer builds a tf.data pipeline with a traced
    slicing function on every ``fit`` call: about a second before the first batch even
    when the training step itself is already traced (a reused model). A plain
    slice-shuffle-batch pipeline has no function to trace. It reshuffles every epoch from
    ``seed``, so the same seed gives the same batches. Other backends take the arrays,
    shuffled by ``fit`` from the seeded global generator (`enable_determinism`).
    """
    if backend != "tensorflow":
        return {"x": images, "y": onehot, "batch_size": batch_size, "shuffle": True}
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((images, onehot))
    dataset = dataset.shuffle(images.shape[0], seed=seed, reshuffle_each_iteration=True)
    # A dataset comes batched and shuffled: fit is given neither.
    return {"x": dataset.batch(batch_size), "shuffle": False}


def _build_for_fit(model: keras.Model, x: np.ndarray, y: np.ndarray) -> None:
    """Build the optimizer, loss and metrics from one example, as ``fit`` would.

    ``fit`` builds them from the first batch of its own data iterator, and under JAX that
    draws a shuffle permutation from NumPy's global generator before the first epoch. A
    kept model (``reuse``) needs no build, so its epochs would see other permutations.
    Building here, from given arrays, leaves the generator alone in both cases. Keras'
    ``_symbolic_build`` is private; without it ``fit`` builds as before.
    """
    build = getattr(model, "_symbolic_build", None)
    if build is not None:
        build(data_batch=(x, y))


def train(
    config: TrainConfig,
    data: Dataset,
    callbacks: Sequence[EpochCallback] = (),
    evaluate_test: bool = True,
    n_boot: int = 1000,
    should_stop: Callable[[], bool] | None = None,
    reuse: bool = False,
) -> TrainResult:
    """Train one configuration on ``data`` and measure it.

    The same seed, data and backend on a CPU give the same history and metrics.

    Args:
        config: What to train and how.
        data: The decoded data set; its image size and channels must match the model's.
            The model takes the data's class names and positive class.
        callbacks: Called after every epoch as ``callback(epoch, metrics)`` with the
            1-based epoch and ``EPOCH_KEYS``; an exception stops training and propagates.
        evaluate_test: Also measure the final model on the test split (if not empty).
        n_boot: Bootstrap resamples for the final metrics' 95% intervals (0: none).
        should_stop: Asked after every training batch; True ends the run at once with
            `TrainingStopped` (how a tuner reclaims a worker mid-epoch).
        reuse: Train a model this process kept from an earlier run with the same program
            (`covidxr_core._reuse`: same shapes and constants; learning rate, its decay,
            dropout and L2 may differ), reset to this run's fresh state, so its traced
            steps are not traced again. The result is the same as without it. The
            returned model is then lent: the next ``reuse=True`` run of that program
            overwrites it, so save it first if it is wanted.

    Returns:
        The history, final validation (and test) metrics, the trained model and timings.

    Raises:
        ConfigError: The data's image size or channels differ from the model's.
        DataError: The train or validation split is empty or malformed.
        TrainingDiverged: The training loss became NaN or infinite.
        TrainingStopped: ``should_stop`` said so.
    """
    from covidxr_core._backend import configure_backend, enable_determinism
    from covidxr_core.model import build_model, set_decision, set_schedule_length
    from covidxr_core.operating_point import OperatingPoint

    started = time.perf_counter()
    backend = configure_backend()
    model_config = _model_config_for(config.model, data)
    config = dataclasses.replace(config, model=model_config)
    _check_splits(data)

    enable_determinism(config.seed)
    with _dtype_policy(config.precision):
        model = build_model(model_config)
    train_split = data.splits["train"]
    onehot = np.eye(len(data.class_names), dtype=np.float32)[train_split.labels]
    key = None
    if reuse:
        key = _reuse.program_key(model_config, config.batch_size, config.precision, backend)
        model = _reuse.adopt(model, key)
    if not model.optimizer.built:  # a model of its own (a kept one is built)
        _build_for_fit(model, train_split.images[:1], onehot[:1])
    # After adopt: a kept model took the fresh one's state, the cosine's length included.
    steps_per_epoch = -(-len(train_split.labels) // config.batch_size)
    set_schedule_length(model, model_config, config.epochs * steps_per_epoch)

    point = OperatingPoint.parse(config.operating_point)
    reporter = _reporter_class()(data, config.batch_size, callbacks, point, should_stop)
    fit_data = _training_input(train_split.images, onehot, config.batch_size, config.seed, backend)
    try:
        model.fit(
            **fit_data,
            epochs=config.epochs,
            verbose=config.verbose,
            callbacks=[reporter],
        )
    except TrainingStopped:
        # Stopped between batches on request: the model is sound, keep it for the next
        # run. After any other failure it is dropped, whatever state it was left in.
        if key is not None:
            _reuse.release(model, key)
        raise
    if key is not None:
        _reuse.release(model, key)

    # The model does not change after the last epoch, so its validation predictions stand.
    assert reporter.last_probs is not None  # fit ran at least one epoch (epochs >= 1)
    val_labels = data.splits["validation"].labels
    # The threshold comes from validation only; test is then scored at it, once.
    threshold = _threshold(val_labels, reporter.last_probs, data.positive_index, point)
    validation = classification_metrics(
        val_labels,
        reporter.last_probs,
        data.positive_index,
        data.class_names,
        n_boot=n_boot,
        seed=config.seed,
        threshold=threshold,
    )
    test = None
    test_probs = None
    test_split = data.splits.get("test")
    if evaluate_test and test_split is not None and len(test_split) > 0:
        test_probs = _predict(model, test_split.images, config.batch_size)
        test = classification_metrics(
            test_split.labels,
            test_probs,
            data.positive_index,
            data.class_names,
            n_boot=n_boot,
            seed=config.seed,
            threshold=threshold,
        )
    calibration = _calibration(
        val_labels,
        reporter.last_probs,
        test_split.labels if test_probs is not None and test_split is not None else None,
        test_probs,
        data.positive_index,
    )
    set_decision(model, threshold, str(point), calibration["temperature"])
    return TrainResult(
        history=reporter.history,
        validation=validation,
        test=test,
        model=model,
        wall_s=time.perf_counter() - started,
        fit_s=reporter.fit_s,
        config=config,
        backend=backend,
        data_summary=_data_summary(data),
        threshold=threshold,
        calibration=calibration,
        validation_probs=np.asarray(reporter.last_probs),
    )


def save_run(result: TrainResult, out_dir: str | Path) -> None:
    """Write ``out_dir/model.keras`` and ``out_dir/metrics.json`` (strict JSON: no NaN)."""
    import keras

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # Both files are replaced whole: a reader (or a rerun into the same folder) never
    # sees half a model or half a metrics file.
    with replacing(out / "model.keras") as tmp:
        result.model.save(tmp)
    payload = {
        "config": result.config.to_dict(),
        "backend": result.backend,
        "keras_version": keras.__version__,
        "wall_s": result.wall_s,
        "fit_s": result.fit_s,
        "data": result.data_summary,
        "history": result.history,
        "threshold": result.threshold,
        "operating_point": result.config.operating_point,
        "calibration": result.calibration,
        "validation": result.validation,
        "test": result.test,
    }
    write_text(out / "metrics.json", dumps(payload) + "\n")


# ----------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    from covidxr_core.config import PRESETS

    p = argparse.ArgumentParser(
        prog="python -m covidxr_core.train",
        description="Train one configuration of the chest X-ray CNN and save model + metrics.",
    )
    p.add_argument(
        "--data",
        help="data folder DIR/{train,validation,test}/<class>/ "
        "(default: the small synthetic demo set)",
    )
    p.add_argument(
        "--preset",
        default="seed",
        help=f"model preset: {', '.join(PRESETS)} (default: seed, the recipe)",
    )
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--image-size", type=int, help="square side in px (default: the preset's)")
    p.add_argument("--channels", type=int, choices=(1, 3), help="default: the preset's")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, help="initial learning rate (default: the preset's)")
    p.add_argument("--precision", choices=tuple(PRECISIONS), default="fp32")
    p.add_argument(
        "--operating-point",
        default="youden",
        help="decision threshold chosen on validation: youden, sens=T or spec=T (default youden)",
    )
    p.add_argument(
        "--cache-dir", help="decoded-array cache (default: $COVIDXR_CACHE or ~/.cache/covidxr)"
    )
    p.add_argument(
        "--positive-class",
        metavar="NAME",
        help="the class folder that sensitivity and AUC are about (default: the one class "
        "not named 'normal'; needed for 3+ classes or other class names)",
    )
    p.add_argument(
        "--output",
        required=True,
        help="folder for model.keras and metrics.json (checked before training)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a model.keras / metrics.json already in --output (refused otherwise)",
    )
    return p


# What save_run writes into --output; a folder already holding one is refused without
# --overwrite, so an earlier model is never replaced by surprise.
_OUTPUT_FILES = ("model.keras", "metrics.json")


def _fmt(value: Any, digits: int = 3) -> str:
    number = finite(value)
    return "n/a" if number is None else f"{number:.{digits}f}"


def _with_ci(metrics: dict[str, Any], name: str) -> str:
    interval = (metrics.get("ci95") or {}).get(name)
    ci = f" [{_fmt(interval[0])}, {_fmt(interval[1])}]" if interval else ""
    return f"{_fmt(metrics.get(name))}{ci}"


def _rescue(result: TrainResult) -> str | None:
    """Saves a trained model to a new temporary folder; its path, or None if that fails too."""
    import tempfile

    try:
        folder = tempfile.mkdtemp(prefix="covidxr-train-")
        save_run(result, folder)
    except OSError:
        return None
    return folder


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (2 for a usage or data error)."""
    from rich.console import Console
    from rich.markup import escape

    from covidxr_core._backend import configure_backend_quietly

    # soft_wrap: a long line is left to the terminal instead of being cut at 80 columns
    console = Console(highlight=False, soft_wrap=True)
    # An unusable --output is answered at once: the full parser imports the model, and
    # with it TensorFlow (seconds). Only the exact flag names are read here; the check
    # below, after the full parse, catches every spelling.
    early = argparse.ArgumentParser(add_help=False, allow_abbrev=False, exit_on_error=False)
    early.add_argument("--output")
    early.add_argument("--overwrite", action="store_true")
    try:
        given, _ = early.parse_known_args(argv)
    except argparse.ArgumentError:  # e.g. --output without a value: the full parser says so
        given = argparse.Namespace(output=None)
    if given.output is not None:
        try:
            check_output_folder(given.output, would_write=_OUTPUT_FILES, overwrite=given.overwrite)
        except ConfigError as exc:
            console.print(f"[red]error: {escape(str(exc))}[/]", soft_wrap=True)
            return 2
    configure_backend_quietly()  # before the parser imports the model: no oneDNN/CUDA lines
    args = _parser().parse_args(argv)
    try:
        # Before any data or training: a model that cannot be saved is never trained.
        check_output_folder(args.output, would_write=_OUTPUT_FILES, overwrite=args.overwrite)
        from covidxr_core.config import preset

        overrides: dict[str, Any] = {}
        if args.image_size is not None:
            overrides["image_size"] = args.image_size
        if args.channels is not None:
            overrides["channels"] = args.channels
        if args.lr is not None:
            overrides["learning_rate"] = args.lr
        model_config = preset(args.preset, **overrides)
        config = TrainConfig(
            model=model_config,
            epochs=args.epochs,
            batch_size=args.batch_size,
            seed=args.seed,
            precision=args.precision,
            operating_point=args.operating_point,
        )

        from covidxr_core.data import DataConfig, load_dataset

        data_kwargs: dict[str, Any] = {
            "image_size": model_config.image_size,
            "channels": model_config.channels,
        }
        if args.cache_dir is not None:
            data_kwargs["cache_dir"] = args.cache_dir
        if args.positive_class is not None:
            data_kwargs["positive_class"] = args.positive_class
        t0 = time.perf_counter()
        data = load_dataset(args.data, DataConfig(**data_kwargs))
        how = "cache hit" if data.cache_hit else f"{time.perf_counter() - t0:.1f} s"
        console.print(
            f"[bold]data[/] {escape(data.source)}{' (synthetic)' if data.synthetic else ''}: "
            f"{data.image_size} px, {data.channels} channel(s), positive class "
            f"{escape(data.positive_class)!r} ({how})"
        )
        for split, counts in data.counts().items():
            line = ", ".join(f"{escape(c)} {n}" for c, n in counts.items())
            console.print(f"  {split:<10} {sum(counts.values()):>5}  ({line})")
        for note in data.notes:
            console.print(f"  [dim]· {escape(note)}[/]")

        def show_epoch(epoch: int, m: dict[str, float]) -> None:
            console.print(
                f"epoch {epoch}/{config.epochs}  train loss {_fmt(m['train_loss'])} "
                f"acc {_fmt(m['train_accuracy'])} | val loss {_fmt(m['val_loss'])} "
                f"acc {_fmt(m['val_accuracy'])} auc {_fmt(m['val_auc'])} "
                f"sens {_fmt(m['val_sensitivity'])} spec {_fmt(m['val_specificity'])} "
                f"| {m['epoch_s']:.1f} s"
            )

        result = train(config, data, callbacks=[show_epoch])
    except CovidxrError as exc:
        console.print(f"[red]error: {escape(for_cli(str(exc)))}[/]", soft_wrap=True)
        return 2
    try:
        save_run(result, args.output)
    except OSError as exc:  # the disk filled up or the folder changed during training
        rescue = _rescue(result)
        kept = f"the trained model was saved to {rescue} instead" if rescue else "not saved"
        console.print(
            f"[red]error: --output {escape(args.output)}: cannot be written "
            f"({escape(exc.strerror or str(exc))}); {escape(kept)}[/]",
            soft_wrap=True,
        )
        return 2

    shown = "argmax" if result.threshold is None else f"{result.threshold:.4f}"
    console.print(
        f"[bold]final metrics[/] (95% bootstrap CI) at threshold {shown} "
        f"({escape(config.operating_point)}, chosen on validation)"
    )
    for split, metrics in (("validation", result.validation), ("test", result.test)):
        if metrics is None:
            continue
        console.print(
            f"  {split:<10} n={metrics['n']}  loss {_fmt(metrics['loss'])}  "
            f"acc {_fmt(metrics['accuracy'])}  AUC {_with_ci(metrics, 'auc')}  "
            f"sens {_with_ci(metrics, 'sensitivity')}  spec {_with_ci(metrics, 'specificity')}  "
            f"PPV {_with_ci(metrics, 'ppv')}  NPV {_with_ci(metrics, 'npv')}  "
            f"ECE {_with_ci(metrics, 'ece')}"
        )
    console.print(
        f"[green]saved[/] {escape(str(Path(args.output) / 'model.keras'))} and metrics.json "
        f"({result.backend} backend, {result.wall_s:.1f} s total, {result.fit_s:.1f} s fitting)"
    )
    return 0


__all__ = [
    "EPOCH_KEYS",
    "PRECISIONS",
    "EpochCallback",
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "TrainingStopped",
    "main",
    "save_run",
    "train",
]


if __name__ == "__main__":
    sys.exit(main())
