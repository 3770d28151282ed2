"""Trials of one architecture in one process reuse the traced step, and train the same.

Each case runs `_reuse_probe.py` in a fresh process: what that process traced before is
then exactly the runs listed. The second run of the same program must trace nothing new
(the backend's own counters) and give the history a fresh process gives.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from covidxr_core._reuse import program_key
from covidxr_core.model import ModelConfig

PROBE = Path(__file__).with_name("_reuse_probe.py")
ARCH = {"widths": [4, 8, 16], "optimizer": "adam"}
FIRST = {"seed": 1, "model": {**ARCH, "learning_rate": 0.01, "dropout": 0.2, "l2": 1e-4, "lr_decay": 0.0}}  # fmt: skip
# Every knob differs from FIRST: learning rate, its decay, dropout, L2, augmentation.
SECOND = {"seed": 2, "model": {**ARCH, "learning_rate": 0.003, "dropout": 0.4, "l2": 1e-3, "lr_decay": 0.5, "augment": {"rotation_deg": 5.0, "zoom": 0.1, "vertical_flip": False}}}  # fmt: skip


def probe(runs: list[dict[str, Any]], backend: str) -> list[dict[str, Any]]:
    env = {**os.environ, "KERAS_BACKEND": backend}
    out = subprocess.run(
        [sys.executable, str(PROBE), json.dumps(runs)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    assert out.returncode == 0 and lines, out.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT ") :])


BACKENDS = [
    "tensorflow",
    pytest.param(
        "jax",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("jax") is None, reason="JAX is not installed"
        ),
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_second_trial_of_a_program_reuses_its_trace_and_trains_as_fresh(backend: str) -> None:
    # The third run repeats the second's seed: TensorFlow is then reseeded in place,
    # keeping the compiled kernels (covidxr_core._backend), and must still train as fresh.
    first, second, again = probe(
        [{**FIRST, "reuse": True}, {**SECOND, "reuse": True}, {**SECOND, "reuse": True}], backend
    )
    (alone,) = probe([{**SECOND, "reuse": False}], backend)

    # The second run trained the kept model: one hit, and no new program traced.
    assert second["reuse"] == {"hits": 1, "misses": 1, "kept": 1}
    assert second["model_id"] == first["model_id"]
    assert first["train_traces"] >= 1 and first["predict_traces"] >= 1
    assert second["train_traces"] == first["train_traces"]
    assert second["predict_traces"] == first["predict_traces"]
    # ... and trained exactly as a fresh process does from the same config and seed.
    assert second["history"] == alone["history"]
    assert second["weights_sum"] == alone["weights_sum"]
    assert first["history"] != second["history"]  # the knobs did change the run
    assert again["reuse"] == {"hits": 2, "misses": 1, "kept": 1}
    assert again["train_traces"] == first["train_traces"]
    assert again["history"] == alone["history"]
    assert again["weights_sum"] == alone["weights_sum"]


def test_program_key_ignores_knobs_and_keeps_shapes() -> None:
    base = ModelConfig(image_size=64, channels=1, widths=(4, 8, 16), optimizer="adam")
    key = program_key(base, 32, "fp32", "tensorflow")
    knobs = dataclasses.replace(base, learning_rate=0.1, lr_decay=0.0, dropout=0.1, l2=0.0)
    assert program_key(knobs, 32, "fp32", "tensorflow") == key
    ranges = dataclasses.replace(base.augment, rotation_deg=3.0, zoom=0.0, vertical_flip=False)
    assert program_key(dataclasses.replace(base, augment=ranges), 32, "fp32", "tensorflow") == key
    # momentum is read by SGD only
    assert program_key(dataclasses.replace(base, momentum=0.5), 32, "fp32", "tensorflow") == key
    shaped = [
        dataclasses.replace(base, widths=(8, 8, 16)),
        dataclasses.replace(base, optimizer="adagrad"),
        dataclasses.replace(base, image_size=96),
        dataclasses.replace(base, batch_norm=not base.batch_norm),
        dataclasses.replace(base, augment=dataclasses.replace(base.augment, enabled=False)),
        dataclasses.replace(base, augment=dataclasses.replace(base.augment, fill_mode="reflect")),
    ]
    for config in shaped:
        assert program_key(config, 32, "fp32", "tensorflow") != key
    assert program_key(base, 16, "fp32", "tensorflow") != key
    assert program_key(base, 32, "bf16", "tensorflow") != key
    sgd = dataclasses.replace(base, optimizer="sgd")
    assert program_key(sgd, 32, "fp32", "tensorflow") != program_key(
        dataclasses.replace(sgd, momentum=0.5), 32, "fp32", "tensorflow"
    )
