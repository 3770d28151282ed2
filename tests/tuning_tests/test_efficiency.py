"""The study-efficiency figure: steady epoch time x epochs over slots, over search wall."""

from __future__ import annotations

import pytest

from tuning.efficiency import capacity_slots, steady_epoch_s, study_efficiency
from tuning.leaderboard import TrialRow


def row(epoch_s: list[float], wall_s: float | None) -> TrialRow:
    trial = TrialRow(trial_id=f"t{len(epoch_s)}-{wall_s}", wall_s=wall_s)
    trial.curves["epoch_s"] = list(epoch_s)
    return trial


def test_steady_epoch_is_the_median_after_the_first() -> None:
    assert steady_epoch_s([5.0, 1.0, 3.0, 2.0]) == 2.0
    assert steady_epoch_s([5.0]) is None  # one epoch: tracing cannot be told apart
    assert steady_epoch_s([5.0, None, 1.0]) == 1.0


def test_efficiency_counts_steady_training_over_slots() -> None:
    rows = [row([4.0, 1.0, 1.0], wall_s=6.0), row([3.0, 2.0], wall_s=5.0), row([9.0], 9.0)]
    found = study_efficiency(rows, search_wall_s=5.0, slots=2)
    # compute = (1 x 3 + 2 x 2) / 2 slots = 3.5 s of a 5 s search
    assert found["compute_s"] == pytest.approx(3.5)
    assert found["study_efficiency"] == pytest.approx(0.7)
    # overheads: 6 - 3 and 5 - 4; the one-epoch trial is not counted
    assert found["overhead_s_per_trial"] == pytest.approx(2.0)
    assert found["trials_counted"] == 2
    unknown = study_efficiency(rows, search_wall_s=None, slots=2)
    assert unknown["study_efficiency"] is None


def test_slots_are_what_the_cluster_fits() -> None:
    assert capacity_slots(1.0, 0.0, None, {"cpus": 2, "gpus": 0}) == 2
    assert capacity_slots(1.0, 0.0, 1, {"cpus": 8}) == 1
    assert capacity_slots(2.0, 0.25, None, {"cpus": 16, "gpus": 1}) == 4
    assert capacity_slots(1.0, 0.0, None, None) is None
    assert capacity_slots(1.0, None, None, {"cpus": 16, "gpus": 1}) == 4  # default 0.25 GPU
