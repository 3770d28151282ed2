"""covidxr_core stands without Ray, and importing it (or its data API) is light."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("tensorflow", "keras", "ray", "jax")


def _run(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip()


def test_no_core_module_imports_ray() -> None:
    code = (
        "import sys, covidxr_core, covidxr_core.model, covidxr_core.train, "
        "covidxr_core.metrics, covidxr_core.augment, covidxr_core.predict, covidxr_core.gradcam; "
        "print('ray' in sys.modules)"
    )
    assert _run(code) == "False"


def test_the_package_and_its_data_names_import_no_framework() -> None:
    code = (
        "import sys, covidxr_core\n"
        "covidxr_core.DataConfig, covidxr_core.load_dataset, covidxr_core.Dataset\n"
        "covidxr_core.SplitArrays, covidxr_core.DataError\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    assert _run(code) == "[]"


def test_the_public_api_resolves_to_the_defining_modules() -> None:
    code = (
        "import covidxr_core.train as module_first  # the submodule, imported first\n"
        "from covidxr_core import load_dataset, DataConfig, ModelConfig, TrainConfig, train\n"
        "import covidxr_core, sys\n"
        "from covidxr_core.data import load_dataset as data_load\n"
        "from covidxr_core.model import ModelConfig as MC, build_model, preset\n"
        "from covidxr_core.train import TrainConfig as TC, TrainResult, train as train_fn\n"
        "assert load_dataset is data_load and ModelConfig is MC and TrainConfig is TC\n"
        "assert train is train_fn and covidxr_core.train is train_fn, covidxr_core.train\n"
        "assert sys.modules['covidxr_core.train'].TrainConfig is TC\n"
        "assert covidxr_core.build_model is build_model and covidxr_core.preset is preset\n"
        "assert covidxr_core.TrainResult is TrainResult\n"
        "assert covidxr_core.configure_backend.__module__ == 'covidxr_core._backend'\n"
        "for name in covidxr_core.__all__:\n"
        "    getattr(covidxr_core, name)\n"
        "try:\n"
        "    covidxr_core.no_such_name\n"
        "except AttributeError as exc:\n"
        "    print('AttributeError', exc)\n"
    )
    assert _run(code).startswith("AttributeError module 'covidxr_core' has no attribute")


def test_every_public_package_lists_its_names() -> None:
    code = (
        "import importlib\n"
        "for name in ('covidxr_core', 'covidxr_core.data'):\n"
        "    module = importlib.import_module(name)\n"
        "    missing = [n for n in module.__all__ if not hasattr(module, n)]\n"
        "    assert not missing, (name, missing)\n"
        "print('ok')"
    )
    assert _run(code) == "ok"
