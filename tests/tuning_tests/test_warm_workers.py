"""Trials on a local instance run on the workers Ray starts with it, warmed up.

Ray starts one idle worker per CPU with a local instance. The study's trials used to run
on new worker processes instead, each importing TensorFlow on its first trial: Ray Tune's
trial actors and the job each had a runtime env of their own, and Ray gives an actor only
a worker started for its runtime env (tuning/engines/ray_warmup.py). Here a real study
must run every trial on a worker whose warm-up ticket says it imported the backend.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tests" / "tuning_tests"))
from _fresh_python import run_snippet  # noqa: E402
from _util import leaderboard_rows, run_cli  # noqa: E402

from tuning.engines.ray_warmup import (  # noqa: E402
    DIR_VAR,
    HOOK_VAR,
    SLOTS_VAR,
    SWITCH_VAR,
    warm_slots,
    worker_environment,
)


def test_trials_run_on_the_workers_warmed_up_at_start(covid_cxr: Path, tmp_path: Path) -> None:
    tickets = tmp_path / "tickets"
    tickets.mkdir()
    done = run_cli(
        "--data", str(covid_cxr), "--trials", "3", "--epochs", "1", "--image-size", "64",
        "--space", "small", "--retrain-seeds", "0", "--output", str(tmp_path / "runs"),
        "--name", "warm", timeout=600,
        env={DIR_VAR: str(tickets), "COVIDXR_CACHE": str(tmp_path / "cache")},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    claimed = {}
    for ticket in tickets.glob("slot-*"):
        pid, *outcome = ticket.read_text().split(maxsplit=1)
        claimed[int(pid)] = outcome[0] if outcome else "never finished"
    assert claimed, "no worker ran the warm-up hook"
    assert all(o.startswith("ready") for o in claimed.values()), claimed
    rows = leaderboard_rows(tmp_path / "runs" / "warm")
    assert len(rows) == 3 and all(r["status"] == "TERMINATED" for r in rows), rows
    used = {r["pid"] for r in rows}
    # Fails where Tune's own runtime env sends each trial to a new process.
    assert used <= set(claimed), f"trials ran on {used}, warmed workers were {set(claimed)}"


def test_the_workers_variables_are_the_instances_only_while_it_starts(tmp_path: Path) -> None:
    before = dict(os.environ)
    with worker_environment({"COVIDXR_PROBE": "1"}, 2, str(tmp_path)):
        assert os.environ["COVIDXR_PROBE"] == "1" and os.environ["PL_DISABLE_FORK"] == "1"
        assert os.environ[HOOK_VAR].endswith("ray_warmup.setup")
        assert os.environ[SLOTS_VAR] == "2" and os.environ[DIR_VAR] == str(tmp_path)
    assert dict(os.environ) == before
    with worker_environment({}, 0, ""):
        assert HOOK_VAR not in os.environ  # no warm-up asked: no hook for the workers


def test_warmed_workers_are_the_trials_that_fit_and_none_where_trials_take_gpus(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ray._private.utils import get_num_cpus

    cpus = int(get_num_cpus())  # what a local instance gets (a container's limit)
    assert warm_slots(100, None, 1.0, None) == cpus  # one per CPU, on this GPU-less machine
    assert warm_slots(1, None, 1.0, None) == 1  # never more than the study's trials
    assert warm_slots(100, 1, 1.0, None) == 1  # nor more than run at once
    assert warm_slots(100, None, 1.0, 0.25) == 0  # GPUs are assigned when a trial starts
    monkeypatch.setenv(SWITCH_VAR, "0")
    assert warm_slots(100, None, 1.0, None) == 0


PROBE = """
import json, sys
import ray
from ray import tune
from tuning.engines.ray_tune import callback_tags_without_imports

class Seen(tune.Callback):
    pass

def trainable(config):
    tune.report({"x": 1})

ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)
with callback_tags_without_imports():
    tune.Tuner(trainable, run_config=tune.RunConfig(
        storage_path=TMP, verbose=0, callbacks=[Seen()],
    )).fit()
ray.shutdown()
print("SEEN", json.dumps({"mlflow": "mlflow" in sys.modules,
                          "integration": "ray.air.integrations.mlflow" in sys.modules}))
"""


def test_ray_tunes_callback_telemetry_imports_no_mlflow(tmp_path: Path) -> None:
    pytest.importorskip("mlflow")  # without it there is nothing heavy to keep out
    script = f"TMP = {str(tmp_path)!r}\n" + PROBE
    seen = run_snippet(script, {}, "SEEN", timeout_s=300, cwd=REPO)
    # Fails without callback_tags_without_imports: Ray's tag imports its MLflow callback.
    assert seen == {"mlflow": False, "integration": False}, seen
