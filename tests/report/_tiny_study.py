"""The one real tiny study the report and predict tests look at.

Each test module asks for it from a module-scoped fixture. A study costs most of a minute
on two cores, so a module that finds the run an earlier module of the same session left
behind reads that one instead of training an identical study again; run alone, each
module trains its own.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import ray

from tuning.spec import StudySpec
from tuning.study import run_study

NAME = "rep"


def tiny_spec(output: Path, name: str = NAME, **overrides: object) -> StudySpec:
    """The smoke-sized study: 3 trials of 2 epochs at 64 px, one retrain seed."""
    defaults: dict[str, object] = dict(
        trials=3, epochs=2, image_size=64, space="small", retrain_seeds=1, n_boot=50,
        output=str(output), name=name, grace_epochs=1,
    )  # fmt: skip
    return StudySpec(**{**defaults, **overrides})  # type: ignore[arg-type]


def tiny_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run folder of the session's tiny study on the synthetic demo data."""
    output = tmp_path_factory.getbasetemp() / "tiny-study"
    run_dir = output / NAME
    if (run_dir / "summary.json").exists():  # written last: the study finished
        return run_dir
    # address="local": a private Ray even when another process ran `ray start` here
    # (plain ray.init() would join that cluster and reject num_cpus).
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        return run_study(tiny_spec(output)).run_dir
    finally:
        ray.shutdown()  # the tests themselves need no Ray: give its CPUs back
