"""Helpers for tests that run `tuning/run.py` as a user would: a separate process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tuning.leaderboard import read_table

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "tuning" / "run.py"


def run_cli(
    *args: str, timeout: float = 600, env: dict | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(RUN), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )


def popen_cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(RUN), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
        start_new_session=True,
    )


def leaderboard_rows(run_dir: Path) -> list[dict]:
    path = run_dir / "leaderboard.parquet"
    return read_table(path).to_pylist() if path.exists() else []
