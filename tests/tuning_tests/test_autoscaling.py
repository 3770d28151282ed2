"""A study on a cluster that starts with no workers and grows, as `cluster.yaml`'s does.

Ray's real autoscaler runs here with Ray's own fake multi-node provider (what
`ray.cluster_utils.AutoscalingCluster` starts): a head with no CPUs for trials, and a
worker type it launches as raylets on this machine on demand. It is started with Ray's
CLI, so the module stops any other Ray of this user first (as that helper does).

Token authentication is off for this cluster, and so for its clients: every client runs
in a subprocess. A client in the test process itself would fix that process's
authentication mode for good (Ray reads it once), and every later test's local Ray,
started with authentication on, would then refuse it ("Failed to start GCS ...
Authentication token is missing"), as CI's full run showed before this module was
changed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from _fresh_python import run_snippet
from _util import REPO, leaderboard_rows, run_cli

pytestmark = pytest.mark.slow

# The cluster's clients: token authentication off on both sides.
CLIENT_ENV = {"RAY_AUTH_MODE": "disabled"}


def _client(address: str, body: str, timeout_s: float = 180) -> dict[str, Any]:
    """Runs ``body`` in a fresh process connected to the cluster; returns its ``result``."""
    script = "import json, time, ray\n"
    script += f"ray.init(address={address!r}, log_to_driver=False)\n"
    script += "result = {}\n" + textwrap.dedent(body)
    script += '\nray.shutdown()\nprint("RESULT " + json.dumps(result))\n'
    return run_snippet(script, CLIENT_ENV, "RESULT", timeout_s=timeout_s, cwd=REPO)


@pytest.fixture(scope="module")
def autoscaling_cluster(tmp_path_factory: pytest.TempPathFactory):
    import ray
    import ray._private.services as services

    if ray.is_initialized():
        ray.shutdown()  # the CLI's stop below would pull it down anyway
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
    env = {
        **os.environ,
        **CLIENT_ENV,
        "RAY_FAKE_CLUSTER": "1",
        "AUTOSCALER_UPDATE_INTERVAL_S": "1",
    }
    subprocess.run([ray_cli, "stop", "--force"], check=True, capture_output=True)
    subprocess.run(
        [ray_cli, "start", "--head", "--port", "6379", "--num-cpus", "0",
         f"--autoscaling-config={path}", "--include-dashboard", "false"],
        check=True, capture_output=True, env=env,
    )  # fmt: skip
    try:
        yield f"{services.get_node_ip_address()}:6379"
    finally:
        subprocess.run([ray_cli, "stop", "--force"], check=False, capture_output=True)


def test_the_autoscaler_is_seen_and_a_cluster_without_workers_is_not_refused(
    autoscaling_cluster: str,
) -> None:
    result = _client(
        autoscaling_cluster,
        """
        from tuning.engines.ray_tune import autoscaler_running, check_fits
        from tuning.errors import StudyError

        # The monitor writes its first report once the head's load reaches it.
        deadline = time.monotonic() + 60
        while not autoscaler_running() and time.monotonic() < deadline:
            time.sleep(0.5)
        result["seen"] = autoscaler_running()
        result["fits_now"] = check_fits(1.0, 0.0, may_grow=True)  # no worker yet: it waits
        try:
            check_fits(1.0, 0.0)  # the same cluster taken as fixed is refused
        except StudyError as exc:
            result["refusal"] = str(exc)
        """,
    )
    assert result["seen"] is True, "Ray's monitor reported no autoscaler within 60 s"
    assert result["fits_now"] is False
    assert "0 CPUs" in result.get("refusal", ""), result


def test_a_study_from_zero_workers_asks_the_autoscaler_then_withdraws(
    autoscaling_cluster: str, tmp_path: Path
) -> None:
    proc = run_cli(
        "--address", autoscaling_cluster, "--trials", "2", "--epochs", "1",
        "--image-size", "64", "--space", "small", "--retrain-seeds", "0",
        "--output", str(tmp_path), "--name", "grow",
        timeout=900, env=CLIENT_ENV,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "asked Ray's autoscaler for room for 2 trial(s) at once" in out, out
    assert "no node can run a trial yet" in out, out
    rows = leaderboard_rows(tmp_path / "grow")
    assert len(rows) == 2
    assert all(r["status"] == "TERMINATED" for r in rows), rows
    after = _client(
        autoscaling_cluster,
        """
        from ray._private import ray_constants
        from ray.experimental.internal_kv import _internal_kv_get

        result["head"] = ray.get_runtime_context().get_node_id()  # a driver on the head
        request = _internal_kv_get(ray_constants.AUTOSCALER_RESOURCE_REQUEST_CHANNEL)
        result["request"] = None if request is None else json.loads(request)
        """,
    )
    assert {r["node_id"] for r in rows}.isdisjoint({after["head"]})  # ran on new workers
    # The request is withdrawn when the search ends, so idle workers can go again.
    assert after["request"] == [], after
