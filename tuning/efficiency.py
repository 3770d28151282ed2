"""How much of a study's search time was spent training: the figure users feel.

    compute    = sum over trials of (steady epoch time x epochs run), divided by the slots
    efficiency = compute / search wall time
    overhead   = a trial's wall time minus its epochs x steady epoch time

A trial's *steady* epoch time is the median of its epochs after the first, so the first
epoch's tracing or compilation counts as overhead, not as training; a trial that ran one
epoch has no steady time and is left out of both sums. *Slots* are the trials the cluster
could run at once: the smaller of ``--max-concurrent`` and what the CPUs (and GPUs) fit.
An efficiency of 1 means the slots trained all the time; the rest went to start-up,
tracing, validation, reporting and the driver.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from statistics import median
from typing import TYPE_CHECKING, Any

from tuning.leaderboard import TrialRow

if TYPE_CHECKING:
    from tuning.spec import StudySpec


def steady_epoch_s(epoch_s: Iterable[float | None]) -> float | None:
    """The median epoch time after the first epoch; None with fewer than two epochs."""
    values = [float(v) for v in epoch_s if v is not None and math.isfinite(float(v))]
    return median(values[1:]) if len(values) >= 2 else None


def capacity_slots(
    cpus_per_trial: float,
    gpus_per_trial: float | None,
    max_concurrent: int | None,
    hardware: Mapping[str, float] | None,
) -> int | None:
    """Trials the cluster fits at once; None when the cluster's size is unknown.

    ``gpus_per_trial`` None is the study's default: 0.25 where the cluster has GPUs.
    """
    if not hardware or not hardware.get("cpus"):
        return int(max_concurrent) if max_concurrent else None
    if gpus_per_trial is None:
        gpus_per_trial = 0.25 if hardware.get("gpus") else 0.0
    fits = [math.floor(float(hardware["cpus"]) / cpus_per_trial + 1e-9)] if cpus_per_trial else []
    if gpus_per_trial:
        fits.append(math.floor(float(hardware.get("gpus", 0)) / gpus_per_trial + 1e-9))
    if max_concurrent:
        fits.append(int(max_concurrent))
    return max(1, min(fits)) if fits else None


def study_slots(spec: StudySpec, hardware: Mapping[str, float] | None) -> int | None:
    """A study's slots: what the cluster fits with Ray; one with KerasTuner (in the driver)."""
    if spec.engine != "ray":
        return 1
    return capacity_slots(spec.cpus_per_trial, spec.gpus_per_trial, spec.max_concurrent, hardware)


def study_efficiency(
    rows: Iterable[TrialRow], search_wall_s: float | None, slots: int | None
) -> dict[str, Any]:
    """The efficiency block of ``summary.json`` (values None where they cannot be known)."""
    compute = 0.0
    overheads: list[float] = []
    counted = 0
    rows = list(rows)
    for row in rows:
        epochs = [v for v in row.curve("epoch_s") if v is not None]
        steady = steady_epoch_s(epochs)
        if steady is None:
            continue
        counted += 1
        compute += steady * len(epochs)
        if row.wall_s is not None:
            overheads.append(row.wall_s - steady * len(epochs))
    compute_s = compute / slots if slots else None
    efficiency = (
        compute_s / search_wall_s
        if compute_s is not None and search_wall_s and search_wall_s > 0
        else None
    )
    return {
        "study_efficiency": efficiency,
        "compute_s": compute_s,
        "search_wall_s": search_wall_s,
        "slots": slots,
        "overhead_s_per_trial": sum(overheads) / len(overheads) if overheads else None,
        "trials_counted": counted,
        # Trials that trained a model whose steps an earlier trial on the worker traced
        # (covidxr_core._reuse), of the trials that said either way.
        "reused_program": sum(1 for r in rows if r.reused_program),
        "reused_known": sum(1 for r in rows if r.reused_program is not None),
        "rule": "steady epoch time (median after the first) x epochs, over slots, "
        "divided by the search wall time",
    }


__all__ = ["capacity_slots", "steady_epoch_s", "study_efficiency", "study_slots"]
