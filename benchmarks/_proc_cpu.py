"""CPU-seconds of this process and everything it started, by kind of process (Linux /proc).

A sampling thread reads ``/proc/<pid>/stat`` of every descendant twice a second and keeps
each process's last user + system time, so a process that exits between two samples loses
at most half a second of its tail. The driver's own figure is exact (``time.process_time``).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _kind(cmdline: str) -> str:
    # by the executable and the script it runs: a raylet's arguments name the worker script
    words = cmdline.split(" ")
    exe = words[0].rsplit("/", 1)[-1]
    if exe == "raylet":
        return "raylets"
    if exe == "gcs_server":
        return "gcs"
    if cmdline.startswith(("ray::DashboardAgent", "ray::RuntimeEnvAgent")):
        return "other ray services"
    if cmdline.startswith("ray::") or any(w.endswith("default_worker.py") for w in words[1:3]):
        return "workers"
    return "other ray services"


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, user + system CPU seconds), or None once the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK


class TreeCPU:
    """Use as a context manager around the work to attribute."""

    def __init__(self, period_s: float = 0.5) -> None:
        self.period_s = period_s
        self.last: dict[int, tuple[str, float]] = {}
        self.first: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.driver_s = 0.0

    def _sample(self, baseline: bool = False) -> None:
        me = os.getpid()
        parents: dict[int, int] = {}
        cpu: dict[int, float] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                got = _stat(int(entry))
                if got:
                    parents[int(entry)], cpu[int(entry)] = got
        for pid in cpu:
            p, hops = pid, 0
            while p not in (0, 1, me) and hops < 32:
                p, hops = parents.get(p, 0), hops + 1
            if p != me or pid == me:
                continue
            if pid not in self.last:
                try:
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                except OSError:
                    continue
                # counted from its time at the block's start, or from zero if it began inside
                self.first[pid] = cpu[pid] if baseline else 0.0
                self.last[pid] = (_kind(cmd), cpu[pid])
            else:
                self.last[pid] = (self.last[pid][0], cpu[pid])

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            self._sample()

    def __enter__(self) -> TreeCPU:
        self._driver0 = time.process_time()
        self._sample(baseline=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._sample()
        self._stop.set()
        self._thread.join()
        self.driver_s = time.process_time() - self._driver0

    def processes(self, kind: str) -> int:
        """Processes of ``kind`` alive at some sample inside the block."""
        return sum(1 for k, _ in self.last.values() if k == kind)

    def by_kind(self) -> dict[str, float]:
        """CPU-seconds spent inside the block, per kind of process, the driver included."""
        out: dict[str, float] = {"driver": self.driver_s}
        for pid, (kind, cpu) in self.last.items():
            out[kind] = out.get(kind, 0.0) + cpu - self.first.get(pid, 0.0)
        return out
