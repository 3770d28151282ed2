"""covidxr_core stands without Ray: no core module imports it."""

from __future__ import annotations

import subprocess
import sys


def test_no_core_module_imports_ray() -> None:
    code = (
        "import sys, covidxr_core, covidxr_core.model, covidxr_core.train, "
        "covidxr_core.metrics, covidxr_core.augment, covidxr_core.predict, covidxr_core.gradcam; "
        "print('ray' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "False"
