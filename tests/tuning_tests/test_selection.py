"""`tuning.selection`: parsing --objectives/--constraint/--pick, the front, feasibility, the pick."""

from __future__ import annotations

import pickle
from typing import ClassVar

import pytest

from covidxr_core.errors import ConfigError
from tuning.selection import (
    Constraint,
    ConstraintsFunc,
    Objective,
    PickRule,
    dominates,
    feasible,
    knee,
    pareto_front,
    parse_constraint,
    parse_objectives,
    parse_pick,
    select,
)

AUC_PARAMS = (Objective("val_auc", "max"), Objective("params", "min"))


def _row(tid: str, auc: float | None, params: int | None, sens: float | None = 0.9) -> dict:
    return {"trial_id": tid, "val_auc": auc, "model_params": params, "val_sensitivity": sens}


# A front of a, b, c (b the balanced one); d dominated by b; e lacks a value; f ties a.
ROWS = [
    _row("a", 0.95, 900_000),
    _row("b", 0.90, 150_000),
    _row("c", 0.70, 10_000),
    _row("d", 0.85, 200_000),
    _row("e", None, 5_000),
    _row("f", 0.95, 900_000),
]


def test_parse_objectives_orders_and_defaults_directions() -> None:
    assert parse_objectives("val_auc:max, params:min") == AUC_PARAMS
    assert parse_objectives("latency_ms") == (Objective("latency_ms", "min"),)
    assert parse_objectives("val_sensitivity:min")[0].mode == "min"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("val_acc:max", "--objectives: unknown objective 'val_acc'; choose from val_auc, "),
        ("val_auc:up", "direction of val_auc must be max or min, but got 'up'"),
        ("val_auc:max,,params:min", "an empty entry"),
        ("val_auc,val_auc:min", "objective val_auc is given twice"),
        ("  ", "give NAME:max or NAME:min"),
    ],
)
def test_parse_objectives_refuses_bad_input_clearly(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")) as info:
        parse_objectives(text)
    assert "\n" not in str(info.value)


def test_parse_constraint_ops_and_errors() -> None:
    assert parse_constraint("val_sensitivity>=0.9") == Constraint("val_sensitivity", ">=", 0.9)
    assert parse_constraint(" params < 2e5 ") == Constraint("params", "<", 200000.0)
    assert str(parse_constraint("params<=200000")) == "params<=200000"
    for text, message in [
        ("val_sens>=0.9", "unknown name 'val_sens'"),
        ("val_auc=0.9", "operator must be one of >=, <=, >, <, but got '='"),
        ("val_auc>=high", "the bound must be a finite number, but got 'high'"),
        ("val_auc>=nan", "finite number"),
        ("val_auc", "write NAME OP NUMBER"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_constraint(text)


def test_constraint_holds_and_violation_follow_optunas_sign() -> None:
    ge, lt = Constraint("val_sensitivity", ">=", 0.9), Constraint("params", "<", 100.0)
    assert ge.holds(0.9) and not ge.holds(0.89) and not ge.holds(None)
    assert ge.violation(0.95) < 0 < ge.violation(0.8)
    assert ge.violation(0.9) == 0  # met with equality: feasible for Optuna (<= 0)
    assert lt.violation(100.0) > 0  # strict: equality is a violation
    assert lt.violation(None) > 1e6 and not lt.holds(float("nan"))


def test_constraints_func_reads_user_attrs_and_pickles() -> None:
    func = ConstraintsFunc(
        (Constraint("val_sensitivity", ">=", 0.9), Constraint("params", "<=", 10))
    )

    class Trial:  # the one attribute Optuna's FrozenTrial offers that the function reads
        user_attrs: ClassVar[dict] = {"constraint_val_sensitivity": 0.95, "params": 20}

    assert func(Trial()) == pytest.approx([-0.05, 10.0])
    assert pickle.loads(pickle.dumps(func))(Trial()) == func(Trial())


def test_parse_pick() -> None:
    assert parse_pick(None) == PickRule("knee")
    assert parse_pick("knee").kind == "knee"
    rule = parse_pick("max val_auc with params <= 200000 and latency_ms<5")
    assert (rule.kind, rule.name, rule.mode) == ("best", "val_auc", "max")
    assert rule.conditions == (
        Constraint("params", "<=", 200000.0),
        Constraint("latency_ms", "<", 5.0),
    )
    assert str(rule) == "max val_auc with params<=200000 and latency_ms<5"
    for text, message in [
        ("best val_auc", "write 'knee' or 'max|min NAME"),
        ("max auc", "unknown name 'auc'"),
        ("max val_auc with", "write 'knee'"),  # 'with' needs a space after it to split
        ("max val_auc with params <= x", "finite number"),
        ("max val_auc with params <= 1 and ", "nothing after"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_pick(text)


def test_pareto_front_respects_directions_and_missing_values() -> None:
    front = pareto_front(ROWS, AUC_PARAMS)
    assert [ROWS[i]["trial_id"] for i in front] == ["a", "b", "c", "f"]  # ties both kept
    flipped = pareto_front(ROWS, (Objective("val_auc", "min"), Objective("params", "min")))
    assert [ROWS[i]["trial_id"] for i in flipped] == ["c"]
    assert dominates((1, 1), (1, 0)) and not dominates((1, 1), (1, 1))


def test_knee_is_the_balanced_point_and_single_objective_is_the_best() -> None:
    assert ROWS[knee(ROWS, AUC_PARAMS) or 0]["trial_id"] == "b"
    one = knee(ROWS, (Objective("params", "min"),))
    assert one is not None and ROWS[one]["trial_id"] == "e"  # no val_auc needed here
    assert knee([], AUC_PARAMS) is None


def test_select_picks_among_feasible_only() -> None:
    rows = [dict(r) for r in ROWS]
    rows[1]["val_sensitivity"] = 0.5  # b, the knee, becomes infeasible
    sel = select(rows, AUC_PARAMS, (Constraint("val_sensitivity", ">=", 0.9),))
    assert "b" in sel.front and "b" not in sel.feasible
    assert sel.winner != "b" and sel.winner in sel.feasible
    assert sel.flags("b") == {"pareto": True, "feasible": False}
    assert sel.flags("d") == {"pareto": False, "feasible": True}
    assert "e" not in sel.candidates


def test_select_by_rule_with_conditions() -> None:
    rule = parse_pick("max val_auc with params <= 200000")
    assert select(ROWS, AUC_PARAMS, (), rule).winner == "b"
    assert select(ROWS, AUC_PARAMS, (), parse_pick("max val_auc")).winner == "a"  # a before f
    none = select(ROWS, AUC_PARAMS, (), parse_pick("max val_auc with params < 1000"))
    assert none.winner is None and "meets the pick's conditions" in none.notes[0]


def test_select_says_when_no_trial_is_feasible() -> None:
    sel = select(ROWS, AUC_PARAMS, (Constraint("val_sensitivity", ">=", 0.99),))
    assert sel.winner is None and sel.feasible == ()
    assert sel.notes == (
        "no trial is feasible: none of 5 satisfies val_sensitivity>=0.99 "
        "(best seen: val_sensitivity 0.9); nothing is picked",
    )
    assert feasible(ROWS[0], ()) and not feasible(ROWS[0], (Constraint("val_auc", ">", 0.95),))


def test_combine_averages_folds_per_epoch_and_keeps_each_fold() -> None:
    from tuning.crossval import combine

    fold = [
        [{"val_auc": 0.6, "val_loss": 0.7, "epoch_s": 1.0}, {"val_auc": 0.8, "val_loss": 0.5, "epoch_s": 1.0}],
        [{"val_auc": 0.7, "val_loss": 0.6, "epoch_s": 2.0}, {"val_auc": 0.9, "val_loss": 0.4, "epoch_s": 2.0}],
        [{"val_auc": 0.8, "val_loss": 0.5, "epoch_s": 3.0}, {"val_auc": float("nan"), "val_loss": 0.3, "epoch_s": 3.0}],
    ]  # fmt: skip
    first, second = combine(fold)
    assert first["val_auc"] == pytest.approx(0.7) and first["epoch_s"] == pytest.approx(6.0)
    assert first["val_auc_std"] == pytest.approx(0.0816496, abs=1e-6)  # population std
    assert [first[f"val_auc_fold_{i}"] for i in range(3)] == [0.6, 0.7, 0.8]
    assert first["cv_folds"] == 3
    assert second["val_loss"] == pytest.approx(0.4)
    assert second["val_auc"] != second["val_auc"]  # one fold NaN: the mean is NaN, not 0.85
    assert combine([fold[0], fold[1][:1]]) == combine([fold[0][:1], fold[1][:1]])  # shortest
    assert combine([]) == []
