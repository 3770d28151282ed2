"""Faults during the final retrain, on a real three-node Ray cluster on this machine.

The retrain runs each (role, seed) as a Ray task on a worker node (a one-CPU node each; the
head has no CPU, so no seed runs where the driver is). Two faults:

- a worker node dies (its raylet and every process under it killed) while it trains a
  seed: the task runs again on the other node, and the retrain ends with every seed;
- the driver is killed with SIGKILL mid-retrain: `--resume` keeps the seeds that had
  finished (their files untouched) and trains only the others.

A running seed is found the way an operator would find it: a Ray worker process whose title
is ``ray::_job`` (the retrain task's name), below a worker node's raylet.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest

# The same three-node cluster (conftest.py's fixtures) and ways to lose a machine.
from _cluster import alive_workers as _alive_workers
from _cluster import descendants as _descendants
from _cluster import node_down as _node_down
from _figures import observe
from _studyproc import finish, start, wait_for
from ray._private import ray_constants

from tuning.retrain import SEEDS_DIR

pytestmark = pytest.mark.slow

ROLES = 3  # the search trial racing the sensible default, the default and the recipe
SEEDS = 2
STUDY = ("--trials", "2", "--image-size", "64", "--space", "small", "--race", "1",
         "--retrain-seeds", str(SEEDS), "--max-concurrent", "2", "--n-boot", "50")  # fmt: skip
SEED_LINE = re.compile(r"retrain ([\w-]+) seed (\d+) (epoch \d+/\d+|done)")


def _title(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return ""


def _seed_running(workers: list, since: dict[int, float], settle_s: float):
    """A worker node with a ``ray::_job`` process that has run for ``settle_s`` (past its
    imports, into training), or None. ``since`` remembers when each pid was first seen."""
    now = time.monotonic()
    for node in workers:
        raylet = node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid
        for pid in _descendants(raylet):
            if _title(pid).startswith("ray::_job"):
                first = since.setdefault(pid, now)
                if now - first >= settle_s:
                    return node, pid
    return None


def _saved_seeds(run_dir: Path) -> dict[str, int]:
    """Finished seed folders (named role-seedN-hash) -> their run.json's mtime (ns)."""
    out = {}
    for folder in sorted((run_dir / SEEDS_DIR).glob("*-seed*")):
        run_json = folder / "run.json"
        if not folder.name.endswith(".tmp") and run_json.is_file():
            out[folder.name] = run_json.stat().st_mtime_ns
    return out


def _trained(log_text: str) -> set[tuple[str, int]]:
    """(role, seed) pairs that reported an epoch: the seeds this process trained."""
    return {
        (m.group(1), int(m.group(2)))
        for m in SEED_LINE.finditer(log_text)
        if m.group(3).startswith("epoch")
    }


def test_worker_node_lost_during_retrain(cluster, reap, tmp_path: Path) -> None:
    c, workers = cluster
    workers = _alive_workers(c, workers)
    name, log = "retrainkill", tmp_path / "retrainkill.log"
    run_dir = tmp_path / name
    with observe(
        "cluster",
        "worker node killed (raylet and its processes, no graceful shutdown) while it runs a "
        "retrain seed (a Ray task)",
        "the seed runs again on the other node; the retrain ends with every role's seeds and "
        "the study completes",
    ) as obs:
        proc = start(log, "--address", c.address, *STUDY, "--epochs", "2",
                     "--output", str(tmp_path), "--name", name)  # fmt: skip
        reap(proc)
        since: dict[int, float] = {}
        node, pid = wait_for(
            "a retrain seed running on a worker node",
            lambda: _seed_running(workers, since, 3.0),
            proc, log, 400,
        )  # fmt: skip
        saved_at_kill = len(_saved_seeds(run_dir))
        killed_at = time.monotonic()
        doomed = _node_down(c, node)
        code, out = finish(proc, log, 400)
        wall_after = time.monotonic() - killed_at
        saved = _saved_seeds(run_dir)
        done = {(m.group(1), int(m.group(2))) for m in SEED_LINE.finditer(out)
                if m.group(3) == "done"}  # fmt: skip
        best = (run_dir / "best" / "metrics.json").is_file()
        obs.update(
            observed=f"killed node {node.node_id[:8]} while its seed task (pid {pid}) trained, "
            f"with {saved_at_kill}/{ROLES * SEEDS} seeds saved; exit {code}; {len(saved)}/"
            f"{ROLES * SEEDS} seeds saved and {len(done)} reported done, the study ended "
            f"{wall_after:.0f}s after the kill; best/metrics.json written: {best}",
            seeds=len(saved),
            seeds_lost=ROLES * SEEDS - len(saved),
            studies_completed=int(code == 0),
        )
        assert pid in doomed
        assert code == 0, out[-3000:]
        assert "Traceback" not in out, out[-3000:]
        assert len(saved) == ROLES * SEEDS, saved
        assert len(done) == ROLES * SEEDS, out[-3000:]
        assert saved_at_kill < ROLES * SEEDS
        for role in ("best", "baseline", "default"):
            assert (run_dir / role / "metrics.json").is_file(), role
        assert "retrain: all seeds done" in out


def test_driver_killed_during_retrain_then_resume(cluster, reap, tmp_path: Path) -> None:
    c, workers = cluster
    _alive_workers(c, workers)
    name = "retraindrv"
    run_dir, log = tmp_path / name, tmp_path / "first.log"
    args = ["--address", c.address, *STUDY, "--epochs", "1", "--output", str(tmp_path),
            "--name", name]  # fmt: skip
    with observe(
        "cluster",
        "driver killed with SIGKILL during the retrain on the cluster, then --resume",
        "the resumed retrain keeps every seed that had finished (files untouched) and trains "
        "only the missing ones; the study completes",
    ) as obs:
        first = start(log, *args)
        reap(first)
        before = wait_for(
            "a finished retrain seed",
            lambda: (lambda s: s if 0 < len(s) < ROLES * SEEDS else None)(_saved_seeds(run_dir)),
            first, log, 400,
        )  # fmt: skip
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
        before = _saved_seeds(run_dir)  # whatever finished up to the kill itself
        files_before = {
            p.relative_to(run_dir): p.stat().st_mtime_ns
            for name_ in before
            for p in (run_dir / SEEDS_DIR / name_).iterdir()
        }
        assert 0 < len(before) < ROLES * SEEDS, before

        resumed = start(tmp_path / "resumed.log", *args, "--resume")
        reap(resumed)
        code, out = finish(resumed, tmp_path / "resumed.log", 400)
        after = _saved_seeds(run_dir)
        untouched = sum(
            (run_dir / rel).is_file() and (run_dir / rel).stat().st_mtime_ns == at
            for rel, at in files_before.items()
        )
        trained_again = _trained(out)
        kept_note = re.search(r"kept (\d+) finished seed", out)
        obs.update(
            observed=f"killed with {len(before)}/{ROLES * SEEDS} seeds saved; resume exit "
            f"{code}, said {kept_note.group(0) if kept_note else None!r}; trained "
            f"{len(trained_again)} seed(s) again; {untouched}/{len(files_before)} files of the "
            f"kept seeds unchanged; {len(after)}/{ROLES * SEEDS} seeds at the end",
            seeds_kept=len(before),
            seeds_retrained=len(trained_again),
            seeds_lost=ROLES * SEEDS - len(after),
            studies_completed=int(code == 0),
        )
        assert code == 0, out[-3000:]
        assert kept_note and int(kept_note.group(1)) == len(before), out[-3000:]
        assert untouched == len(files_before), "a kept seed's files were rewritten"
        assert all(after[k] == v for k, v in before.items())
        assert len(after) == ROLES * SEEDS, after
        assert len(trained_again) == ROLES * SEEDS - len(before), trained_again
        assert (run_dir / "best" / "metrics.json").is_file()
