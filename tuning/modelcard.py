"""``best/MODEL_CARD.md``: what the exported model is, what it was measured on, and what
it is not, written from the run itself.

Every number comes from the run's own files (metrics with their 95% intervals, the
operating point, calibration, external sets, the verdict and its checks); nothing is
typed in by hand, so the card cannot disagree with the report.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from covidxr_core import atomic
from tuning.results import STABILITY_RULE, Metrics, RoleSummary, Verdict, seed_spread

if TYPE_CHECKING:
    from covidxr_core.data import Dataset
    from tuning.spec import StudySpec

CARD_FILE = "MODEL_CARD.md"
CARD_METRICS = (
    "auc", "average_precision", "sensitivity", "specificity", "ppv", "npv", "f1",
    "accuracy", "ece", "brier",
)  # fmt: skip
ROLE_NAMES = {"best": "tuned (this model)", "default": "sensible default", "baseline": "recipe"}


def _value(metrics: Metrics | None, name: str) -> str:
    if metrics is None or metrics.value(name) is None:
        return "–"
    interval = metrics.ci(name)
    text = f"{metrics.value(name):.3f}"
    return text + (f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "")


def _table(columns: Mapping[str, Metrics | None]) -> list[str]:
    lines = ["| metric | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name in CARD_METRICS:
        lines.append(f"| {name} | " + " | ".join(_value(m, name) for m in columns.values()) + " |")
    return lines


def seed_lines(roles: Mapping[str, RoleSummary]) -> list[str]:
    """Each role's test AUC per retrain seed, and the flag where the seeds disagree by
    more than the exported model's interval (`tuning.results.seed_spread`)."""
    lines = [
        f"Test AUC of each retrain seed; * marks the exported seed. Rule: {STABILITY_RULE}.",
        "",
        "| model | test AUC per seed | spread | exported model's 95% interval (width) | seeds |",
        "|---|---|---|---|---|",
    ]
    flags = []
    for role, label in ROLE_NAMES.items():
        if role not in roles:
            continue
        summary = roles[role]
        spread = seed_spread(summary)
        aucs = ", ".join(
            f"seed {seed}: {auc:.3f}" + ("*" if seed == summary.exported_seed else "")
            for seed, auc in spread.aucs
        )
        interval = (
            f"[{spread.interval[0]:.3f}, {spread.interval[1]:.3f}] ({spread.width:.3f})"
            if spread.interval is not None and spread.width is not None
            else "–"
        )
        word = {True: "**disagree**", False: "agree", None: "–"}[spread.unstable]
        lines.append(f"| {label} | {aucs or '–'} | {_num(spread.spread)} | {interval} | {word} |")
        if spread.unstable:
            flags.append(f"- **{label}**: {spread.text}")
    return lines + (["", *flags] if flags else [])


def limitations(
    spec: StudySpec,
    data: Dataset,
    verdict: Verdict,
    roles: Mapping[str, RoleSummary] | None = None,
) -> list[str]:
    """What the reader must know before trusting the numbers."""
    out = []
    if data.synthetic:
        out.append(
            "Trained and tested on SYNTHETIC demo images, not radiographs: the numbers test "
            "the software and say nothing about patients."
        )
    if "covid-cxr" in str(data.source):
        out.append(
            "covid-cxr's normal images are paediatric (Kermany et al.) and its COVID-19 images "
            "adult (Cohen et al.): a model can separate the classes by age alone. High "
            "internal accuracy here says little about adult patients; check an external set."
        )
    counts = data.counts().get("test", {})
    if counts and min(counts.values()) < 50:
        out.append(
            f"The test split is small ({', '.join(f'{k} {v}' for k, v in counts.items())}): "
            "intervals are wide, and one image moves a rate by several points."
        )
    if not spec.external:
        out.append(
            "No external validation set was given (`--external NAME=DIR`): every number here "
            "comes from the same source as the training data."
        )
    out.extend(verdict.external_notes)
    tuned = (roles or {}).get("best")
    if tuned is not None and (spread := seed_spread(tuned)).unstable:
        out.append(f"This model's retrain {spread.text}.")
    if verdict.leakage:
        out.append(
            f"{len(verdict.leakage)} radiograph(s) appear in both train and test, which "
            "inflates the test numbers."
        )
    return out


def render(
    spec: StudySpec,
    data: Dataset,
    roles: Mapping[str, RoleSummary],
    verdict: Verdict,
    choice: Mapping[str, Any] | None = None,
) -> str:
    """The card as Markdown.

    ``choice``: how the model was chosen: ``line`` (the race's one line), ``origin`` (of
    the handed-back configuration) and ``held_fixed`` (every value no trial changed).
    """
    best = roles["best"]
    counts = data.counts()
    lines = [
        f"# Model card: {Path(spec.output).name}/{spec.name or 'run'} (tuned covidxr CNN)",
        "",
        "## Intended use",
        "",
        "A research model that ranks chest radiographs by the probability of "
        f"{data.positive_class!r} versus the other class(es), for studying methods. "
        "**It is not a diagnostic device**: it has not been validated clinically, must not "
        "be used to make or support decisions about patients, and its output is not a "
        "diagnosis.",
        "",
        "## Data",
        "",
        f"- source: `{data.source}`{' (synthetic demo data)' if data.synthetic else ''}",
        f"- decoded at {data.image_size} px, {data.channels} channel(s); classes "
        f"{', '.join(data.class_names)}; positive class `{data.positive_class}`",
    ]
    for split, per_class in counts.items():
        lines.append(
            f"- {split}: {sum(per_class.values())} images ("
            + ", ".join(f"{k} {v}" for k, v in per_class.items())
            + ")"
        )
    lines += [f"- note: {n}" for n in data.notes]
    lines += ["", "### Leakage", ""]
    if verdict.leakage:
        lines += [f"- train ↔ test: {p}" for p in verdict.leakage]
    else:
        lines.append("- no duplicate radiograph found between train and test")
    lines += [
        "",
        *_choice_lines(choice),
        "## Operating point",
        "",
        f"- rule: `{best.operating_point or spec.operating_point}`, chosen on the validation "
        "split only (never on test)",
        f"- threshold on P({data.positive_class}): "
        + ("argmax (three or more classes)" if best.threshold is None else f"{best.threshold:.4f}"),
        "",
        "## Test metrics (95% stratified bootstrap intervals)",
        "",
        f"Protocol: {best.protocol}.",
        "",
        *_table({ROLE_NAMES[r]: roles[r].exported_test for r in ROLE_NAMES if r in roles}),
        "",
        "## Stability over seeds",
        "",
        *seed_lines(roles),
        "",
        "## Calibration",
        "",
    ]
    calibration = best.calibration or {}
    test_cal = calibration.get("test") or {}
    if calibration:
        lines.append(
            f"Temperature {calibration.get('temperature', 1.0):.3f}, fitted on validation. "
            f"Test ECE {_num(test_cal.get('ece_before'))} before, "
            f"{_num(test_cal.get('ece_after'))} after; Brier {_num(test_cal.get('brier_before'))}"
            f" before, {_num(test_cal.get('brier_after'))} after."
        )
    else:
        lines.append("Not measured.")
    lines += ["", "## External validation", ""]
    if verdict.external:
        internal = {"internal test": best.exported_test}
        for name, by_role in verdict.external.items():
            internal[name] = by_role.get("best")
        lines += _table(internal)
    else:
        lines.append("None given.")
    lines += ["", "## Verdict", "", f"**{verdict.kind.upper()}**: {verdict.text}", ""]
    lines += [
        f"- {'passed' if c.passed else 'failed' if c.passed is False else 'not shown'}: "
        f"{c.name}: {c.detail}"
        for c in verdict.checks
    ]
    lines += ["", "## Known limitations", ""]
    lines += [f"- {item}" for item in limitations(spec, data, verdict, roles)] or [
        "- none recorded"
    ]
    lines.append("")
    return "\n".join(lines)


def _choice_lines(choice: Mapping[str, Any] | None) -> list[str]:
    """``## How this model was chosen``: the race's outcome and what the search held fixed."""
    if not choice:
        return []
    lines = ["", "## How this model was chosen", ""]
    if choice.get("line"):
        lines.append(f"- {choice['line']} (chosen on validation only; docs/tuning.md)")
    if choice.get("origin"):
        lines.append(f"- origin of the configuration: {choice['origin']}")
    held = choice.get("held_fixed") or {}
    if held:
        lines.append(
            "- held fixed by the search (no trial changed these): "
            + ", ".join(f"`{k}` = {v}" for k, v in held.items())
        )
    return [*lines, ""]


def _num(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "–"


def write_model_card(
    run_dir: Path,
    spec: StudySpec,
    data: Dataset,
    roles: Mapping[str, RoleSummary],
    verdict: Verdict,
    choice: Mapping[str, Any] | None = None,
) -> Path:
    """Writes ``run_dir/best/MODEL_CARD.md`` and returns its path."""
    path = run_dir / "best" / CARD_FILE
    atomic.write_text(path, render(spec, data, roles, verdict, choice))
    return path


__all__ = ["CARD_FILE", "limitations", "render", "seed_lines", "write_model_card"]
