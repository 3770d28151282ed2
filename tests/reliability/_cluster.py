"""A real three-node Ray cluster on this machine, and how a machine is lost.

Shared by the cluster fault tests (trials, retrain): the fixtures live in conftest.py.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

from ray._private import ray_constants
from ray.cluster_utils import Cluster

# Node death is noticed after period x threshold of missed health checks (default 3 s x 5).
FAST_HEALTH_CHECKS = {
    "health_check_initial_delay_ms": 0,
    "health_check_period_ms": 1000,
    "health_check_failure_threshold": 3,
}


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, from /proc (no psutil here)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def node_down(c: Cluster, node) -> list[int]:
    """The machine goes away: every process under its raylet, then the raylet and the
    node's other daemons, are killed without warning. Returns the worker pids killed.

    Killing only the raylet is not enough: a trial's worker process talks to the driver
    directly and can finish its epochs before it notices its raylet is gone.
    """
    raylet = node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid
    doomed = descendants(raylet)
    for pid in doomed:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    c.remove_node(node, allow_graceful=False)
    return doomed


def alive_workers(c: Cluster, workers: list) -> list:
    """Brings the cluster back to two live workers (a test may have killed one)."""
    alive = [w for w in workers if w in c.worker_nodes]
    while len(alive) < 2:
        alive.append(c.add_node(num_cpus=1))
    c.wait_for_nodes()
    workers[:] = alive
    return alive
