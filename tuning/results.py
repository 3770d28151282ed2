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
HEADLINE = (
    "auc", "average_precision", "accuracy", "sensitivity", "specificity", "ppv", "npv",
    "precision", "f1", "ece", "brier", "loss",
)  # fmt: skip
# Those that depend on the decision threshold (the others rank or score probabilities).
THRESHOLDED = ("sensitivity", "specificity", "ppv", "npv", "f1", "accuracy")


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
    average_precision: float | None = None
    sensitivity: float | None = None
    specificity: float | None = None
    ppv: float | None = None
    npv: float | None = None
    precision: float | None = None
    f1: float | None = None
    ece: float | None = None
    brier: float | None = None
    threshold: float | None = None  # the operating point; None: argmax
    predicted_positive: int | None = None  # images called positive
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
            threshold=finite(data.get("threshold")),
            predicted_positive=data.get("predicted_positive"),
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
            "threshold": self.threshold,
            "predicted_positive": self.predicted_positive,
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
    threshold: float | None = None  # the exported seed's, chosen on validation
    operating_point: str | None = None
    calibration: Mapping[str, Any] = field(default_factory=dict)  # temperature, ECE before/after
    external: Mapping[str, Metrics] = field(default_factory=dict)  # external set -> metrics
    trial_id: str | None = None  # the leaderboard trial retrained (best only)
    params: Mapping[str, Any] = field(default_factory=dict)  # its searched values
    extra: Mapping[str, Any] = field(default_factory=dict)  # budget, image size, preset...

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RoleSummary:
        exported = data.get("exported") or {}
        known = {
            "role", "protocol", "seeds", "exported_seed", "test_mean_std",
            "validation_mean_std", "exported", "per_seed", "trial_id", "params",
            "threshold", "operating_point", "calibration", "external",
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
            threshold=finite(data.get("threshold")),
            operating_point=data.get("operating_point"),
            calibration=dict(data.get("calibration") or {}),
            external={
                k: m
                for k, v in (data.get("external") or {}).items()
                if (m := Metrics.from_dict(v)) is not None
            },
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
            "threshold": self.threshold,
            "operating_point": self.operating_point,
            "calibration": dict(self.calibration),
            "external": {k: v.to_dict() for k, v in self.external.items()},
        }
        if self.trial_id is not None:
            out["trial_id"] = self.trial_id
            out["params"] = dict(self.params)
        out.update(self.extra)
        return out


@dataclass(frozen=True)
class Versus:
    """The tuned model against one baseline, on the same test images.

    ``beat`` is True or False only when the paired 95% interval of the test-AUC
    difference excludes 0 and has width; None otherwise. A baseline that cannot serve as
    one (``usable`` False: its AUC interval lies below 0.5, or it called every image the
    same class) is named as such, and beating it counts for nothing.
    """

    role: str  # "baseline" (the recipe) or "default" (the sensible default)
    label: str  # how the page names it
    usable: bool
    unusable_reason: str | None
    tuned_mean: float | None
    baseline_mean: float | None
    difference_mean: float | None
    paired_difference: float | None
    paired_ci95: tuple[float, float] | None
    beat: bool | None
    text: str

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Versus:
        beat = data.get("beat")
        return cls(
            role=str(data.get("role") or ""),
            label=str(data.get("label") or data.get("role") or ""),
            usable=bool(data.get("usable", True)),
            unusable_reason=data.get("unusable_reason"),
            tuned_mean=finite(data.get("tuned_mean")),
            baseline_mean=finite(data.get("baseline_mean")),
            difference_mean=finite(data.get("difference_mean")),
            paired_difference=finite(data.get("paired_difference")),
            paired_ci95=_interval(data.get("paired_ci95")),
            beat=beat if isinstance(beat, bool) else None,
            text=str(data.get("text") or ""),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "label": self.label,
            "usable": self.usable,
            "unusable_reason": self.unusable_reason,
            "tuned_mean": self.tuned_mean,
            "baseline_mean": self.baseline_mean,
            "difference_mean": self.difference_mean,
            "paired_difference": self.paired_difference,
            "paired_ci95": list(self.paired_ci95) if self.paired_ci95 else None,
            "beat": self.beat,
            "text": self.text,
        }


@dataclass(frozen=True)
class Check:
    """One condition of a green verdict: passed (True), failed (False) or not decidable.

    ``blocking``: whether the verdict can be green only when this check passed. A check
    that does not block informs the reader and leaves the colour alone: a baseline that
    cannot serve as one (beating it would show nothing), or an external set on which the
    tuned model's AUC cannot be computed.
    """

    name: str
    passed: bool | None
    detail: str
    blocking: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "detail": self.detail,
            "blocking": self.blocking,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Check:
        name, detail = str(data.get("name") or ""), str(data.get("detail") or "")
        passed = data.get("passed")
        passed = passed if isinstance(passed, bool) else None
        blocking = data.get("blocking")
        if not isinstance(blocking, bool):  # a comparison.json from before the field
            blocking = not _legacy_informing(name, passed, detail)
        return cls(name, passed, detail, blocking)


def _legacy_informing(name: str, passed: bool | None, detail: str) -> bool:
    """Whether a check read from a file without ``blocking`` was one that informed only:
    before the field, the verdict recognised an unusable baseline by these words."""
    return name.startswith("beats ") and passed is None and "not a usable" in detail


@dataclass(frozen=True)
class Verdict:
    """What the study concludes about its tuned model. Written to ``comparison.json``.

    ``kind`` is ``good`` (green) only when every check passed; ``bad`` (red) when a check
    failed outright; ``warn`` (amber) when something could not be shown; ``none`` when the
    test split cannot support a verdict at all (``text`` says why).
    """

    text: str
    kind: str = "warn"
    checks: tuple[Check, ...] = ()
    versus: Mapping[str, Versus] = field(default_factory=dict)
    sens_spec_floor: float = 0.5
    test: Mapping[str, Metrics] = field(default_factory=dict)  # role -> exported model on test
    external: Mapping[str, Mapping[str, Metrics]] = field(default_factory=dict)  # set -> role ->
    external_notes: tuple[str, ...] = ()
    leakage: tuple[str, ...] = ()  # train<->test duplicate pairs found

    @property
    def beat_recipe(self) -> bool | None:
        v = self.versus.get("baseline")
        return v.beat if v is not None else None

    @property
    def beat_default(self) -> bool | None:
        v = self.versus.get("default")
        return v.beat if v is not None else None

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.passed is not True]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verdict:
        versus = {k: Versus.from_dict(v) for k, v in (data.get("versus") or {}).items()}
        if not versus and "beat_recipe" in data:  # a comparison.json from before the checks
            beat = data.get("beat_recipe")
            versus["baseline"] = Versus(
                "baseline", "recipe", True, None, finite(data.get("tuned_mean")),
                finite(data.get("baseline_mean")), finite(data.get("difference_mean")),
                finite(data.get("paired_difference")), _interval(data.get("paired_ci95")),
                beat if isinstance(beat, bool) else None, str(data.get("verdict") or ""),
            )  # fmt: skip
        kind = data.get("kind")
        if kind not in ("good", "warn", "bad", "none"):
            beat = versus["baseline"].beat if "baseline" in versus else None
            kind = "good" if beat is True else "bad" if beat is False else "warn"

        def metrics(values: Mapping[str, Any]) -> dict[str, Metrics]:
            return {k: m for k, v in values.items() if (m := Metrics.from_dict(v)) is not None}

        return cls(
            text=str(data.get("verdict") or ""),
            kind=str(kind),
            checks=tuple(Check.from_dict(c) for c in data.get("checks") or ()),
            versus=versus,
            sens_spec_floor=float(data.get("sens_spec_floor", 0.5)),
            test=metrics(data.get("test") or {}),
            external={k: metrics(v) for k, v in (data.get("external") or {}).items()},
            external_notes=tuple(data.get("external_notes") or ()),
            leakage=tuple(data.get("leakage") or ()),
        )

    def to_dict(self) -> dict[str, Any]:
        recipe = self.versus.get("baseline")
        return {
            "verdict": self.text,
            "kind": self.kind,
            "checks": [c.to_dict() for c in self.checks],
            "sens_spec_floor": self.sens_spec_floor,
            "versus": {k: v.to_dict() for k, v in self.versus.items()},
            # The recipe comparison at the top level too, as earlier files had it.
            "beat_recipe": self.beat_recipe,
            "beat_default": self.beat_default,
            "metric": "test AUC",
            "tuned_mean": recipe.tuned_mean if recipe else None,
            "baseline_mean": recipe.baseline_mean if recipe else None,
            "difference_mean": recipe.difference_mean if recipe else None,
            "paired_difference": recipe.paired_difference if recipe else None,
            "paired_ci95": list(recipe.paired_ci95) if recipe and recipe.paired_ci95 else None,
            "test": {k: v.to_dict() for k, v in self.test.items()},
            "external": {
                name: {k: v.to_dict() for k, v in roles.items()}
                for name, roles in self.external.items()
            },
            "external_notes": list(self.external_notes),
            "leakage": list(self.leakage),
        }


STABILITY_RULE = (
    "a model's seeds are flagged when the spread (max - min) of their test AUCs exceeds the "
    "width of the exported model's 95% test-AUC interval"
)


@dataclass(frozen=True)
class SeedSpread:
    """How far one role's retrain seeds disagree on test AUC; see `seed_spread`."""

    aucs: tuple[tuple[int | None, float], ...]  # (seed, test AUC), in retrain order
    spread: float | None  # max - min of those AUCs; None with fewer than two
    interval: tuple[float, float] | None  # the exported model's test-AUC 95% interval
    unstable: bool | None  # None: fewer than two seeds with an AUC, or no interval
    text: str  # what the flag (or its absence) says, the rule's numbers included

    @property
    def width(self) -> float | None:
        return self.interval[1] - self.interval[0] if self.interval is not None else None


def seed_spread(summary: RoleSummary) -> SeedSpread:
    """Whether a role's seeds disagree on test AUC by more than its own interval.

    The rule: ``unstable`` when the spread (max - min) of the seeds' test AUCs exceeds the
    width (upper - lower) of the exported model's 95% test-AUC interval. That interval is
    how far the test sample alone moves one model's AUC; seeds that differ by more than it
    say that the training run (initialisation, batch order, augmentation draws) decides
    the number, so the exported seed's AUC, picked on validation, is one draw of several
    and no more the configuration's AUC than any other seed's. Undecided (None) with
    fewer than two seeds that have a test AUC, or without the interval.
    """
    aucs = tuple(
        (int(seed) if isinstance(seed := p.get("seed"), int) else None, auc)
        for p in summary.per_seed
        if (auc := finite((p.get("test") or {}).get("auc"))) is not None
    )
    metrics = summary.exported_test
    interval = metrics.ci("auc") if metrics is not None else None
    values = [auc for _, auc in aucs]
    spread = max(values) - min(values) if len(values) > 1 else None
    if spread is None:
        what = "one seed has" if len(values) == 1 else "no seed has"
        return SeedSpread(aucs, None, interval, None, f"{what} a test AUC: no spread to judge")
    span = f"{spread:.3f}: {min(values):.3f} to {max(values):.3f} over {len(values)} seeds"
    if interval is None:
        return SeedSpread(
            aucs, spread, None, None,
            f"seeds' test AUCs spread {span}; the exported model has no test-AUC interval "
            "to judge it against",
        )  # fmt: skip
    lo, hi = interval
    shown = f"width {hi - lo:.3f}: [{lo:.3f}, {hi:.3f}]"
    if spread > hi - lo:
        return SeedSpread(
            aucs, spread, interval, True,
            f"seeds disagree: the spread of their test AUCs ({span}) exceeds the width of the "
            f"exported model's 95% test-AUC interval ({shown}), so the seed, not the "
            "configuration, decides the number",
        )  # fmt: skip
    return SeedSpread(
        aucs, spread, interval, False,
        f"seeds agree: the spread of their test AUCs ({span}) is within the width of the "
        f"exported model's 95% test-AUC interval ({shown})",
    )  # fmt: skip


__all__ = [
    "HEADLINE",
    "STABILITY_RULE",
    "THRESHOLDED",
    "Check",
    "MeanStd",
    "Metrics",
    "RoleSummary",
    "SeedSpread",
    "Verdict",
    "Versus",
    "seed_spread",
]
