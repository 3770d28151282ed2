"""The report's sections, in reading order; each turns the run's facts into one HTML card.

A section whose inputs are missing says which file is absent and why it may be, instead of
failing: a report is most needed exactly when a study went wrong.
"""

from __future__ import annotations

from collections.abc import Callable

from markupsafe import Markup

from tuning.reporting.sections.calibration import calibration
from tuning.reporting.sections.context import Context
from tuning.reporting.sections.external import external
from tuning.reporting.sections.failures import failures
from tuning.reporting.sections.overview import overview
from tuning.reporting.sections.search import curves, leaderboard, parameters, progress, workers
from tuning.reporting.sections.selection import selection
from tuning.reporting.sections.study import study
from tuning.reporting.sections.test import gradcam, test_split

Section = Callable[[Context], Markup]

# (id, table-of-contents label, builder)
SECTIONS: tuple[tuple[str, str, Section], ...] = (
    ("overview", "Overview", overview),
    ("study", "Study", study),
    ("leaderboard", "Leaderboard", leaderboard),
    ("selection", "Selection", selection),
    ("progress", "Progress", progress),
    ("parameters", "Parameters", parameters),
    ("curves", "Learning curves", curves),
    ("workers", "Workers", workers),
    ("test", "Test: tuned vs baselines", test_split),
    ("calibration", "Calibration", calibration),
    ("external", "External validation", external),
    ("gradcam", "Grad-CAM", gradcam),
    ("failed", "Failed trials", failures),
)

__all__ = ["SECTIONS", "Context", "Section"]
