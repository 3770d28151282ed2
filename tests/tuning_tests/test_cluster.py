"""A study on a real multi-node Ray cluster on this machine: trials land on several nodes."""

from __future__ import annotations

import pytest
from _util import leaderboard_rows, run_cli
from ray.cluster_utils import Cluster

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    # A head and two workers: three raylets, each a node of its own.
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    workers = [c.add_node(num_cpus=1) for _ in range(2)]
    c.wait_for_nodes()
    yield c, workers
    c.shutdown()


def test_trials_spread_over_nodes(cluster, tmp_path):
    c, _ = cluster
    proc = run_cli(
        "--address",
        c.address,
        "--trials",
        "6",
        "--epochs",
        "1",
        "--image-size",
        "64",
        "--space",
        "small",
        "--retrain-seeds",
        "1",
        "--output",
        str(tmp_path),
        "--name",
        "multi",
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = leaderboard_rows(tmp_path / "multi")
    assert len(rows) == 6
    assert all(r["stop_reason"] in ("completed", "early-stopped") for r in rows)
    nodes = {r["node_id"] for r in rows}
    assert len(nodes) >= 2, nodes
    assert (tmp_path / "multi" / "best" / "model.keras").exists()
