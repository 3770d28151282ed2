"""Failure classification: does retrying a failed trial make sense?

A trial that fails for a reason that will not change on retry (an invalid configuration,
a diverging loss, running out of memory with the same configuration on the same
hardware) is recorded once and the study moves on. Anything else (a worker or node that
died, a lost connection) may pass on another try, and the engine retries it. Every engine
asks `classify`; nothing else decides.
"""

from __future__ import annotations

from dataclasses import dataclass

from covidxr_core.errors import CovidxrError

# Backends name their out-of-memory errors in many ways: TF's ResourceExhaustedError,
# XLA's "RESOURCE_EXHAUSTED: Out of memory", CUDA's "out of memory".
_OOM_TYPE_WORDS = ("resourceexhausted", "outofmemory")
_OOM_TEXT = ("out of memory", "resource_exhausted", "resource exhausted")


@dataclass(frozen=True)
class Failure:
    """What went wrong with a trial, in one line, and whether to retry it."""

    kind: str  # "config", "diverged", "oom", "timeout" or "transient"
    message: str
    retry: bool


def is_out_of_memory(exc: BaseException) -> bool:
    name = type(exc).__name__.lower()
    text = str(exc).lower()
    return any(w in name for w in _OOM_TYPE_WORDS) or any(w in text for w in _OOM_TEXT)


def classify(exc: BaseException) -> Failure:
    """The `Failure` an exception raised by a trial stands for.

    `covidxr_core` errors (bad configuration, data that cannot be trained on) and
    `TrainingDiverged` are deterministic, as is running out of memory; anything else is
    taken as transient.
    """
    from covidxr_core.train import TrainingDiverged

    line = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, TrainingDiverged):
        return Failure("diverged", line, retry=False)
    if isinstance(exc, CovidxrError):
        return Failure("config", line, retry=False)
    if is_out_of_memory(exc):
        return Failure("oom", f"out of memory: {str(exc)[:500]}", retry=False)
    return Failure("transient", line, retry=True)


def timeout(limit_s: float) -> Failure:
    """The failure of a trial that outlived its time limit (never retried)."""
    return Failure(
        "timeout", f"TrialTimeout: the trial ran longer than its {limit_s:g}s limit", False
    )


# What Ray 2.60 records for a trial it ended because the worker it was given could not be
# reset in time (the previous trial's thread outlived TUNE_FUNCTION_THREAD_TIMEOUT_S).
_REUSE_WORDS = ("reset_config()", "could not re-use actor")


def is_lost_to_reuse(error: str | None) -> bool:
    """Whether a trial's error says it never ran: its reused worker failed to reset.

    Such a trial says nothing about its configuration; the engine runs it again.
    """
    text = (error or "").lower()
    return any(w.lower() in text for w in _REUSE_WORDS)


def error_line(text: str | None) -> str:
    """The line of a traceback that names the exception, without the engine's wrapping.

    The last line whose first word ends like an exception type (``...Error``,
    ``...Exception``, ``...Diverged``, ``...Failed``); else the last line.
    """
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    named = [
        ln
        for ln in lines
        if ln.split(":")[0].endswith(("Error", "Exception", "Diverged", "Failed"))
    ]
    return (named or lines or ["trial failed"])[-1][:2000]


__all__ = [
    "Failure",
    "classify",
    "error_line",
    "is_lost_to_reuse",
    "is_out_of_memory",
    "timeout",
]
