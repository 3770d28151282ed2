"""covidxr_core: data loading, the parameterized six-conv CNN and one training run.

The public API, importable from here::

    from covidxr_core import load_dataset, DataConfig, ModelConfig, TrainConfig, train

    data = load_dataset("data/", DataConfig(image_size=128, channels=1))
    result = train(TrainConfig(model=preset("seed", image_size=128, channels=1)), data)

Importing this package is cheap: it imports neither Ray nor TensorFlow nor Keras. Each
name below is resolved on first use (a module-level ``__getattr__``), so the data names
(`load_dataset`, `DataConfig`, `Dataset`, `SplitArrays`) cost NumPy and Pillow only,
while the model and training names (`ModelConfig`, `preset`, `build_model`, `train`...)
import Keras and its backend when first touched.

``covidxr_core.train`` is the training function here, although a submodule of the same
name exists (``python -m covidxr_core.train``, ``from covidxr_core.train import ...``
still work as before): the package keeps the attribute pointing at the function even
after the submodule is imported.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

from covidxr_core.errors import BadImageError, ConfigError, CovidxrError, DataError

if TYPE_CHECKING:
    from covidxr_core._backend import configure_backend
    from covidxr_core.config import ModelConfig, preset
    from covidxr_core.data import DataConfig, Dataset, SplitArrays, load_dataset
    from covidxr_core.model import build_model
    from covidxr_core.train import (
        TrainConfig,
        TrainingDiverged,
        TrainingStopped,
        TrainResult,
        save_run,
        train,
    )

__version__ = "0.1.0"

# public name -> the module that defines it (imported on first access)
_LAZY = {
    "configure_backend": "covidxr_core._backend",
    "DataConfig": "covidxr_core.data",
    "Dataset": "covidxr_core.data",
    "SplitArrays": "covidxr_core.data",
    "load_dataset": "covidxr_core.data",
    "ModelConfig": "covidxr_core.config",
    "build_model": "covidxr_core.model",
    "preset": "covidxr_core.config",
    "TrainConfig": "covidxr_core.train",
    "TrainResult": "covidxr_core.train",
    "TrainingDiverged": "covidxr_core.train",
    "TrainingStopped": "covidxr_core.train",
    "save_run": "covidxr_core.train",
    "train": "covidxr_core.train",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


class _Package(types.ModuleType):
    """This package's module type: ``train`` always names the function.

    Importing the submodule ``covidxr_core.train`` makes the import system set the
    package's ``train`` attribute to that submodule (after it has run, so no code in it
    can prevent it); the property below answers with the function instead, so
    ``from covidxr_core import train`` does not depend on what was imported before.
    """

    @property
    def train(self) -> Any:
        return importlib.import_module("covidxr_core.train").train

    @train.setter
    def train(self, value: Any) -> None:
        # The submodule stays reachable as sys.modules["covidxr_core.train"].
        pass


sys.modules[__name__].__class__ = _Package

__all__ = [
    "BadImageError",
    "ConfigError",
    "CovidxrError",
    "DataConfig",
    "DataError",
    "Dataset",
    "ModelConfig",
    "SplitArrays",
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "TrainingStopped",
    "__version__",
    "build_model",
    "configure_backend",
    "load_dataset",
    "preset",
    "save_run",
    "train",
]
