"""How trials are driven, recorded and reported: the study side of covidxr.

    from tuning import StudySpec, run_study, write_report

    result = run_study(StudySpec(trials=20, epochs=5, image_size=96))
    result.best_params, result.leaderboard, result.verdict
    extend_study(result.run_dir.name, trials=40)  # 20 more on the same Optuna study

``python tuning/run.py --help`` is the same thing as a command. Imports are lazy: importing
this package pulls in neither Ray nor TensorFlow until a study runs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tuning.errors import StudyError
    from tuning.reporting import write_report
    from tuning.spec import StudySpec
    from tuning.study import StudyResult, extend_study, run_study

# public name -> the module that defines it
_EXPORTS = {
    "StudySpec": "tuning.spec",
    "StudyError": "tuning.errors",
    "StudyResult": "tuning.study",
    "run_study": "tuning.study",
    "extend_study": "tuning.study",
    "write_report": "tuning.reporting",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'tuning' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = ["StudyError", "StudyResult", "StudySpec", "extend_study", "run_study", "write_report"]
