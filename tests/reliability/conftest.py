"""Fixtures of the reliability suite: the three-node cluster and the reaper of studies."""

from __future__ import annotations

import contextlib
import os
import signal

import pytest
from _cluster import FAST_HEALTH_CHECKS
from ray.cluster_utils import Cluster


@pytest.fixture(scope="module")
def cluster():
    # The head gets no CPU, so every trial runs on a worker node that a test may kill.
    c = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "_system_config": FAST_HEALTH_CHECKS},
    )
    workers = [c.add_node(num_cpus=1) for _ in range(2)]
    c.wait_for_nodes()
    yield c, workers
    c.shutdown()


@pytest.fixture
def reap():
    """Register started studies; any still running when the test ends is killed with it."""
    procs: list = []
    yield procs.append
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
