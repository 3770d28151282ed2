"""The study-efficiency figure: steady epoch time x epochs over slots, over search wall."""

from __future__ import annotations

import json

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
    assert (found["reused_program"], found["reused_known"]) == (0, 0)  # nobody said
    rows[0].reused_program, rows[1].reused_program = True, False
    found = study_efficiency(rows, search_wall_s=5.0, slots=2)
    assert (found["reused_program"], found["reused_known"]) == (1, 2)


def test_slots_are_what_the_cluster_fits() -> None:
    assert capacity_slots(1.0, 0.0, None, {"cpus": 2, "gpus": 0}) == 2
    assert capacity_slots(1.0, 0.0, 1, {"cpus": 8}) == 1
    assert capacity_slots(2.0, 0.25, None, {"cpus": 16, "gpus": 1}) == 4
    assert capacity_slots(1.0, 0.0, None, None) is None
    assert capacity_slots(1.0, None, None, {"cpus": 16, "gpus": 1}) == 4  # default 0.25 GPU


@pytest.mark.slow
def test_trials_of_one_architecture_on_a_worker_reuse_its_compiled_steps(
    tiny_spec, tmp_path
) -> None:
    """A real study: the worker's second and third trials train the model the first traced.

    One trial at a time, one architecture (only the learning rate and dropout vary), so
    every trial after the first lands on the worker that holds its program. Ray ends each
    trial by exiting its thread from inside the last report; the model must still go
    back to the worker's kept models (`tuning.engines.ray_trial`).
    """
    from tuning import run_study
    from tuning.leaderboard import read_rows

    space = tmp_path / "one_architecture.yaml"
    space.write_text(
        "params:\n"
        "  learning_rate: {type: float, low: 1.0e-3, high: 3.0e-2, log: true}\n"
        "  dropout: {type: float, low: 0.0, high: 0.5}\n"
        "fixed:\n  optimizer: adam\n  base_width: 2\n"
    )
    result = run_study(
        tiny_spec("reuse", trials=3, space=str(space), retrain_seeds=0, max_concurrent=1)
    )
    rows = sorted(read_rows(result.paths["leaderboard"]), key=lambda r: r.started_at)
    assert [r.status for r in rows] == ["TERMINATED"] * 3
    assert len({r.pid for r in rows}) == 1  # one worker ran them all (reuse_actors)
    assert [r.reused_program for r in rows] == [False, True, True]
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["efficiency"]["reused_program"] == 2
    assert summary["efficiency"]["reused_known"] == 3
    report = (result.run_dir / "report.html").read_text()
    assert "2 of 3 trials reused compiled steps" in report
