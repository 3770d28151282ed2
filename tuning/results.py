"""What a study's results look like: small typed records, written to and read from JSON.

The retrain writes `RoleSummary` to ``best/metrics.json`` and ``baseline/metrics.json``;
the comparison writes a `Verdict` to ``comparison.json``; the report reads both back
through the same classes. The files stay plain JSON, so anything else can read them too;
these classes are the one place that knows their shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from covidxr_core.numbers import finite

# The classification numbers every model gets, in the order a table shows them.
HEADLINE = ("auc", "accuracy", "sensitivity", "specificity", "precision", "f1", "loss")


def _interval(value: Any) -> tuple[float, float] | None:
    if not isinstance(value, list | tuple) or len(value) != 2:
        return None
    lo, hi = finite(value[0]), finite(value[1])
    return (lo, hi) if lo is not None and hi is not None else None


@dataclass(frozen=True)
class Metrics:
    """One model's classification metrics on one split (`covidxr_core.metrics` output).

    A value that cannot be computed (AUC with one class, say) is None, and ``undefined``
    says why.
    """

    n: int = 0
    loss: float | None = None
    accuracy: float | None = None
    auc: float | None = None
    sensitivity: float | None = None
    specificity: float | None = None
    precision: float | None = None
    f1: float | None = None
    positive_class: str | None = None
    class_names: tuple[str, ...] = ()  # label order of the confusion matrix
    confusion_matrix: tuple[tuple[int, ...], ...] | None = None  # rows true, columns predicted
    ci95: Mapping[str, tuple[float, float] | None] = field(default_factory=dict)
    undefined: Mapping[str, str] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Metrics | None:
        """The metrics in ``data`` (a ``classification_metrics`` dict); None for None."""
        if not data:
            return None
        matrix = data.get("confusion_matrix")
        return cls(
            n=int(data.get("n") or 0),
            **{name: finite(data.get(name)) for name in HEADLINE},
            positive_class=data.get("positive_class"),
            class_names=tuple(data.get("confusion_labels") or ()),
            confusion_matrix=tuple(tuple(int(v) for v in row) for row in matrix)
            if matrix
            else None,
            ci95={k: _interval(v) for k, v in (data.get("ci95") or {}).items()},
            undefined=dict(data.get("undefined") or {}),
            raw=dict(data),
        )

    def value(self, name: str) -> float | None:
        """A headline metric by name (``auc``, ``sensitivity``...)."""
        if name not in HEADLINE:
            raise KeyError(f"metric must be one of {list(HEADLINE)}, but got {name!r}")
        value: float | None = getattr(self, name)
        return value

    def ci(self, name: str) -> tuple[float, float] | None:
        """The 95% bootstrap interval of ``name``, or None when there is none."""
        return self.ci95.get(name)

    def to_dict(self) -> dict[str, Any]:
        """The dict this was read from (or the same shape, built from the fields)."""
        if self.raw:
            return dict(self.raw)
        return {
            "n": self.n,
            **{name: getattr(self, name) for name in HEADLINE},
            "positive_class": self.positive_class,
            "confusion_labels": list(self.class_names),
            "confusion_matrix": [list(r) for r in self.confusion_matrix]
            if self.confusion_matrix
            else None,
            "ci95": {k: list(v) if v else None for k, v in self.ci95.items()},
            "undefined": dict(self.undefined),
        }


@dataclass(frozen=True)
class MeanStd:
    """A metric over the retrain seeds: mean, sample standard deviation and count."""

    mean: float | None
    std: float | None
    n: int

    @classmethod
    def of(cls, values: list[float]) -> MeanStd:
        import statistics

        if not values:
            return cls(None, None, 0)
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        return cls(statistics.fmean(values), std, len(values))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> MeanStd:
        data = data or {}
        return cls(finite(data.get("mean")), finite(data.get("std")), int(data.get("n") or 0))

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std, "n": self.n}

    def text(self, digits: int = 3) -> str:
        """``0.912 ± 0.020`` over several seeds, ``0.912`` for one, ``–`` for none."""
        if self.mean is None:
            return "–"
        if self.n > 1 and self.std is not None:
            return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}"
        return f"{self.mean:.{digits}f}"


@dataclass(frozen=True)
class RoleSummary:
    """One retrained role (``best`` or ``baseline``): its seeds and the exported model.

    Read from and written to ``ROLE/metrics.json``.
    """

    role: str
    protocol: str
    seeds: tuple[int, ...]
    exported_seed: int | None
    test_mean_std: Mapping[str, MeanStd]
    validation_mean_std: Mapping[str, MeanStd]
    exported_validation: Metrics | None
    exported_test: Metrics | None
    per_seed: tuple[Mapping[str, Any], ...] = ()
    trial_id: str | None = None  # the leaderboard trial retrained (best only)
    params: Mapping[str, Any] = field(default_factory=dict)  # its searched values
    extra: Mapping[str, Any] = field(default_factory=dict)  # budget, image size, preset...

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RoleSummary:
        exported = data.get("exported") or {}
        known = {
            "role", "protocol", "seeds", "exported_seed", "test_mean_std",
            "validation_mean_std", "exported", "per_seed", "trial_id", "params",
        }  # fmt: skip
        seed = data.get("exported_seed")
        return cls(
            role=str(data.get("role") or ""),
            protocol=str(data.get("protocol") or ""),
            seeds=tuple(int(s) for s in data.get("seeds") or ()),
            exported_seed=int(seed) if seed is not None else None,
            test_mean_std={
                k: MeanStd.from_dict(v) for k, v in (data.get("test_mean_std") or {}).items()
            },
            validation_mean_std={
                k: MeanStd.from_dict(v) for k, v in (data.get("validation_mean_std") or {}).items()
            },
            exported_validation=Metrics.from_dict(exported.get("validation")),
            exported_test=Metrics.from_dict(exported.get("test")),
            per_seed=tuple(data.get("per_seed") or ()),
            trial_id=str(data["trial_id"]) if data.get("trial_id") is not None else None,
            params=dict(data.get("params") or {}),
            extra={k: v for k, v in data.items() if k not in known},
        )

    def test_stat(self, name: str) -> MeanStd:
        """Mean ± std over seeds of a test metric (empty when unknown)."""
        return self.test_mean_std.get(name) or MeanStd(None, None, 0)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "role": self.role,
            "protocol": self.protocol,
            "seeds": list(self.seeds),
            "exported_seed": self.exported_seed,
            "test_mean_std": {k: v.to_dict() for k, v in self.test_mean_std.items()},
            "validation_mean_std": {k: v.to_dict() for k, v in self.validation_mean_std.items()},
            "exported": {
                "validation": self.exported_validation.to_dict()
                if self.exported_validation
                else None,
                "test": self.exported_test.to_dict() if self.exported_test else None,
            },
            "per_seed": [dict(p) for p in self.per_seed],
        }
        if self.trial_id is not None:
            out["trial_id"] = self.trial_id
            out["params"] = dict(self.params)
        out.update(self.extra)
        return out


@dataclass(frozen=True)
class Verdict:
    """Did tuning beat the recipe? Written to ``comparison.json``.

    ``beat_recipe`` is True or False only when the paired 95% interval of the test AUC
    difference excludes 0; None otherwise (undecided), with ``text`` saying why.
    """

    text: str
    beat_recipe: bool | None
    tuned_mean: float | None = None
    baseline_mean: float | None = None
    difference_mean: float | None = None
    paired_difference: float | None = None
    paired_ci95: tuple[float, float] | None = None
    metric: str = "test AUC"

    @property
    def kind(self) -> str:
        """``good``, ``bad`` or ``warn``: how a banner shows it."""
        return (
            "good" if self.beat_recipe is True else "bad" if self.beat_recipe is False else "warn"
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verdict:
        beat = data.get("beat_recipe")
        return cls(
            text=str(data.get("verdict") or ""),
            beat_recipe=beat if isinstance(beat, bool) else None,
            tuned_mean=finite(data.get("tuned_mean")),
            baseline_mean=finite(data.get("baseline_mean")),
            difference_mean=finite(data.get("difference_mean")),
            paired_difference=finite(data.get("paired_difference")),
            paired_ci95=_interval(data.get("paired_ci95")),
            metric=str(data.get("metric") or "test AUC"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "tuned_mean": self.tuned_mean,
            "baseline_mean": self.baseline_mean,
            "difference_mean": self.difference_mean,
            "paired_difference": self.paired_difference,
            "paired_ci95": list(self.paired_ci95) if self.paired_ci95 else None,
            "beat_recipe": self.beat_recipe,
            "verdict": self.text,
        }


__all__ = ["HEADLINE", "MeanStd", "Metrics", "RoleSummary", "Verdict"]
