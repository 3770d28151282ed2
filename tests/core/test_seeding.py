"""Seeding a run: at an unchanged seed TensorFlow is reseeded in place, to the same draws.

`keras.utils.set_random_seed` calls `tf.random.set_seed`, which also clears every
compiled function's kernels; a reused model would pay a second to instantiate them
again. `covidxr_core._backend.enable_determinism` skips that at an unchanged seed. What
the run draws next must not change: Python, NumPy, Keras' global generator and
TensorFlow's sequence of op seeds all restart as `keras.utils.set_random_seed` restarts
them. (That the whole training run stays bit for bit the same is
tests/core/test_reuse.py.)
"""

from __future__ import annotations

import random

import keras
import numpy as np
import pytest

from covidxr_core import configure_backend
from covidxr_core._backend import _reseed_tensorflow_in_place, enable_determinism

pytestmark = pytest.mark.skipif(
    configure_backend() != "tensorflow", reason="the in-place reseed is TensorFlow's"
)


def draws() -> tuple[float, ...]:
    from tensorflow.python.eager import context

    op_seeds = [context.internal_operation_seed() for _ in range(3)]
    return (
        random.random(),
        float(np.random.rand()),
        float(keras.random.uniform(())),
        float(keras.random.normal((), seed=None)),
        *op_seeds,
    )


def test_unchanged_seed_reseeds_in_place_to_the_documented_draws() -> None:
    keras.utils.set_random_seed(7)
    documented = draws()

    enable_determinism(7)
    fresh = draws()
    assert _reseed_tensorflow_in_place(7)  # the seed is 7 now: in place
    in_place = draws()
    assert fresh == documented
    assert in_place == documented


def test_a_changed_seed_goes_the_documented_way() -> None:
    keras.utils.set_random_seed(3)
    assert not _reseed_tensorflow_in_place(4)  # nothing done: the seed differs
    enable_determinism(4)
    changed = draws()
    keras.utils.set_random_seed(4)
    assert changed == draws()
    keras.utils.set_random_seed(3)
    assert changed != draws()
