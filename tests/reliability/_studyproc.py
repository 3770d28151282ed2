"""Run `tuning/run.py` as a user would: a separate process, output to a log file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tuning.leaderboard import read_table

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "tuning" / "run.py"


def start(log: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start a study in its own process group and session (its pid names both), so that
    SIGKILL can take all of it and a test can find every process it started."""
    handle = open(log, "w")  # noqa: SIM115 - the child writes it; closed with the process
    return subprocess.Popen(
        [sys.executable, str(RUN), *args],
        stdout=handle, stderr=subprocess.STDOUT, text=True, cwd=REPO,
        start_new_session=True, env={**os.environ, "COLUMNS": "200", **(env or {})},
    )  # fmt: skip


def finish(proc: subprocess.Popen, log: Path, timeout: float) -> tuple[int, str]:
    """Wait for a started study; return its exit status and output."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()
        raise AssertionError(
            f"study still running after {timeout:g}s:\n{log.read_text()[-3000:]}"
        ) from None
    return proc.returncode, log.read_text()


def rows(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "leaderboard.parquet"
    if not path.exists():
        return []
    return read_table(path).to_pylist()


def wait_for(
    what: str, check: Callable[[], Any], proc: subprocess.Popen, log: Path, timeout: float
) -> Any:
    """Poll `check` until it returns something truthy; fail if the study ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if proc.poll() is not None:
            raise AssertionError(f"the study ended before {what}:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    raise AssertionError(f"no {what} within {timeout:g}s:\n{log.read_text()[-3000:]}")


def tune_failures(run_dir: Path) -> dict[str, int]:
    """Failures Ray Tune counted per trial, from its newest experiment state."""
    states = sorted((run_dir / "tune").glob("experiment_state-*.json"))
    if not states:
        return {}
    out = {}
    for trial_json, runtime_json in json.loads(states[-1].read_text())["trial_data"]:
        trial = json.loads(trial_json) if isinstance(trial_json, str) else trial_json
        runtime = json.loads(runtime_json) if isinstance(runtime_json, str) else runtime_json
        out[trial["trial_id"]] = int(runtime.get("num_failures", 0))
    return out
