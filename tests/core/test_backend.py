"""Backend set-up: JAX's persistent compilation cache is shared between processes."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("jax") is None,
        reason="jax is not installed (pip install -e '.[jax]')",
    ),
]

SCRIPT = """
import numpy as np
from covidxr_core._backend import configure_backend
assert configure_backend() == "jax"
from covidxr_core.data._dataset import Dataset, SplitArrays
from covidxr_core.model import preset
from covidxr_core.train import TrainConfig, train
rng = np.random.default_rng(0)
def split(n):
    return SplitArrays(rng.integers(0, 255, (n, 64, 64, 1), dtype=np.uint8),
                       (np.arange(n) % 2).astype(np.int32), tuple(map(str, range(n))))
data = Dataset({"train": split(32), "validation": split(16), "test": split(16)},
               ("corona", "normal"), "corona", 64, 1, "test")
model = preset("seed", image_size=64, channels=1, widths=(2, 2, 2, 2, 2, 2))
train(TrainConfig(model=model, epochs=1, batch_size=16), data, evaluate_test=False, n_boot=0)
"""


def _run(cache: Path) -> None:
    env = {**os.environ, "KERAS_BACKEND": "jax", "COVIDXR_JAX_CACHE": str(cache)}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_a_second_process_reuses_the_compiled_programs(tmp_path):
    cache = tmp_path / "jax"
    _run(cache)
    first = sorted(p.name for p in cache.rglob("*") if p.is_file())
    assert first, "the first run wrote no compiled program"
    _run(cache)
    second = sorted(p.name for p in cache.rglob("*") if p.is_file())
    # Same shapes, same programs: the second process found every one it needed on disk.
    assert second == first
