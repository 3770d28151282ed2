"""The study's description and the command line generated from it."""

from __future__ import annotations

import dataclasses

import pytest

from tuning.engines import ENGINE_NAMES, get_engine
from tuning.spec import SMOKE_TEST, SpecError, StudySpec, build_parser, flag_of, spec_from_args


def test_every_field_is_a_flag_with_the_fields_default():
    parser = build_parser()
    args = parser.parse_args([])
    for f in dataclasses.fields(StudySpec):
        expected = None if f.metadata.get("repeat") else f.default  # append: None until given
        assert getattr(args, f.name) == expected, f.name
    assert spec_from_args(args) == StudySpec()
    help_text = parser.format_help()
    for f in dataclasses.fields(StudySpec):
        assert flag_of(f.name) in help_text, f.name


def test_flags_become_the_typed_spec():
    args = build_parser().parse_args(
        ["--trials", "7", "--image-size", "96", "--gpus-per-trial", "0.5", "--trial-timeout",
         "60", "--engine", "keras-tuner", "-v", "--data", "DIR"]
    )  # fmt: skip
    spec = spec_from_args(args)
    assert (spec.trials, spec.image_size, spec.gpus_per_trial) == (7, 96, 0.5)
    assert spec.trial_timeout_s == 60.0 and spec.engine == "keras-tuner"
    assert spec.verbose is True and spec.data == "DIR"


def test_choices_come_from_the_registries():
    parser = build_parser()
    engine = next(a for a in parser._actions if a.dest == "engine")
    assert tuple(engine.choices) == ENGINE_NAMES
    with pytest.raises(SystemExit):
        parser.parse_args(["--engine", "nope"])
    with pytest.raises(Exception, match=r"engine must be one of \['ray', 'keras-tuner'\]"):
        get_engine("nope")


def test_smoke_test_shrinks_the_study():
    spec = spec_from_args(build_parser().parse_args(["--smoke-test", "--trials", "50"]))
    assert spec.trials == SMOKE_TEST["trials"] and spec.epochs == SMOKE_TEST["epochs"]
    assert spec.space == "small"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("trials", 0, "trials must be >= 1, but got 0"),
        ("cpus_per_trial", float("nan"), "cpus_per_trial must be a finite number"),
        ("cpus_per_trial", 0, "cpus_per_trial must be > 0, but got 0"),
        ("gpus_per_trial", -1.0, "gpus_per_trial must be >= 0"),
        ("trial_timeout_s", -1.0, "trial_timeout_s must be > 0, but got -1.0"),
        ("max_failures", -1, "max_failures must be >= 0, but got -1"),
        ("channels", 2, r"channels must be one of \[1, 3\], but got 2"),
        ("metric", "auc", "metric must be one of"),
        ("epochs", 1.5, "epochs must be a whole number"),
        ("operating_point", "sens=2", "operating point 'sens=2'"),
        ("sens_spec_floor", 1.5, "sens_spec_floor must be <= 1"),
        ("external", ("adult",), "external sets must be given as NAME=DIR"),
        ("external", ("a=x", "a=y"), "external set names must differ"),
    ],
)
def test_each_rule_names_the_field_and_the_value(field, value, message):
    with pytest.raises(SpecError, match=message) as caught:
        StudySpec(**{field: value})
    assert caught.value.field == field


def test_a_spec_round_trips_through_study_json(tmp_path):
    spec = StudySpec(trials=5, data="DIR", gpus_per_trial=0.25, time_budget_s=30.0)
    path = tmp_path / "study.json"
    path.write_text(spec.to_json())
    assert StudySpec.from_json(path) == spec
    assert spec.mode == "max" and StudySpec(metric="val_loss").mode == "min"


def test_repeatable_flags_collect_every_value():
    spec = spec_from_args(
        build_parser().parse_args(["--external", "adult=/data/a", "--external", "kids=/data/k"])
    )
    assert spec.external == ("adult=/data/a", "kids=/data/k")
    assert spec.external_sets() == {"adult": "/data/a", "kids": "/data/k"}
