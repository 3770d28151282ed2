"""Figures the reliability tests produce, one JSON line per fault or bad input tried.

Each test wraps what it does in ``observe(...)`` and fills in what it saw; the row is
appended to ``$COVIDXR_RELIABILITY_OUT`` (default: a file in the temp folder) whether the
test passes or not, so a failing run still says what it observed. ``make_report.py``
turns the file into the table in docs/reliability.md.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Rows of one pytest session share a run id, so a results file that several runs appended
# to can still be rendered run by run (the newest by default).
RUN_ID = os.environ.setdefault(
    "COVIDXR_RELIABILITY_RUN", time.strftime("%Y-%m-%dT%H:%M:%S") + f"-{os.getpid()}"
)


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10,
            cwd=Path(__file__).parent,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


COMMIT = _commit()
COMMAND = "python -m pytest " + " ".join(sys.argv[1:])


def results_path() -> Path:
    """Where rows go: $COVIDXR_RELIABILITY_OUT, else a per-user file in the temp folder."""
    given = os.environ.get("COVIDXR_RELIABILITY_OUT")
    if given:
        return Path(given)
    return Path(tempfile.gettempdir()) / f"covidxr-reliability-{os.getuid()}.jsonl"


def append_row(row: dict[str, Any]) -> None:
    """Append one JSON line; a lock keeps lines whole when test processes run side by side."""
    path = results_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(row, default=str, ensure_ascii=False) + "\n"
    with open(path, "a", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            handle.write(line)
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def observe(area: str, fault: str, expected: str) -> Iterator[dict[str, Any]]:
    """Record one fault: yield a dict for what was observed, append it as a row on exit.

    Args:
        area: the table section, e.g. "cluster", "cache", "fuzz", "untrusted input".
        fault: what was done to the system, in a few words.
        expected: the behaviour the test holds the system to.

    The yielded dict takes ``observed`` (one sentence) and any figures (numbers) by name.
    """
    row: dict[str, Any] = {}
    started = time.monotonic()
    status, error = "passed", None
    try:
        yield row
    except BaseException as exc:
        status = "skipped" if type(exc).__name__ == "Skipped" else "failed"
        error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
        raise
    finally:
        observed = row.pop("observed", "")
        append_row(
            {
                "run": RUN_ID,
                "test": os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0],
                "area": area,
                "fault": fault,
                "expected": expected,
                "observed": observed,
                "status": status,
                "error": error,
                "figures": row,
                "wall_s": round(time.monotonic() - started, 2),
                "load_1min": round(os.getloadavg()[0], 1),
                "cpus": os.cpu_count(),
                "commit": COMMIT,
                "command": COMMAND,
                "covidxr_data": os.environ.get("COVIDXR_DATA"),
                "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
            }
        )
