"""Named points in a study where a test can hold the driver, to stop it exactly there.

A test of what survives a killed driver needs the kill to land at a known point, not
wherever a timer happens to find the study. With ``COVIDXR_HOLD=POINT`` (or
``POINT:N``, the N-th pass; default the first) and ``COVIDXR_HOLD_FILE=PATH`` in its
environment, the driver, on reaching ``POINT`` with everything before it saved, writes
its pid to ``PATH`` and waits there until it is killed. Without the variables `reached`
costs one dictionary lookup.

Points, in a study's order:

- ``trial-started``: a trial has started and no result of it has come back;
- ``trial-finished``: a trial has ended and the leaderboard says so;
- ``search-ended``: the search is over and the retrain has not begun;
- ``seed-finished``: a retrain seed has finished and is saved.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

POINTS = ("trial-started", "trial-finished", "search-ended", "seed-finished")
HOLD_VAR = "COVIDXR_HOLD"
FILE_VAR = "COVIDXR_HOLD_FILE"

_passes: dict[str, int] = {}


def reached(point: str) -> None:
    """Counts one pass of ``point``; holds the driver here if the environment asks."""
    assert point in POINTS, point
    _passes[point] = _passes.get(point, 0) + 1
    wanted = os.environ.get(HOLD_VAR)
    if not wanted:
        return
    name, _, nth = wanted.partition(":")
    if name != point or _passes[point] != (int(nth) if nth else 1):
        return
    target = Path(os.environ.get(FILE_VAR) or "covidxr-hold")
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(f"{os.getpid()}\n")
    tmp.replace(target)  # whole, or not there
    while True:  # until the test kills this process
        time.sleep(3600)


__all__ = ["FILE_VAR", "HOLD_VAR", "POINTS", "reached"]
