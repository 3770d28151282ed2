"""Compiled models kept per process, so trials of one architecture trace their step once.

Tracing (TensorFlow) or compiling (JAX) a model's training and prediction steps costs
seconds on a CPU, several times the training of a small trial. A Ray worker that runs
trial after trial (``reuse_actors``) would pay it every time. What changes a traced step
is its shapes and its constants; everything else a search varies is a variable of the
model or optimizer (`covidxr_core.model`: the learning rate and its schedule, the dropout
rate, the L2 factor; `covidxr_core.augment`: the augmentation ranges). So a worker keeps one compiled model per *program key*, and a new
trial with the same key gets that model with the state of a model built from scratch
copied in: weights, seed-generator states, the knobs and the optimizer's slots, all drawn
from the trial's own seed. The training that follows is the one a fresh model would do.

The key is every field that shapes the program: widths, kernel and pool size, hidden
units, batch norm, image size, channels, classes, optimizer kind, SGD momentum (a Python
constant inside Keras' SGD step), whether the augmentation warps at all and its fill mode
(its ranges are a variable of the layer), the batch size, the precision policy and the
backend.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras

    from covidxr_core.model import ModelConfig

# Knobs: the ModelConfig fields that are variables of the model, not part of the key.
KNOB_FIELDS = ("learning_rate", "lr_schedule", "lr_decay", "dropout", "l2")
# How many compiled models one process keeps (least recently used goes first). Each is a
# few MB of weights for the recipe's CNN, plus its traced functions.
MAX_MODELS = 4

_lock = threading.Lock()
_models: OrderedDict[tuple[Any, ...], keras.Model] = OrderedDict()
_stats = {"hits": 0, "misses": 0}


def program_key(
    config: ModelConfig, batch_size: int, precision: str, backend: str
) -> tuple[Any, ...]:
    """What decides the traced program of one training run; equal keys share a model."""
    fields = dataclasses.asdict(config)
    for name in KNOB_FIELDS:
        fields.pop(name)
    # The augmentation's ranges are a variable of its layer; whether it warps at all and
    # how it fills the border are part of the program.
    augment = config.augment
    fields["augment"] = {
        "warps": augment.enabled and not augment.is_identity,
        "fill_mode": augment.fill_mode,
    }
    if config.optimizer != "sgd":
        fields.pop("momentum")  # read by SGD only
    return (backend, precision, int(batch_size), _freeze(fields))


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def adopt(fresh: keras.Model, key: tuple[Any, ...]) -> keras.Model:
    """The model to train: ``fresh`` itself, or a kept model of ``key`` in ``fresh``'s state.

    ``fresh`` is a model just built (and compiled) from the trial's config and seed; its
    state is what training from scratch would start from. A kept model gets exactly that
    state; its traced train and predict functions stay. The kept model is handed to one
    caller at a time: it leaves the cache until `release` returns it.
    """
    with _lock:
        kept = _models.pop(key, None)
        if kept is None:
            _stats["misses"] += 1
            return fresh
    try:
        _copy_state(fresh, kept)
    except ValueError:
        with _lock:
            _stats["misses"] += 1
        return fresh  # a structure we did not expect: train the fresh model instead
    with _lock:
        _stats["hits"] += 1
    return kept


def release(model: keras.Model, key: tuple[Any, ...]) -> None:
    """Keep ``model`` for the next run of ``key`` (after its run ended, cleanly or stopped)."""
    with _lock:
        _models[key] = model
        _models.move_to_end(key)
        while len(_models) > MAX_MODELS:
            _models.popitem(last=False)


def clear() -> None:
    """Forget every kept model (tests, or a process that wants its memory back)."""
    with _lock:
        _models.clear()
        _stats.update(hits=0, misses=0)


def stats() -> dict[str, int]:
    """Hits and misses of `adopt` in this process, and how many models are kept."""
    with _lock:
        return {**_stats, "kept": len(_models)}


def _copy_state(source: keras.Model, target: keras.Model) -> None:
    """Assign every variable of ``source`` (model and optimizer) to ``target``'s twin."""
    if len(source.variables) != len(target.variables):
        raise ValueError("different variable counts")
    pairs = list(zip(source.variables, target.variables, strict=True))
    # The optimizer's slots exist once it is built; build the fresh one so that its
    # initial slot values (Adagrad's 0.1 accumulators, zero moments) are the ones copied.
    if not source.optimizer.built:
        source.optimizer.build(source.trainable_variables)
    if not target.optimizer.built:
        target.optimizer.build(target.trainable_variables)
    if len(source.optimizer.variables) != len(target.optimizer.variables):
        raise ValueError("different optimizer variable counts")
    pairs += list(zip(source.optimizer.variables, target.optimizer.variables, strict=True))
    for src, dst in pairs:
        if tuple(src.shape) != tuple(dst.shape) or src.dtype != dst.dtype:
            raise ValueError(f"{src.path} and {dst.path} differ in shape or dtype")
    for src, dst in pairs:
        dst.assign(src.value)
    # Python-side settings that mirror a variable, so the kept model describes (and
    # saves) the configuration it now trains.
    from covidxr_core.augment import AffineAugment

    for src_layer, dst_layer in zip(source.layers, target.layers, strict=True):
        if isinstance(src_layer, AffineAugment) and isinstance(dst_layer, AffineAugment):
            dst_layer.config = src_layer.config
    target.stop_training = False


__all__ = ["KNOB_FIELDS", "MAX_MODELS", "adopt", "clear", "program_key", "release", "stats"]
