"""The typed description of one study, and the command line generated from it.

Each `StudySpec` field carries its help text, its rule and, where the command line spells
it differently, its flag. `build_parser` turns the fields into ``tuning/run.py``'s flags
and `spec_from_args` turns the parsed flags back into a spec, so a flag is written once:
here. Errors name the field (``trials must be >= 1, but got 0``); the CLI adds the flag.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from covidxr_core.errors import ConfigError
from tuning.engines.registry import ENGINE_NAMES, KERAS_TUNER_ALGORITHMS
from tuning.objective import DEFAULT_METRIC, METRICS

PRECISIONS = ("fp32", "bf16")
# The built-in model's smallest image side: six 2×2 poolings (ModelConfig: widths and
# pool_size), so the feature map is still 1 pixel after the last one.
MIN_IMAGE_SIZE = 2**6


class SpecError(ConfigError):
    """A `StudySpec` field breaks its rule; ``field`` names it."""

    def __init__(self, name: str, message: str) -> None:
        self.field = name
        super().__init__(message)


def option(
    default: Any,
    help: str,
    *,
    flag: str | None = None,
    choices: Sequence[Any] | None = None,
    minimum: float | None = None,
    above: float | None = None,
    maximum: float | None = None,
    metavar: str | None = None,
    repeat: bool = False,
    cli: bool = True,
) -> Any:
    """A `StudySpec` field with what its flag and its check need.

    Args:
        default: The default value.
        help: One line for ``--help``.
        flag: The flag when it is not ``--`` + the field name with dashes.
        choices: The allowed values.
        minimum: The value must be ``>= minimum`` (None is allowed where the type is
            optional).
        above: The value must be ``> above``.
        maximum: The value must be ``<= maximum``.
        metavar: How ``--help`` names the value.
        repeat: The flag may be given several times (a tuple field).
        cli: False for fields the command line does not set.
    """
    meta = dict(
        help=help, flag=flag, choices=choices, minimum=minimum, above=above,
        maximum=maximum, metavar=metavar, repeat=repeat, cli=cli,
    )  # fmt: skip
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class StudySpec:
    """Everything that defines a study. Saved as ``study.json`` in the run folder."""

    trials: int = option(50, "configurations to try", minimum=1)
    data: str | None = option(
        None,
        "data folder DIR/{train,validation,test}/<class>/ (default: the synthetic demo set)",
        metavar="DIR",
    )
    space: str = option("default", "search space: a built-in name or a YAML file")
    epochs: int = option(10, "epoch budget per trial (ASHA may stop a trial earlier)", minimum=1)
    image_size: int = option(128, "decoded image side in pixels (the recipe uses 300)")
    channels: int = option(1, "1 greyscale, 3 RGB (the recipe)", choices=(1, 3))
    positive_class: str | None = option(
        None,
        "the class folder that sensitivity, AUC and the verdict are about (default: the one "
        "class not named normal; needed for three or more classes)",
        metavar="CLASS",
    )
    cpus_per_trial: float = option(1.0, "CPUs per trial", above=0)
    gpus_per_trial: float | None = option(
        None,
        "GPU fraction per trial (0.25 packs 4 trials per GPU); default 0.25 if the cluster "
        "has GPUs, else 0",
        minimum=0,
    )
    max_concurrent: int | None = option(
        None,
        "trials running at once (default: all the slots of a local Ray; no cap on a joined cluster)",
        minimum=1,
    )
    address: str | None = option(None, "join an existing Ray cluster, e.g. auto or HOST:PORT")
    output: str = option("runs", "parent folder (or cloud URI) of run folders")
    name: str | None = option(None, "run folder name (default: a timestamp)")
    seed: int = option(0, "sampler seed, data carving seed and the first retrain seed")
    retrain_seeds: int = option(
        3, "seeds for retraining the best and the baseline (0: no retrain)", minimum=0
    )
    metric: str = option(DEFAULT_METRIC, "validation metric to optimise", choices=tuple(METRICS))
    grace_epochs: int = option(2, "epochs every trial gets before ASHA may stop it", minimum=1)
    early_stop: str = option(
        "auto",
        "ASHA early stopping: auto (only where the validation split can rank trials; "
        "tuning/budget.py), on, off",
        choices=("auto", "on", "off"),
    )
    race: int = option(
        3,
        "top full-budget trials that race the sensible default on --retrain-seeds seeds; "
        "the best lower bound on validation wins (0: no race, the best trial by score)",
        minimum=0,
    )
    max_failures: int = option(1, "retries of a trial whose worker died", minimum=0)
    trial_timeout_s: float | None = option(
        None,
        "seconds a trial may run before it is ended and recorded as failed",
        flag="--trial-timeout",
        above=0,
        metavar="SECONDS",
    )
    time_budget_s: float | None = option(
        None,
        "stop starting (and stop running) trials after this many seconds of search",
        above=0,
        metavar="SECONDS",
    )
    cache_dir: str | None = option(
        None, "decoded-image cache (default $COVIDXR_CACHE or ~/.cache/covidxr)", metavar="DIR"
    )
    n_boot: int = option(1000, "bootstrap resamples for confidence intervals", minimum=0)
    engine: str = option(
        "ray",
        "search engine: Ray Tune + Optuna + ASHA, or KerasTuner on this machine",
        choices=ENGINE_NAMES,
    )
    tuner: str = option(
        "hyperband",
        "KerasTuner algorithm (with --engine keras-tuner)",
        choices=KERAS_TUNER_ALGORITHMS,
    )
    precision: str = option("fp32", "training precision", choices=PRECISIONS)
    operating_point: str = option(
        "youden",
        "decision threshold, chosen on validation: youden, sens=T (e.g. sens=0.95) or spec=T",
        metavar="RULE",
    )
    sens_spec_floor: float = option(
        0.5,
        "a green verdict needs the tuned model's sensitivity and specificity interval lower "
        "bounds at or above this",
        minimum=0,
        maximum=1,
    )
    external: tuple[str, ...] = option(
        (),
        "an external labelled data set NAME=DIR (DIR/<class>/* or DIR/<split>/<class>/*), "
        "used only to evaluate the final models; repeatable",
        metavar="NAME=DIR",
        repeat=True,
    )
    groups: str | None = option(
        None,
        "CSV with columns path,group (e.g. a patient id): a group is never split when "
        "carving splits, and groups in two splits are reported",
        metavar="FILE.csv",
    )
    drop_leaked: bool = option(
        False, "remove validation/test images that duplicate a train image (each is listed)"
    )
    strict_leakage: bool = option(
        False,
        "stop before any trial if an image is duplicated across splits (find_duplicates), "
        "naming the pairs; without it the pairs are a warning",
    )
    cv: int = option(
        0,
        "cross-validate every trial on K stratified folds of train + validation pooled "
        "(duplicates and groups kept in one fold; test untouched); 0: off",
        minimum=0,
        metavar="K",
    )
    objectives: str | None = option(
        None,
        "several objectives, NAME:max|min comma-separated, from val_auc, val_sensitivity, "
        "val_specificity, params, latency_ms (e.g. val_auc:max,params:min); Optuna's "
        "multi-objective TPE searches their Pareto front (default: --metric alone)",
        metavar="LIST",
    )
    constraint: tuple[str, ...] = option(
        (),
        "a constraint NAME OP NUMBER (OP >=, <=, >, <), e.g. val_sensitivity>=0.9; given to "
        "Optuna's constraints_func, and the winner is picked among trials meeting all; "
        "repeatable",
        metavar="COND",
        repeat=True,
    )
    pick: str | None = option(
        None,
        "which trial is retrained: 'max|min NAME [with COND [and COND]]' (e.g. "
        "'max val_auc with params <= 200000') or knee (default: the knee of the Pareto "
        "front; with one objective, its best)",
        metavar="RULE",
    )
    mlflow: str | None = option(
        None,
        "log to MLflow: the study as a parent run, each trial and retrained model as a child "
        "run (e.g. sqlite:///mlruns.db or http://HOST:5000; pip install 'covidxr[mlflow]')",
        metavar="URI",
    )
    mlflow_experiment: str = option("covidxr", "MLflow experiment name (with --mlflow)")
    tensorboard: bool = option(False, "write per-trial scalars under runs/NAME/tensorboard/")
    verbose: bool = option(False, "show Ray's and the trials' own logs", flag="-v")

    def __post_init__(self) -> None:
        object.__setattr__(self, "external", tuple(self.external))
        object.__setattr__(self, "constraint", tuple(self.constraint))
        for f in dataclasses.fields(self):
            _check(f, getattr(self, f.name))
        smallest = MIN_IMAGE_SIZE
        if self.image_size < smallest:  # checked here: before any image is decoded
            raise SpecError(
                "image_size",
                f"image_size must be >= {smallest} for the built-in model: its six 2×2 "
                f"poolings need pool_size**len(widths) = 2**6 = {smallest} pixels "
                f"(ModelConfig's rule), but got {self.image_size}",
            )
        from covidxr_core.operating_point import OperatingPoint

        try:
            OperatingPoint.parse(self.operating_point)
        except ConfigError as exc:
            raise SpecError("operating_point", str(exc)) from None
        names = [item.partition("=")[0] for item in self.external]
        for item, name in zip(self.external, names, strict=True):
            if not name or "=" not in item or not item.partition("=")[2]:
                raise SpecError(
                    "external", f"external sets must be given as NAME=DIR, but got {item!r}"
                )
        if len(set(names)) < len(names):
            raise SpecError("external", f"external set names must differ, but got {names}")
        if self.positive_class is not None and not self.positive_class.strip():
            raise SpecError("positive_class", "positive_class must name a class folder, but got ''")
        _check_selection(self)

    def objective_list(self) -> tuple[Any, ...]:
        """The study's objectives (`tuning.selection.Objective`): ``--objectives``, else
        ``--metric`` alone."""
        from tuning.selection import Objective, parse_objectives

        if self.objectives is None:
            return (Objective(self.metric, self.mode),)
        return parse_objectives(self.objectives)

    @property
    def selecting(self) -> bool:
        """Whether the pick is the selection rule's (objectives, constraints or --pick set),
        rather than the single metric's best full-budget trial."""
        return bool(self.objectives or self.constraint or self.pick)

    def external_sets(self) -> dict[str, str]:
        """``{NAME: DIR}`` of the external validation sets, in the order given."""
        return dict(item.partition("=")[::2] for item in self.external)

    @property
    def mode(self) -> str:
        """``"max"`` or ``"min"``: the direction of ``metric``."""
        return METRICS[self.metric]

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, path: Path) -> StudySpec:
        data: dict[str, Any] = json.loads(path.read_text())
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


_HINTS = typing.get_type_hints(StudySpec)


def _check_selection(spec: StudySpec) -> None:
    """--cv, --objectives, --constraint and --pick, checked before anything heavy."""
    from tuning.selection import parse_constraint, parse_objectives, parse_pick

    if spec.cv == 1:
        raise SpecError("cv", "cv must be 0 (off) or >= 2 folds, but got 1")
    if spec.cv and spec.engine != "ray":
        raise SpecError(
            "cv", f"cv needs engine ray (each trial trains its folds), not {spec.engine}"
        )
    if (spec.objectives or spec.constraint) and spec.engine != "ray":
        what = "objectives" if spec.objectives else "constraint"
        raise SpecError(
            what, f"{what} needs engine ray (Optuna through Ray Tune), not {spec.engine}"
        )
    try:
        if spec.objectives is not None:
            objectives = parse_objectives(spec.objectives, "objectives")
            for o in objectives:
                if o.name in METRICS and o.mode != METRICS[o.name]:
                    raise SpecError(
                        "objectives",
                        f"{o} runs against {o.name}'s direction "
                        f"({METRICS[o.name]}); a validation rate is only ever maximised",
                    )
            first = next((o.name for o in objectives if o.name in METRICS), None)
            if first is not None and spec.metric != first:
                if spec.metric != DEFAULT_METRIC:
                    raise SpecError(
                        "metric",
                        f"metric {spec.metric} and objectives {spec.objectives} disagree: the "
                        f"metric ASHA stops on is the first validation objective ({first}); "
                        "drop --metric or put it first in --objectives",
                    )
                object.__setattr__(spec, "metric", first)
        for item in spec.constraint:
            parse_constraint(item, "constraint")
        if spec.pick is not None:
            parse_pick(spec.pick, "pick")
    except SpecError:
        raise
    except ConfigError as exc:  # "NAME: rule": the CLI puts the flag where NAME was
        name, _, rule = str(exc).partition(": ")
        raise SpecError(name, rule) from None


def _value_type(name: str) -> tuple[type, bool]:
    """The field's value type and whether None is allowed (``X | None``)."""
    hint = _HINTS[name]
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        inner = [a for a in args if a is not type(None)]
        return inner[0], len(inner) < len(args)
    return hint, False


def _check(f: dataclasses.Field[Any], value: Any) -> None:
    kind, optional = _value_type(f.name)
    meta = f.metadata
    if meta.get("repeat"):
        if not all(isinstance(v, str) for v in value):
            raise SpecError(f.name, f"{f.name} must be a list of strings, but got {value!r}")
        return
    if value is None:
        if optional:
            return
        raise SpecError(f.name, f"{f.name} must be a {kind.__name__}, but got None")
    if kind in (int, float) and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise SpecError(f.name, f"{f.name} must be a number, but got {value!r}")
    if kind is int and not isinstance(value, int):
        raise SpecError(f.name, f"{f.name} must be a whole number, but got {value!r}")
    if kind in (int, float) and not math.isfinite(value):
        raise SpecError(f.name, f"{f.name} must be a finite number, but got {value!r}")
    if meta.get("minimum") is not None and not value >= meta["minimum"]:
        raise SpecError(f.name, f"{f.name} must be >= {meta['minimum']:g}, but got {value!r}")
    if meta.get("maximum") is not None and not value <= meta["maximum"]:
        raise SpecError(f.name, f"{f.name} must be <= {meta['maximum']:g}, but got {value!r}")
    if meta.get("above") is not None and not value > meta["above"]:
        raise SpecError(f.name, f"{f.name} must be > {meta['above']:g}, but got {value!r}")
    if meta.get("choices") is not None and value not in meta["choices"]:
        raise SpecError(
            f.name, f"{f.name} must be one of {list(meta['choices'])}, but got {value!r}"
        )


def flag_of(name: str) -> str:
    """The command-line flag of a `StudySpec` field (``image_size`` -> ``--image-size``)."""
    f = next((f for f in dataclasses.fields(StudySpec) if f.name == name), None)
    if f is not None and f.metadata.get("flag") and f.metadata["flag"].startswith("--"):
        return str(f.metadata["flag"])
    return "--" + name.replace("_", "-")


# Flags of the command line that are not part of the study's description.
SMOKE_TEST = dict(
    trials=3, epochs=1, image_size=64, space="small", retrain_seeds=1, n_boot=100, grace_epochs=1
)
# What a resumed study may change: where and how it runs, not what it searches.
RESUMABLE = ("address", "verbose", "output", "name", "max_concurrent", "cache_dir")
DATA_CHANGED = ("refuse", "ok")


def build_parser(defaults: bool = True) -> argparse.ArgumentParser:
    """``tuning/run.py``'s parser: one flag per `StudySpec` field, plus --resume,
    --smoke-test and --data-changed.

    Args:
        defaults: False leaves every flag that was not given out of the parsed namespace
            (see `given_flags`).
    """
    parser = argparse.ArgumentParser(
        prog="tuning/run.py",
        description="Hyperparameter search for the covidxr CNN (Ray Tune + Optuna TPE + ASHA).",
    )

    def default(value: Any) -> Any:
        return value if defaults else argparse.SUPPRESS

    for f in dataclasses.fields(StudySpec):
        meta = f.metadata
        if not meta.get("cli", True):
            continue
        kind, _ = _value_type(f.name)
        flags = [flag_of(f.name)]
        if meta.get("flag") and not meta["flag"].startswith("--"):
            flags.insert(0, meta["flag"])
        text = meta["help"]
        if "default" not in text and f.default is not None and f.default is not False:
            text += f" (default: {f.default})"
        kwargs: dict[str, Any] = dict(dest=f.name, default=default(f.default), help=text)
        if kind is bool:
            kwargs["action"] = "store_true"
        elif meta.get("repeat"):
            kwargs.update(
                action="append", type=str, default=default(None), metavar=meta.get("metavar")
            )
        else:
            kwargs["type"] = kind
            if meta.get("choices") is not None:
                kwargs["choices"] = meta["choices"]
            if meta.get("metavar"):
                kwargs["metavar"] = meta["metavar"]
        parser.add_argument(*flags, **kwargs)
    parser.add_argument(
        "--resume",
        action="store_true",
        default=default(False),
        help="continue the run named by --name (its saved settings define the study)",
    )
    parser.add_argument(
        "--smoke-test",
        action="store_true",
        default=default(False),
        help="tiny everything ("
        + ", ".join(f"{k}={v}" for k, v in SMOKE_TEST.items())
        + "; a flag you give explicitly wins): checks the whole pipeline in about a minute",
    )
    parser.add_argument(
        "--data-changed",
        choices=DATA_CHANGED,
        default=default("refuse"),
        help="with --resume: refuse (default) or continue (ok) when images were added to, "
        "removed from or changed in the data folder since the study started",
    )
    return parser


def given_flags(argv: Sequence[str] | None = None) -> frozenset[str]:
    """The `StudySpec` fields (and other dests) whose flags ``argv`` gives explicitly.

    A flag given with its default value counts as given: ``--trials 50`` on a resumed
    study saved with 20 trials is a change, even though 50 is the default.
    """
    import sys

    args = build_parser(defaults=False).parse_args(sys.argv[1:] if argv is None else argv)
    return frozenset(vars(args))


def smoke_values(given: frozenset[str] | set[str]) -> dict[str, Any]:
    """What ``--smoke-test`` sets: the preset, less the fields given explicitly."""
    return {k: v for k, v in SMOKE_TEST.items() if k not in given}


def spec_from_args(
    args: argparse.Namespace, given: frozenset[str] | set[str] | None = None
) -> StudySpec:
    """The `StudySpec` the parsed flags describe.

    ``--smoke-test`` shrinks it, except for the fields in ``given`` (the flags given
    explicitly, see `given_flags`): ``--smoke-test --image-size 128`` trains at 128 px.
    Without ``given``, ``--trials`` is capped at the preset's and the rest is the preset.
    """
    values = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(StudySpec)
        if f.metadata.get("cli", True)
    }
    for f in dataclasses.fields(StudySpec):
        if f.metadata.get("repeat"):
            values[f.name] = tuple(values[f.name] or ())
    if getattr(args, "smoke_test", False):
        if given is None:
            values.update(SMOKE_TEST, trials=min(values["trials"], SMOKE_TEST["trials"]))
        else:
            values.update(smoke_values(given))
    return StudySpec(**values)


def _same(name: str, saved: Any, given: Any) -> bool:
    """Whether a given value means the saved one (paths compared once resolved)."""
    if saved == given:
        return True
    if isinstance(saved, str) and isinstance(given, str) and name in _PATH_FIELDS:
        if "://" in saved or "://" in given:
            return saved.rstrip("/") == given.rstrip("/")
        return Path(saved).expanduser().resolve() == Path(given).expanduser().resolve()
    if isinstance(saved, list | tuple) and isinstance(given, list | tuple):
        return tuple(saved) == tuple(given)
    return False


_PATH_FIELDS = frozenset({"data", "space", "groups", "cache_dir"})


def resume_conflicts(
    saved: StudySpec, requested: StudySpec, given: frozenset[str] | set[str]
) -> list[str]:
    """The study-defining flags given on ``--resume`` whose values differ from the saved
    study's, one ``--trials 50 (saved: 20)`` each; `RESUMABLE` fields may change."""
    out = []
    for f in dataclasses.fields(StudySpec):
        if f.name in RESUMABLE or f.name not in given:
            continue
        before, after = getattr(saved, f.name), getattr(requested, f.name)
        if f.name == "trials" and after is not None and before is not None:
            if after < before:  # more trials extend the study; fewer cannot undo any
                out.append(f"--trials {after} (saved: {before}; a study grows, never shrinks)")
            continue
        if not _same(f.name, before, after):
            out.append(f"{flag_of(f.name)} {_shown(after)} (saved: {_shown(before)})")
    return out


def resume_refusal(run_dir: Path, conflicts: list[str]) -> str:
    """The one-line error for flags a resumed study cannot take."""
    return (
        f"--resume: {'; '.join(conflicts)}: a resumed study keeps the settings saved in "
        f"{run_dir / 'study.json'} (the finished trials ran with them; only --trials may "
        "grow, to extend the search). Drop these flags to continue the study as saved, or "
        "start a new run with another --name"
    )


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)


def check_installed(spec: StudySpec) -> None:
    """Refuses, before anything starts, a setting whose library is not installed.

    Raises:
        SpecError: ``--engine keras-tuner --tuner bayesian`` without scikit-learn (which
            KerasTuner's Bayesian optimisation imports only when the search begins).
    """
    if spec.engine == "keras-tuner" and spec.tuner == "bayesian" and not _importable("sklearn"):
        raise SpecError(
            "tuner",
            "tuner bayesian needs scikit-learn (KerasTuner's Gaussian process), which is not "
            "installed: pip install scikit-learn, or choose --tuner hyperband or random",
        )


def _importable(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


__all__ = [
    "DATA_CHANGED",
    "MIN_IMAGE_SIZE",
    "PRECISIONS",
    "RESUMABLE",
    "SMOKE_TEST",
    "SpecError",
    "StudySpec",
    "build_parser",
    "check_installed",
    "flag_of",
    "given_flags",
    "resume_conflicts",
    "resume_refusal",
    "smoke_values",
    "spec_from_args",
]
