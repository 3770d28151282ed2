"""Runs a Python snippet in a fresh interpreter and reads back the JSON it printed.

For checks that must not share the test process: a Keras backend is chosen once per
process, and so is Ray's authentication mode.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def run_snippet(
    script: str,
    env: dict[str, str],
    tag: str,
    *,
    timeout_s: float = 600,
    cwd: Path | None = None,
) -> dict[str, Any]:
    """Runs ``script`` with ``env`` over this environment; returns the JSON after ``tag``.

    The script must exit 0 and print one line ``TAG {json}``.
    """
    proc = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=cwd,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith(tag + " "))
    result: dict[str, Any] = json.loads(line.removeprefix(tag + " "))
    return result
