"""What can go wrong in a study, by who can fix it.

`StudyError` stops a study before (or instead of) running trials: the user fixes the input
and runs the same command again. `TrialFailed` ends one trial for a reason a retry cannot
change; the study records it and goes on. `ReportError` means a folder cannot be
reported on at all. All derive from `covidxr_core.errors.CovidxrError`, which the CLIs
print as one line without a traceback.
"""

from __future__ import annotations

from covidxr_core.errors import ConfigError, CovidxrError


class StudyError(CovidxrError):
    """A problem that stops the study before (or instead of) running trials."""


class StorageError(StudyError):
    """The results location cannot serve this study."""


class TrialFailed(CovidxrError):
    """A trial failed in a way a retry cannot fix; the message says why."""


class ReportError(CovidxrError):
    """The folder cannot be reported on at all (missing, or no leaderboard yet)."""


__all__ = [
    "ConfigError",
    "CovidxrError",
    "ReportError",
    "StorageError",
    "StudyError",
    "TrialFailed",
]
