"""Nothing of a study outlives it: trial workers follow their raylet, the driver its daemons.

A local Ray instance is a tree: the driver starts the GCS and the raylet, and the raylet
starts the worker processes that train trials and retrain seeds, each worker in a process
group of its own. A stop that reaches only part of the tree used to leave the rest behind:

- SIGTERM or SIGKILL to the driver's whole process group (``kill -- -PGID``, GNU
  ``timeout``, systemd, Slurm's ``scancel``, a container stop) ends the driver, the GCS
  and the raylet, but not the workers, which kept training at full CPU with no one to
  report to;
- with the daemons gone, a driver still alive waited 60 s for the GCS and ended with Ray's
  raw ``Failed to connect to GCS`` line.

`follow_parent` runs in each worker: when the worker's parent (its raylet) is gone, the
process ends within a second, whatever its training loop is doing. `DaemonWatch` runs in
the driver of a local instance: when the GCS or the raylet it started has ended, or has
logged that a SIGTERM reached it too (they then drain for tens of seconds, answering
nothing), it ends what is left of the instance, says so in one line and ends the driver
(status 143 after a SIGTERM, else 1). The state that
``--resume`` needs is written as each trial and each seed ends, so nothing is lost that a
resume could use.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

POLL_S = 0.5
DAEMONS = ("gcs_server", "raylet")  # the local processes a study cannot run without

_followed = False
_lock = threading.Lock()


def follow_parent(poll_s: float = POLL_S) -> None:
    """Ends this process once its parent has ended (started once per process).

    Call it in a Ray worker (a trial, a retrain seed): its parent is the raylet, and a
    worker whose raylet is gone can neither report nor be stopped.
    """
    global _followed
    if not _in_ray_worker():
        return
    with _lock:
        if _followed:
            return
        _followed = True
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(poll_s)
            if os.getppid() != parent:  # re-parented: the raylet is gone
                os._exit(1)

    threading.Thread(target=watch, name="covidxr-follow-parent", daemon=True).start()


def _in_ray_worker() -> bool:
    try:
        import ray

        return bool(ray._private.worker.global_worker.mode == ray.WORKER_MODE)
    except (ImportError, AttributeError):
        return False


class DaemonWatch:
    """Watches the GCS and raylet of the local Ray instance this driver started.

    Args:
        on_lost: Called with a one-line description when a daemon has ended; it should
            not return (it ends the driver).
        signalled: Whether a SIGTERM reached the driver; then a daemon whose log says
            it got one too counts as ended.
        poll_s: How often to look.
    """

    def __init__(
        self,
        on_lost: Callable[[str], None],
        signalled: Callable[[], bool] = lambda: False,
        poll_s: float = POLL_S,
    ):
        self._on_lost = on_lost
        self._signalled = signalled
        self._poll_s = poll_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        """Starts watching; False where this driver did not start the daemons."""
        processes = _local_daemons()
        if not processes:
            return False
        self._thread = threading.Thread(
            target=self._watch, args=(processes,), name="covidxr-daemon-watch", daemon=True
        )
        self._thread.start()
        return True

    def stop(self) -> None:
        """Stops watching (before the driver shuts the daemons down itself)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2 * self._poll_s)
        self._thread = None

    def _watch(self, processes: dict[str, list[object]]) -> None:
        logs = _daemon_logs()
        while not self._stop.wait(self._poll_s):
            gone = sorted(
                name
                for name, procs in processes.items()
                if any(p.poll() is not None for p in procs)  # type: ignore[attr-defined]
            )
            if not gone and self._signalled():
                # SIGTERM to the whole group reaches the daemons too. They drain for tens
                # of seconds before they exit, answering nothing meanwhile, so the
                # driver's orderly stop cannot finish: their own log lines say so at once.
                gone = [name for name, log in logs.items() if _says_sigterm(log)]
            if gone and not self._stop.is_set():
                self._on_lost(" and ".join(gone))
                return


SIGTERM_LINE = b"received SIGTERM"  # what Ray's GCS and raylet log when a SIGTERM arrives


def _daemon_logs() -> dict[str, Path]:
    """The GCS's and raylet's stdout logs of the local instance, by daemon name."""
    node = _local_node()
    if node is None:
        return {}
    folder = Path(node.get_logs_dir_path())
    return {name: folder / f"{name}.out" for name in DAEMONS}


def _local_node() -> Any:
    """The Ray node this process started (`ray._private.node.Node`), else None."""
    try:
        import ray

        return ray._private.worker._global_node
    except (ImportError, AttributeError):
        return None


def _says_sigterm(log: Path, tail: int = 1 << 16) -> bool:
    """Whether the end of a daemon's log says it received SIGTERM."""
    try:
        with open(log, "rb") as handle:
            handle.seek(max(0, handle.seek(0, os.SEEK_END) - tail))
            text = handle.read()
    except OSError:
        return False
    # The daemon's own line, not one about a worker it signalled.
    return any(SIGTERM_LINE in line and b"worker" not in line.lower() for line in text.splitlines())


def _local_daemons() -> dict[str, list[object]]:
    """The driver's own GCS and raylet processes (`subprocess.Popen`), by name."""
    node = _local_node()  # set only where this process started Ray
    if node is None:
        return {}
    out: dict[str, list[object]] = {}
    for name in DAEMONS:
        procs = [info.process for info in node.all_processes.get(name, [])]
        procs = [p for p in procs if p is not None and hasattr(p, "poll")]
        if procs:
            out[name] = procs
    return out


def _kill_local_ray() -> None:
    """SIGKILLs every process of the local Ray instance this driver started (best effort:
    the instance is broken already, and its processes must not outlive the driver)."""
    node = _local_node()
    if node is None:
        return
    processes = [info.process for infos in node.all_processes.values() for info in infos]
    for process in processes:
        try:
            if process is not None and process.poll() is None:
                process.kill()
        except Exception:
            continue


def end_driver(what: str, terminated: bool) -> None:
    """Ends the driver after its Ray daemons ended or were signalled, with one line."""
    _kill_local_ray()  # what is left of the instance (GCS, monitor, log monitor) goes too
    why = (
        f"SIGTERM reached Ray's {what} too (the whole process group was signalled), so the "
        "trials cannot be stopped in order"
        if terminated
        else f"Ray's {what} ended under the study (killed or crashed)"
    )
    sys.stdout.flush()
    print(
        f"stopped: {why}; every finished trial and seed is saved, and the same command "
        "with --resume continues the study",
        file=sys.stderr,
        flush=True,
    )
    os._exit(143 if terminated else 1)


__all__ = ["DaemonWatch", "end_driver", "follow_parent"]
