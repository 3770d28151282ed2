"""The model card says what the verdict says: an external set the tuned model fails on is a
failed check (and a limitation), and each role's per-seed test AUCs are shown, with a flag
where the seeds disagree by more than the exported model's interval."""

from __future__ import annotations

import numpy as np

from covidxr_core.data import Dataset, SplitArrays
from tuning.external import source_warnings
from tuning.modelcard import render
from tuning.results import MeanStd, Metrics, RoleSummary
from tuning.spec import StudySpec
from tuning.verdict import decide

RNG = np.random.default_rng(0)
LABELS = np.array([0] * 40 + [1] * 40)  # 0 = corona (positive), 1 = normal
CLASSES = ("corona", "normal")


def _split(n: int) -> SplitArrays:
    labels = np.array([0, 1] * (n // 2), dtype=np.int32)
    images = np.zeros((n, 8, 8, 1), dtype=np.uint8)
    return SplitArrays(images, labels, tuple(f"x/{i}.png" for i in range(n)))


DATA = Dataset(
    splits={"train": _split(160), "validation": _split(80), "test": _split(80)},
    class_names=CLASSES, positive_class="corona", image_size=8, channels=1,
    source="/data/covid-cxr",
)  # fmt: skip


def _metrics(auc: float, interval: tuple[float, float]) -> Metrics:
    return Metrics(
        n=80, auc=auc, sensitivity=0.9, specificity=0.9, threshold=0.4,
        predicted_positive=40, positive_class="corona",
        ci95={"auc": interval, "sensitivity": (0.8, 0.97), "specificity": (0.8, 0.97)},
    )  # fmt: skip


def _role(role: str, test: Metrics, aucs: list[float], **extra: object) -> RoleSummary:
    return RoleSummary(
        role=role, protocol="each seed trains on the train split", seeds=(0, 1, 2),
        exported_seed=1, test_mean_std={"auc": MeanStd.of(aucs)}, validation_mean_std={},
        exported_validation=None, exported_test=test, threshold=0.4,
        per_seed=tuple({"seed": s, "test": {"auc": a}} for s, a in enumerate(aucs)),
        **extra,  # type: ignore[arg-type]
    )  # fmt: skip


def _probs(separation: float) -> np.ndarray:
    score = RNG.normal(0, 1, LABELS.size) + separation * (LABELS == 0)
    p = 1 / (1 + np.exp(-score))
    return np.stack([p, 1 - p], axis=1)


def test_the_card_shows_the_external_failure_and_the_seeds(tmp_path) -> None:
    adult = Metrics(n=40, auc=0.445, threshold=0.4, ci95={"auc": (0.27, 0.62)})
    tuned = _metrics(0.975, (0.94, 0.99))
    roles = {
        # Seeds agree: spread 0.02 against an interval 0.05 wide.
        "best": _role("best", tuned, [0.96, 0.975, 0.98], external={"adult": adult}),
        # Seeds disagree: spread 0.31 against an interval 0.20 wide.
        "baseline": _role("baseline", _metrics(0.70, (0.60, 0.80)), [0.55, 0.70, 0.86]),
    }
    notes = source_warnings(tuned, {"adult": adult})
    verdict = decide(
        roles, {"best": _probs(4.0), "baseline": _probs(0.0)}, LABELS, 0, CLASSES,
        n_boot=200, seed=0, external={"adult": {"best": adult}}, external_notes=notes,
    )  # fmt: skip
    assert verdict.kind == "bad"
    spec = StudySpec(trials=1, epochs=1, space="small", name="clinic", external=("adult=/x",))
    card = render(spec, DATA, roles, verdict)

    checks = card.split("## Verdict")[1].split("## Known limitations")[0]
    assert "**BAD**" in checks
    assert (
        "- failed: external set adult: on adult the tuned model's AUC is 0.445, below the "
        "internal test AUC's interval [0.940, 0.990]" in checks
    )

    seeds = card.split("## Stability over seeds")[1].split("## Calibration")[0]
    assert "Rule: a model's seeds are flagged when the spread (max - min)" in seeds
    rows = {line.split("|")[1].strip(): line for line in seeds.splitlines() if "| seed" in line}
    assert rows["tuned (this model)"].startswith(
        "| tuned (this model) | seed 0: 0.960, seed 1: 0.975*, seed 2: 0.980 | 0.020 | "
        "[0.940, 0.990] (0.050) | agree |"
    )
    assert "seed 0: 0.550, seed 1: 0.700*, seed 2: 0.860 | 0.310 |" in rows["recipe"]
    assert rows["recipe"].endswith("| **disagree** |")
    assert (
        "- **recipe**: seeds disagree: the spread of their test AUCs (0.310: 0.550 to 0.860 "
        "over 3 seeds) exceeds the width of the exported model's 95% test-AUC interval "
        "(width 0.200: [0.600, 0.800])" in seeds
    )
    assert "tuned (this model)**" not in seeds  # its seeds agree: no flag

    limits = card.split("## Known limitations")[1]
    assert notes[0] in limits
    assert "seeds disagree" not in limits  # only the tuned model's own seeds are a limit


def test_the_tuned_models_unstable_seeds_are_a_limitation() -> None:
    tuned = _metrics(0.85, (0.80, 0.90))
    roles = {"best": _role("best", tuned, [0.60, 0.85, 0.88])}
    verdict = decide(
        roles, {"best": _probs(2.0)}, LABELS, 0, CLASSES, n_boot=100, seed=0
    )  # fmt: skip
    card = render(StudySpec(trials=1, epochs=1, space="small"), DATA, roles, verdict)
    limits = card.split("## Known limitations")[1]
    assert "This model's retrain seeds disagree: the spread of their test AUCs (0.280" in limits
