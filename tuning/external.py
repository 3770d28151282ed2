"""External validation: the final models on labelled data from somewhere else.

An external set (``--external NAME=DIR``) is decoded and cached like the main data and is
used for nothing but evaluating the exported models (tuned and baselines) at their own
operating points. A model that did well on its internal test split and much worse on
another source has likely learned something about the source rather than the disease
(on covid-cxr, for instance, every normal image is a child's). So the verdict checks each
set (`source_check`): the tuned model's AUC there must not fall below its internal test
AUC's 95% interval, or the verdict is not green.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tuning.results import Check, Metrics

if TYPE_CHECKING:
    from covidxr_core.data import Dataset
    from tuning.spec import StudySpec


def load_externals(spec: StudySpec, data: Dataset) -> dict[str, Any]:
    """``{NAME: ExternalSet}`` of the study's external sets, decoded once (cached).

    Raises:
        DataError: a folder cannot be used, or has a class the main data lacks.
    """
    if not spec.external:
        return {}
    from covidxr_core.data import DataConfig, load_external

    config = DataConfig(
        image_size=spec.image_size, channels=spec.channels, cache_dir=spec.cache_dir, seed=spec.seed
    )
    return {
        name: load_external(folder, config, tuple(data.class_names))
        for name, folder in spec.external_sets().items()
    }


def evaluate(
    model_path: Path,
    externals: Mapping[str, Any],
    positive_index: int,
    class_names: tuple[str, ...],
    threshold: float | None,
    n_boot: int,
    seed: int,
) -> dict[str, Metrics]:
    """One exported model's metrics on each external set, at its own threshold."""
    if not externals:
        return {}
    from covidxr_core.metrics import classification_metrics
    from covidxr_core.predict import load_classifier

    model, _ = load_classifier(model_path)
    out: dict[str, Metrics] = {}
    for name, ext in externals.items():
        if len(ext.labels) == 0:
            continue
        probs = np.asarray(model.predict(ext.images, batch_size=64, verbose=0), dtype=np.float64)
        metrics = classification_metrics(
            ext.labels, probs, positive_index, class_names, n_boot=n_boot, seed=seed,
            threshold=threshold,
        )  # fmt: skip
        parsed = Metrics.from_dict(metrics)
        if parsed is not None:
            out[name] = parsed
    return out


def source_check(name: str, internal: Metrics | None, metrics: Metrics | None) -> Check:
    """Whether the tuned model holds up on external set ``name``: the verdict's check.

    It fails when the model's AUC there falls below the lower bound of its internal test
    AUC's 95% interval, and then blocks a green verdict (`tuning.verdict.decide` says
    why). Without an AUC there (one class only, say) or an internal interval to hold it
    against, it decides nothing and does not block.
    """
    check = f"external set {name}"
    interval = internal.ci("auc") if internal is not None else None
    if metrics is None or metrics.auc is None:
        why = metrics.undefined.get("auc") if metrics is not None else None
        return Check(
            check,
            None,
            f"the tuned model's AUC on {name} is undefined" + (f" ({why})" if why else ""),
            blocking=False,
        )
    if interval is None:
        return Check(
            check,
            None,
            f"on {name} the tuned model's AUC is {metrics.auc:.3f}; the internal test AUC has "
            "no interval to compare it with",
            blocking=False,
        )
    lo, hi = interval
    if metrics.auc < lo:
        return Check(
            check,
            False,
            f"on {name} the tuned model's AUC is {metrics.auc:.3f}, below the internal test "
            f"AUC's interval [{lo:.3f}, {hi:.3f}]: the model may rely on something "
            "specific to the training source",
        )
    return Check(
        check,
        True,
        f"on {name} the tuned model's AUC is {metrics.auc:.3f}, not below the internal test "
        f"AUC's interval [{lo:.3f}, {hi:.3f}]",
    )


def source_warnings(internal: Metrics | None, external: Mapping[str, Metrics]) -> list[str]:
    """Plain words for every external set whose AUC falls below the internal test AUC's
    95% interval: the details of the failing checks (`source_check`)."""
    checks = (source_check(name, internal, metrics) for name, metrics in external.items())
    return [c.detail for c in checks if c.passed is False]


__all__ = ["evaluate", "load_externals", "source_check", "source_warnings"]
