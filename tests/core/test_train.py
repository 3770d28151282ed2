"""One real training run on tiny data: callbacks, determinism, divergence, saving, the CLI."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from covidxr_core import Dataset, SplitArrays
from covidxr_core.errors import ConfigError, DataError
from covidxr_core.model import ModelConfig, model_metadata
from covidxr_core.train import (
    EPOCH_KEYS,
    TrainConfig,
    TrainingDiverged,
    TrainResult,
    main,
    save_run,
    train,
)

from .helpers import make_dataset

TINY = ModelConfig(
    image_size=64,
    channels=1,
    widths=(4, 8, 16),
    optimizer="adam",
    learning_rate=0.01,
    lr_decay=0.0,
)
# On 48 images at this learning rate some seeds collapse to one class within two epochs
# (validation AUC 0.5; seeds 3 and 4 with the seeded tf.data shuffle, seed 4 before it).
# This seed learns; the tests below are about the run's bookkeeping, not about the seed.
CONFIG = TrainConfig(model=TINY, epochs=2, batch_size=16, seed=5)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[int, dict[str, float]]] = []

    def __call__(self, epoch: int, metrics: dict[str, float]) -> None:
        self.calls.append((epoch, metrics))


@pytest.fixture(scope="module")
def data() -> Dataset:
    return make_dataset()


@pytest.fixture(scope="module")
def first_run(data: Dataset) -> tuple[TrainResult, Recorder]:
    recorder = Recorder()
    return train(CONFIG, data, callbacks=[recorder], n_boot=200), recorder


def without_timing(history: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: v for k, v in row.items() if k != "epoch_s"} for row in history]


def test_callbacks_receive_every_epoch(first_run: tuple[TrainResult, Recorder]) -> None:
    result, recorder = first_run
    assert [epoch for epoch, _ in recorder.calls] == [1, 2]
    for _, metrics in recorder.calls:
        assert tuple(metrics) == EPOCH_KEYS
        assert all(isinstance(v, float) for v in metrics.values())
        assert metrics["epoch_s"] > 0 and math.isfinite(metrics["train_loss"])
    assert [row["epoch"] for row in result.history] == [1, 2]
    assert result.history[-1]["val_auc"] == recorder.calls[-1][1]["val_auc"]


def test_result_has_final_metrics_with_intervals(first_run: tuple[TrainResult, Recorder]) -> None:
    result, _ = first_run
    assert result.validation["n"] == 16 and result.test is not None and result.test["n"] == 16
    lo, hi = result.validation["ci95"]["auc"]
    assert lo <= result.validation["auc"] <= hi
    # the final validation metrics are the last epoch's, plus intervals
    assert result.validation["auc"] == pytest.approx(result.history[-1]["val_auc"])
    assert 0 < result.fit_s <= result.wall_s
    assert result.backend == keras.backend.backend()
    # the speckled class is easy: two epochs already rank the validation images
    assert result.validation["auc"] > 0.8


def test_same_seed_same_data_same_results(
    first_run: tuple[TrainResult, Recorder], data: Dataset
) -> None:
    again = train(CONFIG, data, n_boot=200)
    first, _ = first_run
    assert without_timing(again.history) == without_timing(first.history)
    assert again.validation == first.validation and again.test == first.test


def test_exception_in_a_callback_stops_training(data: Dataset) -> None:
    class Prune(Exception):
        pass

    recorder = Recorder()

    def prune(epoch: int, metrics: dict[str, float]) -> None:
        raise Prune(f"stop at {epoch}")

    config = dataclasses.replace(CONFIG, epochs=3)
    with pytest.raises(Prune, match="stop at 1"):
        train(config, data, callbacks=[recorder, prune])
    assert [epoch for epoch, _ in recorder.calls] == [1]


def test_nan_loss_raises_training_diverged(data: Dataset) -> None:
    exploding = dataclasses.replace(TINY, optimizer="sgd", learning_rate=1e12, momentum=0.0)
    recorder = Recorder()
    with pytest.raises(TrainingDiverged) as info:
        train(TrainConfig(model=exploding, epochs=3, batch_size=16), data, callbacks=[recorder])
    assert info.value.epoch == 1 and not math.isfinite(info.value.loss)
    assert "after epoch 1" in str(info.value) and "learning rate" in str(info.value)
    assert recorder.calls == []  # a diverged epoch is not reported as a result


def test_model_takes_class_names_from_the_data(data: Dataset) -> None:
    renamed = dataclasses.replace(data, class_names=("covid", "healthy"), positive_class="healthy")
    result = train(dataclasses.replace(CONFIG, epochs=1), renamed, evaluate_test=False, n_boot=0)
    assert result.config.model.class_names == ("covid", "healthy")
    assert result.config.model.positive_class == "healthy"
    assert model_metadata(result.model)["positive_index"] == 1
    assert result.validation["positive_class"] == "healthy" and result.test is None


def test_bf16_precision_trains_and_restores_the_global_policy(data: Dataset) -> None:
    config = TrainConfig(model=TINY, epochs=1, batch_size=16, precision="bf16")
    result = train(config, data, evaluate_test=False, n_boot=0)
    assert result.model.get_layer("conv1").compute_dtype == "bfloat16"
    assert result.model.get_layer("probs").compute_dtype == "float32"
    assert keras.config.dtype_policy().name == "float32"
    assert math.isfinite(result.history[0]["train_loss"])


def test_data_of_another_size_is_refused(data: Dataset) -> None:
    config = TrainConfig(model=dataclasses.replace(TINY, image_size=128))
    with pytest.raises(ConfigError, match=r"64 px with 1 channel\(s\).*128 px"):
        train(config, data)


def test_empty_validation_split_is_refused(data: Dataset) -> None:
    empty = SplitArrays(np.zeros((0, 64, 64, 1), np.uint8), np.zeros((0,), np.int32), ())
    broken = dataclasses.replace(data, splits={**data.splits, "validation": empty})
    with pytest.raises(DataError, match="validation split"):
        train(CONFIG, broken)


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("epochs", 0, "`epochs >= 1`"),
        ("batch_size", 0, "`batch_size >= 1`"),
        ("precision", "fp16", "fp32, bf16"),
        ("verbose", 3, "0, 1 or 2"),
    ],
)
def test_invalid_train_config(field: str, value: object, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        TrainConfig(model=TINY, **{field: value})  # type: ignore[arg-type]
    assert f"TrainConfig.{field}" in str(info.value) and words in str(info.value)


def test_recipe_training_defaults() -> None:
    config = TrainConfig(model=ModelConfig())
    assert (config.epochs, config.batch_size, config.precision) == (10, 32, "fp32")
    assert TrainConfig(model=TINY.to_dict()).model == TINY  # type: ignore[arg-type]


def strict_load(text: str) -> Any:
    def refuse(token: str) -> None:
        raise AssertionError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def test_save_run_writes_strict_json_and_a_loadable_model(
    first_run: tuple[TrainResult, Recorder], data: Dataset, tmp_path: Path
) -> None:
    result, _ = first_run
    # a NaN in the history (e.g. AUC on a one-class validation split) must become null
    history = [dict(row) for row in result.history]
    history[0]["val_auc"] = float("nan")
    history[0]["val_loss"] = float("inf")
    save_run(dataclasses.replace(result, history=history), tmp_path / "run")

    saved = strict_load((tmp_path / "run" / "metrics.json").read_text())
    assert saved["history"][0]["val_auc"] is None and saved["history"][0]["val_loss"] is None
    assert saved["config"]["model"]["widths"] == [4, 8, 16]
    assert TrainConfig(**saved["config"]) == result.config  # the config round-trips
    assert saved["validation"]["ci95"]["auc"] == result.validation["ci95"]["auc"]
    assert saved["backend"] == keras.backend.backend()
    assert saved["data"]["source"] == "synthetic:tests" and saved["data"]["synthetic"] is True
    assert saved["data"]["notes"] == ["built in tests/core/helpers.py"]
    assert saved["data"]["counts"]["train"] == {"corona": 24, "normal": 24}
    assert saved["wall_s"] > 0 and saved["fit_s"] > 0

    loaded = keras.saving.load_model(tmp_path / "run" / "model.keras", safe_mode=True)
    images = data.splits["test"].images
    np.testing.assert_allclose(
        loaded.predict(images, verbose=0), result.model.predict(images, verbose=0), atol=1e-6
    )


def test_cli_reports_config_errors_in_one_line_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--preset", "resnet", "--output", str(tmp_path / "o")])
    out = capsys.readouterr().out
    assert code == 2
    assert "unknown model preset 'resnet'" in out and "seed" in out
    assert "Traceback" not in out and len(out.strip().splitlines()) == 1
    assert main(["--image-size", "16", "--output", str(tmp_path / "o")]) == 2
    assert "smallest allowed: 64" in capsys.readouterr().out


def test_cli_trains_on_the_real_covid_cxr_data(covid_cxr: Path, tmp_path: Path) -> None:
    try:
        from covidxr_core.data import load_dataset  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"covidxr_core.data.load_dataset is not available: {exc}")
    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "covidxr_core.train",
        "--data",
        str(covid_cxr),
        "--preset",
        "seed",
        "--epochs",
        "1",
        "--image-size",
        "64",
        "--channels",
        "1",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--output",
        str(out),
    ]
    run = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"}
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    assert "epoch 1/1" in run.stdout and "AUC" in run.stdout and "test" in run.stdout
    saved = strict_load((out / "metrics.json").read_text())
    assert saved["data"]["source"] == str(covid_cxr) and saved["data"]["synthetic"] is False
    assert set(saved["data"]["counts"]) == {"train", "validation", "test"}
    assert len(saved["history"]) == 1 and saved["test"]["n"] > 0
    assert saved["config"]["model"]["image_size"] == 64
    loaded = keras.saving.load_model(out / "model.keras", safe_mode=True)
    assert model_metadata(loaded)["channels"] == 1
