"""Backend set-up: JAX's compilation cache is shared between processes; TF loads no JAX.

The second process must load every program it needs from the cache and compile none.
JAX's own counters say which happened (``jax.monitoring`` events, recorded in
``jax/_src/compiler.py`` and ``compilation_cache.py``): ``cache_hits`` when a program was
read from the cache, ``cache_misses`` when it was compiled and written. Each XLA
compilation request also ends with a ``backend_compile_duration`` event naming the
program, so hits and misses are attributed to programs such as ``jit(train_step)``.
Comparing the cache's file names instead could not catch a recompile: a recompiled
program is written under the same name.

And the TensorFlow backend starts without JAX. With JAX installed, importing Keras on
TensorFlow imports it too, for TFLite's converter of JAX functions and a shim for Orbax
checkpoints, neither used there; `configure_backend` keeps it out (1.6 s of every trial
worker's start on the 2-core machine), and ``import jax`` works afterwards.

Each check runs in a fresh process, since the backend is chosen once per process.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
from _fresh_python import run_snippet

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("jax") is None,
        reason="jax is not installed (pip install -e '.[jax]')",
    ),
]

SCRIPT = """
import json
import numpy as np
import jax.monitoring as monitoring
from covidxr_core import Dataset, SplitArrays, TrainConfig, configure_backend, preset, train

assert configure_backend() == "jax"
PREFIX = "/jax/compilation_cache/"
since_last = {"cache_hits": 0, "cache_misses": 0}
totals = {"cache_hits": 0, "cache_misses": 0, "compile_requests_use_cache": 0}
programs = []  # [name, hits, misses] per XLA compilation request, in order


def on_event(event, **_):
    name = event[len(PREFIX):] if event.startswith(PREFIX) else None
    if name in totals:
        totals[name] += 1
    if name in since_last:
        since_last[name] += 1


def on_duration(event, seconds, **kwargs):
    if event == "/jax/core/compile/backend_compile_duration":
        programs.append([kwargs.get("fun_name"), since_last["cache_hits"],
                         since_last["cache_misses"]])
        since_last.update(cache_hits=0, cache_misses=0)


monitoring.register_event_listener(on_event)
monitoring.register_event_duration_secs_listener(on_duration)
rng = np.random.default_rng(0)
def split(n):
    return SplitArrays(rng.integers(0, 255, (n, 64, 64, 1), dtype=np.uint8),
                       (np.arange(n) % 2).astype(np.int32), tuple(map(str, range(n))))
data = Dataset({"train": split(32), "validation": split(16), "test": split(16)},
               ("corona", "normal"), "corona", 64, 1, "test")
model = preset("seed", image_size=64, channels=1, widths=(2, 2, 2, 2, 2, 2))
train(TrainConfig(model=model, epochs=1, batch_size=16), data, evaluate_test=False, n_boot=0)
print("COUNTERS " + json.dumps({**totals, "programs": programs}))
"""


def _run(cache: Path) -> dict[str, Any]:
    return run_snippet(
        SCRIPT, {"KERAS_BACKEND": "jax", "COVIDXR_JAX_CACHE": str(cache)}, "COUNTERS"
    )


def _names(counters: dict[str, Any]) -> list[str]:
    return sorted(name for name, _, _ in counters["programs"])


def test_a_second_process_loads_every_program_and_compiles_none(tmp_path: Path) -> None:
    cache = tmp_path / "jax"
    first = _run(cache)
    names = _names(first)
    assert "jit(train_step)" in names and "jit(predict_step)" in names, names
    # The first process found nothing and compiled (and stored) every program it ran.
    assert first["cache_hits"] == 0
    assert first["cache_misses"] == first["compile_requests_use_cache"] == len(names)

    second = _run(cache)
    assert _names(second) == names  # the same programs were asked for
    compiled = [name for name, _, misses in second["programs"] if misses]
    not_loaded = [name for name, hits, _ in second["programs"] if hits != 1]
    assert second["cache_misses"] == 0 and not compiled, f"recompiled: {compiled}"
    assert not not_loaded, f"not loaded from the cache: {not_loaded}"
    assert second["cache_hits"] == len(names) > 0


PROBE = """
import json, sys
from covidxr_core import configure_backend
name = configure_backend()
loaded_with_backend = "jax" in sys.modules
import keras
layer = keras.layers.Dense(2)
out = layer(keras.ops.ones((1, 3)))
import jax
print("PROBE " + json.dumps({
    "backend": name,
    "jax_loaded_with_backend": loaded_with_backend,
    "jax_imports_later": callable(getattr(jax, "jit", None)),
    "dense_shape": list(out.shape),
}))
"""


def _probe(backend: str) -> dict[str, Any]:
    return run_snippet(PROBE, {"KERAS_BACKEND": backend}, "PROBE")


def test_tensorflow_backend_starts_without_jax_and_jax_still_imports() -> None:
    result = _probe("tensorflow")
    assert result["backend"] == "tensorflow"
    assert result["jax_loaded_with_backend"] is False  # TensorFlow alone would load it
    assert result["jax_imports_later"] is True  # hidden only while the backend loads
    assert result["dense_shape"] == [1, 2]


def test_jax_backend_is_untouched() -> None:
    result = _probe("jax")
    assert result["backend"] == "jax"
    assert result["jax_loaded_with_backend"] is True
    assert result["dense_shape"] == [1, 2]
