"""The TensorFlow backend starts without importing JAX, and JAX still imports afterwards.

With JAX installed, importing Keras on TensorFlow imports it too, for TFLite's converter
of JAX functions and a shim for Orbax checkpoints, neither used there;
`covidxr_core._backend.configure_backend` keeps it out on the TensorFlow backend (1.6 s
of every trial worker's start on the 2-core machine). Each check runs in a fresh
process, since the backend is chosen once per process.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("jax") is None,
    reason="jax is not installed (pip install -e '.[jax]'): nothing to keep out",
)

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


def _probe(backend: str) -> dict[str, object]:
    env = {**os.environ, "KERAS_BACKEND": backend}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("PROBE "))
    result: dict[str, object] = json.loads(line.removeprefix("PROBE "))
    return result


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
