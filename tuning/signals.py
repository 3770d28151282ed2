"""SIGTERM to the driver: stop the study the way Ctrl+C in a Ray Tune search does.

A cluster scheduler, ``ray job stop``, ``kill`` and ``docker stop`` end a job with SIGTERM.
Python's default ends the process on the spot, and ``ray.init`` installs a handler that
exits with status 1 after killing Ray's processes: either way Ray Tune's experiment state
may be a step behind and trials are cut off mid-write.

With `handling_sigterm` active (``tuning/run.py`` holds it for the whole command):

- during the search, SIGTERM is passed to Ray Tune's own interrupt handler: Tune stops its
  trials, writes its experiment state one last time and ``fit()`` returns; the study then
  raises `Terminated` instead of going on to the retrain;
- anywhere else (decoding, the retrain, the report), SIGTERM raises `Terminated` at once,
  so ``finally`` blocks run: the run folder's lock is released and Ray is shut down.

The command exits with status 143 (128 + SIGTERM), as a process ended by SIGTERM does, and
``--resume`` continues the study.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

EXIT_CODE = 128 + signal.SIGTERM  # 143

_stop = threading.Event()
_active = False
_searching = False


class Terminated(KeyboardInterrupt):
    """The study was stopped by SIGTERM; its state is saved and ``--resume`` continues it.

    A `KeyboardInterrupt`: no ``except Exception`` on the way up swallows it, ``claim``
    keeps the run folder (it removes one only for a `CovidxrError`), and Ray passes it on
    from inside ``ray.wait``/``ray.get``, where its signal check turns any other exception
    into "Exception ignored" and goes on waiting. Ray re-raises it as a plain
    `KeyboardInterrupt`: `stop_requested` tells the two apart.
    """


def stop_requested() -> bool:
    """Whether SIGTERM arrived while `handling_sigterm` was active."""
    return _stop.is_set()


def _handler(signum: int, frame: FrameType | None) -> None:
    _stop.set()
    if _searching:
        tune_handler = signal.getsignal(signal.SIGINT)
        # Inside Tuner.fit() SIGINT is Ray Tune's "stop, save the experiment, return".
        if callable(tune_handler) and tune_handler is not signal.default_int_handler:
            tune_handler(signal.SIGINT, frame)
            return
    raise Terminated()


def _install() -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _handler)


@contextlib.contextmanager
def handling_sigterm() -> Iterator[None]:
    """SIGTERM stops the study gracefully while this is active (main thread only)."""
    global _active
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: Any = signal.getsignal(signal.SIGTERM)
    _stop.clear()
    _active = True
    _install()
    try:
        yield
    finally:
        _active = False
        signal.signal(signal.SIGTERM, previous)


def reinstall() -> None:
    """Takes SIGTERM back after ``ray.init``, which installs its own handler (exit 1)."""
    if _active:
        _install()


@contextlib.contextmanager
def searching() -> Iterator[None]:
    """Marks the engine's search: SIGTERM there goes through Ray Tune's interrupt."""
    global _searching
    _searching = True
    try:
        yield
    finally:
        _searching = False
    if _active and _stop.is_set():
        raise Terminated()


__all__ = [
    "EXIT_CODE",
    "Terminated",
    "handling_sigterm",
    "reinstall",
    "searching",
    "stop_requested",
]
