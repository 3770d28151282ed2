"""A study on a cluster that starts with no workers and grows, as `cluster.yaml`'s does.

Ray's real autoscaler runs here with Ray's own fake multi-node provider (what
`ray.cluster_utils.AutoscalingCluster` starts): a head with no CPUs for trials, and a
worker type it launches as raylets on this machine on demand. It is started with Ray's
CLI, so the module stops any other Ray of this user first (as that helper does).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _util import leaderboard_rows, run_cli

pytestmark = [
    pytest.mark.slow,
    # In the full suite on CI's machine, later tests could no longer start a local Ray
    # after this module ("Failed to start GCS"); until that is understood it runs alone:
    #   COVIDXR_AUTOSCALER_TESTS=1 python -m pytest tests/tuning_tests/test_autoscaling.py
    pytest.mark.skipif(
        os.environ.get("COVIDXR_AUTOSCALER_TESTS") != "1",
        reason="starts and stops Ray with its CLI (ray stop --force); run it alone with "
        "COVIDXR_AUTOSCALER_TESTS=1",
    ),
]


def _wait(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:g} s: {what}")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def autoscaling_cluster(tmp_path_factory: pytest.TempPathFactory):
    import ray
    import ray._private.services as services

    if ray.is_initialized():
        ray.shutdown()
    # Ray's fake provider, loaded as an "external" one: its own defaults file is not in
    # the wheel, and an external provider needs none.
    provider = "ray.autoscaler._private.fake_multi_node.node_provider.FakeMultiNodeProvider"
    config = {
        "cluster_name": "covidxr-fake",
        "max_workers": 2,
        "upscaling_speed": 1.0,
        "idle_timeout_minutes": 1,
        "provider": {"type": "external", "module": provider},
        "auth": {},
        # The fields a launcher config always carries (all empty: nothing to copy or run).
        "file_mounts": {},
        "cluster_synced_files": [],
        "file_mounts_sync_continuously": False,
        "rsync_exclude": [],
        "rsync_filter": [],
        "initialization_commands": [],
        "setup_commands": [],
        "head_setup_commands": [],
        "worker_setup_commands": [],
        "head_start_ray_commands": [],
        "worker_start_ray_commands": [],
        "head_node_type": "head",
        "available_node_types": {
            # Like cluster.yaml's head: the driver, never a trial.
            "head": {"resources": {"CPU": 0}, "node_config": {}, "max_workers": 0},
            "cpu1": {
                "resources": {"CPU": 1},
                "node_config": {},
                "min_workers": 0,
                "max_workers": 2,
            },
        },
    }
    path = tmp_path_factory.mktemp("autoscaler") / "cluster.json"
    path.write_text(json.dumps(config))
    ray_cli = str(Path(sys.executable).parent / "ray")
    # Token authentication off on both sides: this cluster and its clients are this test.
    auth = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    env = {**os.environ, "RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1"}
    subprocess.run([ray_cli, "stop", "--force"], check=True, capture_output=True)
    subprocess.run(
        [ray_cli, "start", "--head", "--port", "6379", "--num-cpus", "0",
         f"--autoscaling-config={path}", "--include-dashboard", "false"],
        check=True, capture_output=True, env=env,
    )  # fmt: skip
    try:
        yield f"{services.get_node_ip_address()}:6379"
    finally:
        if ray.is_initialized():
            ray.shutdown()
        subprocess.run([ray_cli, "stop", "--force"], check=False, capture_output=True)
        if auth is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = auth


def test_the_autoscaler_is_seen_and_a_cluster_without_workers_is_not_refused(
    autoscaling_cluster: str,
) -> None:
    import ray

    from tuning.engines.ray_tune import autoscaler_running, check_fits
    from tuning.errors import StudyError

    ray.init(address=autoscaling_cluster, log_to_driver=False)
    try:
        # The monitor writes its first report once the head's load reaches it.
        _wait(autoscaler_running, 60, "Ray's monitor reports an autoscaler")
        assert check_fits(1.0, 0.0, may_grow=True) is False  # no worker yet: it waits
        with pytest.raises(StudyError, match="0 CPUs"):
            check_fits(1.0, 0.0)  # the same cluster taken as fixed is refused
    finally:
        ray.shutdown()


def test_a_study_from_zero_workers_asks_the_autoscaler_then_withdraws(
    autoscaling_cluster: str, tmp_path: Path
) -> None:
    import ray
    from ray._private import ray_constants
    from ray.experimental.internal_kv import _internal_kv_get

    proc = run_cli(
        "--address", autoscaling_cluster, "--trials", "2", "--epochs", "1",
        "--image-size", "64", "--space", "small", "--retrain-seeds", "0",
        "--output", str(tmp_path), "--name", "grow",
        timeout=900,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "asked Ray's autoscaler for room for 2 trial(s) at once" in out, out
    assert "no node can run a trial yet" in out, out
    rows = leaderboard_rows(tmp_path / "grow")
    assert len(rows) == 2
    assert all(r["status"] == "TERMINATED" for r in rows), rows
    ray.init(address=autoscaling_cluster, log_to_driver=False)
    try:
        head = ray.get_runtime_context().get_node_id()  # this driver sits on the head
        assert {r["node_id"] for r in rows}.isdisjoint({head})  # trials ran on new workers
        # The request is withdrawn when the search ends, so idle workers can go again.
        request = _internal_kv_get(ray_constants.AUTOSCALER_RESOURCE_REQUEST_CHANNEL)
        assert request is not None and json.loads(request) == []
    finally:
        ray.shutdown()
