"""A hard time limit for one block of a test, so a hang fails the test instead of CI."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

# A hang, not slowness: a busy 2-core machine decodes a small folder in well under 1 s.
EXAMPLE_LIMIT_S = 30.0


class ExampleHung(Exception):
    """The block ran past its limit."""


@contextlib.contextmanager
def time_limit(seconds: float = EXAMPLE_LIMIT_S) -> Iterator[None]:
    """Interrupt the block with ExampleHung after `seconds` (SIGALRM: main thread only).

    A blocking system call (opening a named pipe, reading a device) is interrupted too:
    the handler runs and its exception propagates instead of the call being retried.
    """

    def expire(signum: int, frame: object) -> None:
        raise ExampleHung(f"still running after {seconds:g}s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
