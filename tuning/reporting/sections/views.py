"""The test split by DICOM View Position (PA, AP, ...): each model's AUC, sensitivity and
specificity on the images of each view, at its own threshold.

Shown inside the test section when the study's data carried view positions
(``summary.json`` ``data.test_views``, from `covidxr_core.data.Dataset.image_meta`);
nothing otherwise. AP films (bedside, sicker patients) often score differently from PA
ones, which a single test AUC hides.
"""

from __future__ import annotations

import numpy as np
from markupsafe import Markup

from tuning.reporting.html import Html, caption, fmt, heading, join, table
from tuning.reporting.sections.context import Context

NOT_GIVEN = "not given"


def by_view(ctx: Context) -> Markup:
    """The per-view table, or empty Markup when no test image has a view position."""
    facts = ctx.run.data
    views = [v or NOT_GIVEN for v in (facts.test_views if facts is not None else ())]
    if not views or all(v == NOT_GIVEN for v in views):
        return Markup("")
    from covidxr_core.metrics import classification_metrics

    rows: list[list[Html]] = []
    for files in ctx.roles():
        test = files.test
        if files.probs is None or files.labels is None or test is None:
            continue
        if len(files.labels) != len(views) or not test.class_names or not test.positive_class:
            continue
        names = list(test.class_names)
        positive = names.index(test.positive_class)
        for view in sorted(set(views)):
            mask = np.array([v == view for v in views])
            m = classification_metrics(
                files.labels[mask], files.probs[mask], positive, names, n_boot=0,
                threshold=files.threshold,
            )  # fmt: skip
            rows.append(
                [
                    files.label,
                    view,
                    str(int(mask.sum())),
                    str(int((files.labels[mask] == positive).sum())),
                    fmt(m.get("auc")),
                    fmt(m.get("sensitivity")),
                    fmt(m.get("specificity")),
                ]
            )
    if not rows:
        return Markup("")
    headers = ["model", "view", "images", "positive", "AUC", "sensitivity", "specificity"]
    return join(
        [
            heading("Test split by view position"),
            table(headers, rows, numeric=(2, 3, 4, 5, 6), table_id="by-view"),
            caption(
                "DICOM View Position of each test image (other formats: not given); each "
                "model at its own threshold, no intervals (the groups are small). A view "
                "with one class only has no AUC."
            ),
        ]
    )


__all__ = ["by_view"]
