"""The recipe's six-convolution CNN, with every architecture number taken from a config.

The config (one comment per default) and the presets live in `covidxr_core.config`, which
imports no Keras; they are re-exported here. Read top to bottom: the learning-rate
schedule, the optimizer registry, the input layer that carries the preprocessing settings
inside the saved model, the training knobs, then ``build_model``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from covidxr_core._backend import configure_backend

configure_backend()  # quiet logs and GPU memory growth must precede Keras' start-up

import keras  # noqa: E402

from covidxr_core.augment import AffineAugment  # noqa: E402
from covidxr_core.config import PRESETS, ModelConfig, preset  # noqa: E402
from covidxr_core.errors import ConfigError  # noqa: E402


@keras.saving.register_keras_serializable(package="covidxr")
class KnobInverseTimeDecay(keras.optimizers.schedules.LearningRateSchedule):
    """The learning-rate schedules of `covidxr_core.config.LR_SCHEDULES`, as one formula:

        lr_t = lr / (1 + decay * t) * c_t,   c_t = (1 + cos(pi * min(t, T) / T)) / 2 if T > 0
                                                  else 1

    with t the updates done so far. ``decay`` is Keras 2's per-step ``decay`` (the
    recipe's inverse-time schedule; 0 for the others) and ``T`` the cosine schedule's total
    steps (0: no cosine). ``lr``, ``decay`` and ``T`` live in three variables of the
    optimizer (`bind`), not in constants of the traced training step, so a reused compiled
    step trains another schedule by assignment. With ``decay = 0`` and ``T = 0`` it is the
    constant rate, exactly (``lr / 1``). The name is the first schedule's, kept so that
    models saved before the cosine schedule existed still load.
    """

    def __init__(
        self, initial_learning_rate: float, decay_rate: float, cosine_steps: int = 0
    ) -> None:
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_rate = float(decay_rate)
        self.cosine_steps = int(cosine_steps)
        self.lr_var: Any = None
        self.decay_var: Any = None
        self.cosine_var: Any = None

    def bind(self, optimizer: keras.optimizers.Optimizer) -> None:
        """Create the three variables as the optimizer's own, so every backend tracks them."""
        self.lr_var = optimizer.add_variable(
            (), keras.initializers.Constant(self.initial_learning_rate), name="knob_lr"
        )
        self.decay_var = optimizer.add_variable(
            (), keras.initializers.Constant(self.decay_rate), name="knob_lr_decay"
        )
        self.cosine_var = optimizer.add_variable(
            (), keras.initializers.Constant(float(self.cosine_steps)), name="knob_lr_cosine"
        )

    def __call__(self, step: Any) -> Any:
        step = keras.ops.cast(step, "float32")
        if self.lr_var is None:
            lr, decay, total = self.initial_learning_rate, self.decay_rate, self.cosine_steps
        else:
            lr, decay, total = self.lr_var, self.decay_var, self.cosine_var
        total = keras.ops.cast(total, "float32")
        progress = keras.ops.minimum(step, total) / keras.ops.maximum(total, 1.0)
        cosine = keras.ops.where(
            total > 0, 0.5 * (1.0 + keras.ops.cos(3.141592653589793 * progress)), 1.0
        )
        return lr / (1.0 + decay * step) * cosine

    def set_total_steps(self, steps: int) -> None:
        """The cosine schedule's length, known once the data and the budget are."""
        self.cosine_steps = int(steps)
        if self.cosine_var is not None:
            self.cosine_var.assign(float(steps))

    def get_config(self) -> dict[str, Any]:
        if self.lr_var is not None:
            return {
                "initial_learning_rate": float(keras.ops.convert_to_numpy(self.lr_var)),
                "decay_rate": float(keras.ops.convert_to_numpy(self.decay_var)),
                "cosine_steps": int(keras.ops.convert_to_numpy(self.cosine_var)),
            }
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_rate": self.decay_rate,
            "cosine_steps": self.cosine_steps,
        }


def _with_schedule(
    factory: Callable[[KnobInverseTimeDecay, ModelConfig], keras.optimizers.Optimizer],
) -> Callable[[ModelConfig], keras.optimizers.Optimizer]:
    def make(config: ModelConfig) -> keras.optimizers.Optimizer:
        # lr_decay is 0 unless the schedule is inverse_time (ModelConfig sees to it); the
        # cosine's length is set by `set_schedule_length` once the budget is known.
        schedule = KnobInverseTimeDecay(config.learning_rate, config.lr_decay)
        optimizer = factory(schedule, config)
        schedule.bind(optimizer)
        return optimizer

    return make


def set_schedule_length(model: keras.Model, config: ModelConfig, total_steps: int) -> None:
    """Sets the cosine schedule's total steps (0 for the other schedules) on a built model."""
    schedule = getattr(model.optimizer, "_learning_rate", None)
    if isinstance(schedule, KnobInverseTimeDecay):
        schedule.set_total_steps(total_steps if config.lr_schedule == "cosine" else 0)


# Optimizer registry: name -> factory(config). The learning-rate schedule above applies to
# every optimizer, so a search can vary the schedule independently of the optimizer.
OPTIMIZERS: dict[str, Callable[[ModelConfig], keras.optimizers.Optimizer]] = {
    # Keras 3's Adagrad defaults (initial accumulator 0.1, epsilon 1e-7) equal Keras 2's.
    "adagrad": _with_schedule(lambda lr, c: keras.optimizers.Adagrad(learning_rate=lr)),
    "adam": _with_schedule(lambda lr, c: keras.optimizers.Adam(learning_rate=lr)),
    # SGD's momentum is a constant of the traced step (covidxr_core._reuse keys on it).
    "sgd": _with_schedule(
        lambda lr, c: keras.optimizers.SGD(learning_rate=lr, momentum=c.momentum)
    ),
}


@keras.saving.register_keras_serializable(package="covidxr")
class CXRInput(keras.layers.Layer):
    """uint8 pixels -> float32 in [0, 1]; carries the preprocessing settings of the model.

    The settings are constructor arguments, so they are written into the ``.keras`` file
    and come back with ``keras.saving.load_model(path, safe_mode=True)``: whoever loads the
    model knows the image size, channels and class order it expects.
    """

    def __init__(
        self,
        image_size: int,
        channels: int,
        class_names: tuple[str, ...] | list[str],
        positive_class: str,
        threshold: float | None = None,
        operating_point: str | None = None,
        temperature: float | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("dtype", "float32")  # stays float32 under a mixed-precision policy
        super().__init__(**kwargs)
        self.image_size = int(image_size)
        self.channels = int(channels)
        self.class_names = tuple(class_names)
        self.positive_class = str(positive_class)
        # Set by training once chosen on validation; saved with the model.
        self.threshold = None if threshold is None else float(threshold)
        self.operating_point = operating_point
        self.temperature = None if temperature is None else float(temperature)

    def call(self, inputs: Any) -> Any:
        return keras.ops.cast(inputs, "float32") * (1.0 / 255.0)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "image_size": self.image_size,
            "channels": self.channels,
            "class_names": list(self.class_names),
            "positive_class": self.positive_class,
            "threshold": self.threshold,
            "operating_point": self.operating_point,
            "temperature": self.temperature,
        }


@keras.saving.register_keras_serializable(package="covidxr")
class TrainingKnobs(keras.layers.Layer):
    """A pass-through layer that owns the model's L2 factor as a non-trainable variable.

    The conv kernels' `KnobL2` regularizers read it at every step, so changing the factor
    (``knobs.l2.assign(...)``) changes the loss without tracing the training step again.
    Inference ignores it.
    """

    def __init__(self, l2: float = 0.0, **kwargs: Any) -> None:
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.l2 = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(float(l2)),
            trainable=False,
            name="l2",
        )

    def call(self, inputs: Any) -> Any:
        return inputs

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "l2": float(keras.ops.convert_to_numpy(self.l2))}


@keras.saving.register_keras_serializable(package="covidxr")
class KnobL2(keras.regularizers.Regularizer):
    """``factor * sum(w ** 2)``, the factor read from a `TrainingKnobs` variable.

    Saved as its current value; a loaded model (inference only) gets a constant factor.
    """

    def __init__(self, knobs: TrainingKnobs | None = None, factor: float | None = None) -> None:
        self.knobs = knobs
        self.factor = float(factor) if factor is not None else None

    def __call__(self, x: Any) -> Any:
        factor = self.knobs.l2 if self.knobs is not None else (self.factor or 0.0)
        return keras.ops.cast(factor, x.dtype) * keras.ops.sum(keras.ops.square(x))

    def get_config(self) -> dict[str, Any]:
        if self.knobs is not None:
            return {"factor": float(keras.ops.convert_to_numpy(self.knobs.l2))}
        return {"factor": self.factor or 0.0}


@keras.saving.register_keras_serializable(package="covidxr")
class RateDropout(keras.layers.Layer):
    """Inverted dropout whose rate is a non-trainable variable, not a traced constant.

    Same rule as ``keras.layers.Dropout``: in training each unit is kept with probability
    ``1 - rate`` and scaled by ``1 / (1 - rate)``; at inference it is the identity.
    """

    def __init__(self, rate: float = 0.5, seed: int | None = None, **kwargs: Any) -> None:
        # float32 under a mixed policy too: the rate is not rounded to bfloat16, and the
        # classifier after it computes in float32 anyway.
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.rate = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(float(rate)),
            trainable=False,
            name="rate",
            dtype="float32",
        )

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        if not training:
            return inputs
        draws = keras.random.uniform(keras.ops.shape(inputs), seed=self.seed_generator)
        keep = draws >= self.rate
        scale = keras.ops.cast(1.0 / (1.0 - self.rate), inputs.dtype)
        return keras.ops.where(keep, inputs * scale, keras.ops.zeros_like(inputs))

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        rate = float(keras.ops.convert_to_numpy(self.rate))
        return {**super().get_config(), "rate": rate, "seed": self.seed}


def model_metadata(model: keras.Model) -> dict[str, Any]:
    """The preprocessing settings a model built by ``build_model`` carries.

    Returns:
        ``{"image_size", "channels", "class_names", "positive_class", "positive_index",
        "threshold", "operating_point", "temperature"}``; the last three are None for a
        model whose training chose none (three or more classes, or an older model).

    Raises:
        ConfigError: The model has no ``CXRInput`` layer (it was not built here).
    """
    for layer in model.layers:
        if isinstance(layer, CXRInput):
            return {
                "image_size": layer.image_size,
                "channels": layer.channels,
                "class_names": list(layer.class_names),
                "positive_class": layer.positive_class,
                "positive_index": layer.class_names.index(layer.positive_class),
                "threshold": layer.threshold,
                "operating_point": layer.operating_point,
                "temperature": layer.temperature,
            }
    raise ConfigError(f"model {model.name!r} has no CXRInput layer, so it was not built by covidxr")


def load_saved(path: str | os.PathLike[str]) -> keras.Model:
    """A ``.keras`` model built here, loaded in safe mode (no code from the file runs).

    ``compile=False``: inference needs no optimizer state, and skipping it avoids Keras'
    warning about optimizer variables a never-trained model lacks.

    Raises:
        ConfigError: the file cannot be loaded as a Keras model.
    """
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as exc:  # Keras raises many types for a file that is not a model
        raise ConfigError(
            f"model path {path}: cannot be loaded as a Keras model ({type(exc).__name__}: {exc})"
        ) from None


def set_decision(
    model: keras.Model, threshold: float | None, operating_point: str, temperature: float | None
) -> None:
    """Records the operating point chosen on validation in the model's ``CXRInput``, so
    that a saved model carries it to `covidxr_core.predict` and every export."""
    for layer in model.layers:
        if isinstance(layer, CXRInput):
            layer.threshold = threshold
            layer.operating_point = operating_point if threshold is not None else None
            layer.temperature = temperature
            return
    raise ConfigError(f"model {model.name!r} has no CXRInput layer, so it was not built by covidxr")


def make_optimizer(config: ModelConfig) -> keras.optimizers.Optimizer:
    """The optimizer named by ``config.optimizer`` with its learning-rate schedule."""
    return OPTIMIZERS[config.optimizer](config)


def build_model(config: ModelConfig) -> keras.Model:
    """Build and compile the CNN described by ``config``.

    The model takes ``uint8`` images ``(N, H, W, C)``, rescales and (in training only)
    augments them inside the graph, and outputs softmax probabilities ``(N, classes)``.
    It is compiled with the recipe's loss and metric: binary cross-entropy on one-hot
    labels and binary accuracy (reported as ``accuracy``).
    """
    # The L2 factor and the dropout rate are variables, not constants of the traced step:
    # a worker that trains several trials of one architecture reuses the compiled step and
    # only assigns them (covidxr_core._reuse). With l2 = 0 the penalty adds exactly 0.
    knobs = TrainingKnobs(l2=config.l2, name="knobs")
    regularizer = KnobL2(knobs)
    inputs = keras.Input(
        shape=(config.image_size, config.image_size, config.channels), dtype="uint8", name="image"
    )
    x = CXRInput(
        image_size=config.image_size,
        channels=config.channels,
        class_names=config.class_names,
        positive_class=config.positive_class,
        name="cxr_input",
    )(inputs)
    x = knobs(x)
    # The warp runs in float32 whatever the precision policy: TF's transform kernel and
    # bilinear weights are not worth risking in bfloat16.
    x = AffineAugment(config.augment, name="augment", dtype="float32")(x)

    for i, width in enumerate(config.widths, start=1):
        # Recipe order: Conv -> ReLU -> BatchNorm -> MaxPool. "same" padding so only the
        # poolings shrink the map, which is what the minimum image size assumes.
        x = keras.layers.Conv2D(
            width,
            config.kernel_size,
            padding="same",
            activation="relu",
            kernel_initializer="he_normal",
            kernel_regularizer=regularizer,
            name=f"conv{i}",
        )(x)
        if config.batch_norm:
            x = keras.layers.BatchNormalization(momentum=config.bn_momentum, name=f"bn{i}")(x)
        x = keras.layers.MaxPooling2D(config.pool_size, name=f"pool{i}")(x)

    x = keras.layers.Flatten(name="flatten")(x)
    if config.dense_units > 0:
        x = keras.layers.Dense(
            config.dense_units,
            activation="relu",
            kernel_initializer="he_normal",
            kernel_regularizer=regularizer,
            name="hidden",
        )(x)
    x = RateDropout(config.dropout, name="dropout")(x)
    # float32 output: softmax and the loss stay exact under bfloat16 compute.
    outputs = keras.layers.Dense(
        config.num_classes, activation="softmax", dtype="float32", name="probs"
    )(x)

    model = keras.Model(inputs, outputs, name="covidxr_cnn")
    model.compile(
        optimizer=make_optimizer(config),
        loss=keras.losses.BinaryCrossentropy(),
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy")],
    )
    return model


__all__ = [
    "OPTIMIZERS",
    "PRESETS",
    "CXRInput",
    "KnobInverseTimeDecay",
    "KnobL2",
    "ModelConfig",
    "RateDropout",
    "TrainingKnobs",
    "build_model",
    "load_saved",
    "make_optimizer",
    "model_metadata",
    "preset",
    "set_decision",
    "set_schedule_length",
]
