"""The recipe's six-convolution CNN, with every architecture number taken from a config.

Read top to bottom: the config (one comment per default), the presets, the input layer
that carries the preprocessing settings inside the saved model, the optimizer registry,
then ``build_model``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from covidxr_core._backend import configure_backend

configure_backend()  # quiet logs and GPU memory growth must precede Keras' start-up

import keras  # noqa: E402

from covidxr_core.augment import AffineAugment, AugmentConfig, check_fields  # noqa: E402
from covidxr_core.errors import ConfigError  # noqa: E402


@keras.saving.register_keras_serializable(package="covidxr")
class KnobInverseTimeDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Keras 2's ``decay``: ``lr_t = lr / (1 + decay * t)``, t = updates done so far.

    The same formula as ``InverseTimeDecay(decay_steps=1)``, but ``lr`` and ``decay`` live
    in two variables of the optimizer (`bind`), not in constants of the traced training
    step, so a reused compiled step trains another learning rate by assignment. With
    ``decay = 0`` it is the constant rate, exactly (``lr / 1``).
    """

    def __init__(self, initial_learning_rate: float, decay_rate: float) -> None:
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_rate = float(decay_rate)
        self.lr_var: Any = None
        self.decay_var: Any = None

    def bind(self, optimizer: keras.optimizers.Optimizer) -> None:
        """Create the two variables as the optimizer's own, so every backend tracks them."""
        self.lr_var = optimizer.add_variable(
            (), keras.initializers.Constant(self.initial_learning_rate), name="knob_lr"
        )
        self.decay_var = optimizer.add_variable(
            (), keras.initializers.Constant(self.decay_rate), name="knob_lr_decay"
        )

    def __call__(self, step: Any) -> Any:
        step = keras.ops.cast(step, "float32")
        if self.lr_var is None:
            return self.initial_learning_rate / (1.0 + self.decay_rate * step)
        return self.lr_var / (1.0 + self.decay_var * step)

    def get_config(self) -> dict[str, Any]:
        if self.lr_var is not None:
            return {
                "initial_learning_rate": float(keras.ops.convert_to_numpy(self.lr_var)),
                "decay_rate": float(keras.ops.convert_to_numpy(self.decay_var)),
            }
        return {"initial_learning_rate": self.initial_learning_rate, "decay_rate": self.decay_rate}


def _with_schedule(
    factory: Callable[[KnobInverseTimeDecay, ModelConfig], keras.optimizers.Optimizer],
) -> Callable[[ModelConfig], keras.optimizers.Optimizer]:
    def make(config: ModelConfig) -> keras.optimizers.Optimizer:
        schedule = KnobInverseTimeDecay(config.learning_rate, config.lr_decay)
        optimizer = factory(schedule, config)
        schedule.bind(optimizer)
        return optimizer

    return make


# Optimizer registry: name -> factory(config). The learning-rate schedule above applies to
# every optimizer, so a search can vary `lr_decay` independently of the optimizer.
OPTIMIZERS: dict[str, Callable[[ModelConfig], keras.optimizers.Optimizer]] = {
    # Keras 3's Adagrad defaults (initial accumulator 0.1, epsilon 1e-7) equal Keras 2's.
    "adagrad": _with_schedule(lambda lr, c: keras.optimizers.Adagrad(learning_rate=lr)),
    "adam": _with_schedule(lambda lr, c: keras.optimizers.Adam(learning_rate=lr)),
    # SGD's momentum is a constant of the traced step (covidxr_core._reuse keys on it).
    "sgd": _with_schedule(
        lambda lr, c: keras.optimizers.SGD(learning_rate=lr, momentum=c.momentum)
    ),
}


@dataclass(frozen=True)
class ModelConfig:
    """Architecture, optimizer and preprocessing of one model; defaults are the recipe's."""

    image_size: int = 300  # recipe: 300×300 input
    channels: int = 3  # recipe: RGB (X-rays are grey, so 1 channel loses nothing)
    widths: tuple[int, ...] = (2, 4, 8, 16, 32, 64)  # recipe: six conv blocks, these filters
    kernel_size: int = 3  # recipe: 3×3 convolutions
    # Recipe: an L2 kernel regulariser on each conv, factor not given (DESIGN.md). We pick
    # 0.001, not Keras' bare `L2()` default of 0.01: the recipe's he-normal kernels start
    # with a squared sum of ~250, so 0.01 would add ~2.5 to a ~0.69 cross-entropy, while
    # 0.001 adds ~0.25. A search space may vary it (`l2`).
    l2: float = 1e-3
    batch_norm: bool = True  # recipe: BatchNorm after each conv's ReLU
    pool_size: int = 2  # recipe: 2×2 max pooling after each block
    dropout: float = 0.5  # recipe: Dropout(0.5) before the classifier
    dense_units: int = 0  # recipe: 0, Flatten -> Dropout -> Dense(classes); >0 adds a hidden layer
    num_classes: int = 2  # recipe: corona vs normal, softmax over both
    optimizer: str = "adagrad"  # recipe: Adagrad; see OPTIMIZERS for the others
    learning_rate: float = 1e-3  # recipe: 0.001
    lr_decay: float = 0.9  # recipe: Keras 2 `decay=0.9`, i.e. lr / (1 + 0.9·step); 0 = constant
    momentum: float = 0.9  # used by "sgd" only
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # recipe's 8 augmentations
    class_names: tuple[str, ...] = ("corona", "normal")  # the recipe's class folders, sorted
    positive_class: str = "corona"  # the class sensitivity and AUC are about

    def __post_init__(self) -> None:
        # Configs arrive as dicts from search spaces and JSON; accept lists and a dict here
        # so equality and hashing work on the frozen result.
        object.__setattr__(self, "widths", tuple(self.widths))
        object.__setattr__(self, "class_names", tuple(self.class_names))
        if isinstance(self.augment, Mapping):
            object.__setattr__(self, "augment", AugmentConfig.from_dict(dict(self.augment)))
        self._validate()

    def _validate(self) -> None:
        def fail(name: str, rule: str, value: object) -> None:
            raise ConfigError(f"ModelConfig.{name}: {rule}, but got {value!r}")

        if self.channels not in (1, 3):
            fail("channels", "must be 1 (greyscale) or 3 (RGB)", self.channels)
        if len(self.widths) < 1:
            fail("widths", "needs at least one convolution width (`len(widths) >= 1`)", self.widths)
        if not all(isinstance(w, int) and w >= 1 for w in self.widths):
            fail("widths", "every width must be an integer >= 1", self.widths)
        if self.kernel_size < 1:
            fail("kernel_size", "`kernel_size >= 1` must hold", self.kernel_size)
        if self.pool_size < 1:
            fail("pool_size", "`pool_size >= 1` must hold", self.pool_size)
        smallest = self.pool_size ** len(self.widths)
        if self.image_size < smallest:
            fail(
                "image_size",
                f"must be >= pool_size**len(widths) = {self.pool_size}**{len(self.widths)} "
                f"= {smallest}, otherwise the feature map vanishes after {len(self.widths)} "
                f"poolings (smallest allowed: {smallest})",
                self.image_size,
            )
        if self.l2 < 0:
            fail("l2", "`l2 >= 0` must hold", self.l2)
        if not 0 <= self.dropout < 1:
            fail("dropout", "`0 <= dropout < 1` must hold", self.dropout)
        if self.dense_units < 0:
            fail(
                "dense_units",
                "`dense_units >= 0` must hold (0 = no hidden layer)",
                self.dense_units,
            )
        if self.optimizer not in OPTIMIZERS:
            fail("optimizer", f"must be one of {', '.join(sorted(OPTIMIZERS))}", self.optimizer)
        if not self.learning_rate > 0:
            fail("learning_rate", "`learning_rate > 0` must hold", self.learning_rate)
        if self.lr_decay < 0:
            fail(
                "lr_decay", "`lr_decay >= 0` must hold (0 = constant learning rate)", self.lr_decay
            )
        if not 0 <= self.momentum < 1:
            fail("momentum", "`0 <= momentum < 1` must hold", self.momentum)
        if self.num_classes < 2:
            fail("num_classes", "`num_classes >= 2` must hold", self.num_classes)
        if len(self.class_names) != self.num_classes:
            fail(
                "class_names", f"must name num_classes={self.num_classes} classes", self.class_names
            )
        if self.positive_class not in self.class_names:
            fail(
                "positive_class",
                f"must be one of class_names {list(self.class_names)}",
                self.positive_class,
            )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists on dumping); ``from_dict`` inverts it."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ModelConfig:
        check_fields(cls, values)
        return cls(**values)


# Named starting points. "seed" is the recipe exactly (batch 32 and 10 epochs live in
# TrainConfig); the others change only what their names say.
PRESETS: dict[str, ModelConfig] = {
    "seed": ModelConfig(),
    "seed-gray": ModelConfig(channels=1),  # the data loader's default greyscale decode
    "smoke": ModelConfig(image_size=64, channels=1),  # smallest size the six poolings allow
    # The strong default a competent engineer tries first: Adam at 1e-3 with no decay (the
    # recipe's per-step decay leaves ~1% of its learning rate after 80 steps), filters that
    # grow 16 -> 128, and lighter dropout. docs/clinical.md has the measurement behind it.
    "default": ModelConfig(
        optimizer="adam",
        learning_rate=1e-3,
        lr_decay=0.0,
        widths=(16, 32, 64, 128, 128, 128),
        dropout=0.3,
    ),
}


def preset(name: str, **overrides: Any) -> ModelConfig:
    """A preset with some fields replaced (and the result validated).

    Raises:
        ConfigError: Unknown preset name or field, or an override breaks a rule.
    """
    if name not in PRESETS:
        raise ConfigError(
            f"unknown model preset {name!r}; valid presets are {', '.join(sorted(PRESETS))}"
        )
    values = {**PRESETS[name].to_dict(), **overrides}
    return ModelConfig.from_dict(values)


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
            x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
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
]
