"""The hand-drawn chart scales: where values land in pixels and where ticks go."""

from __future__ import annotations

import itertools
import math

import pytest

from tuning.reporting.svg import BandScale, LinearScale, LogScale


def test_linear_scale_maps_domain_ends_to_pixel_ends() -> None:
    scale = LinearScale(0.0, 1.0, 50.0, 550.0, nice=False)
    assert scale(0.0) == pytest.approx(50.0)
    assert scale(1.0) == pytest.approx(550.0)
    assert scale(0.5) == pytest.approx(300.0)


def test_linear_scale_runs_downwards_for_a_y_axis() -> None:
    bottom, top = 280.0, 10.0  # SVG's y grows downwards: the bottom pixel comes first
    scale = LinearScale(0.0, 10.0, bottom, top, nice=False)
    assert scale(0.0) == pytest.approx(bottom)
    assert scale(10.0) == pytest.approx(top)
    assert scale(2.0) > scale(8.0)


def test_nice_ticks_are_round_and_inside_the_domain() -> None:
    scale = LinearScale(0.613, 0.872, 0.0, 500.0)
    values = [v for v, _ in scale.ticks()]
    assert len(values) >= 3
    assert scale.lo <= 0.613 and scale.hi >= 0.872  # nice widens, never cuts data off
    for value in values:
        assert scale.lo - 1e-9 <= value <= scale.hi + 1e-9
        assert round(value / scale.step) * scale.step == pytest.approx(value)
    steps = {round(b - a, 12) for a, b in itertools.pairwise(values)}
    assert len(steps) == 1
    mantissa = scale.step / 10 ** math.floor(math.log10(scale.step))
    assert round(mantissa, 9) in (1, 2, 2.5, 5, 10)
    assert scale(scale.lo) == pytest.approx(0.0) and scale(scale.hi) == pytest.approx(500.0)


def test_integer_ticks_never_fall_between_whole_numbers() -> None:
    scale = LinearScale(1, 3, 0.0, 300.0, integer=True, nice=False)
    assert [v for v, _ in scale.ticks()] == [1, 2, 3]
    assert [label for _, label in scale.ticks()] == ["1", "2", "3"]


def test_one_value_gets_room_around_it() -> None:
    scale = LinearScale(0.8, 0.8, 0.0, 100.0)
    assert scale.lo < 0.8 < scale.hi
    assert 0.0 < scale(0.8) < 100.0


def test_log_scale_ticks_at_1_2_5_times_powers_of_ten() -> None:
    scale = LogScale(1e-4, 1e-2, 0.0, 400.0)
    values = [v for v, _ in scale.ticks()]
    assert values[0] == pytest.approx(1e-4) and values[-1] == pytest.approx(1e-2)
    for value in values:
        exponent = math.floor(math.log10(value) + 1e-9)
        assert round(value / 10**exponent, 9) in (1, 2, 5)
        assert scale.lo <= value <= scale.hi
    assert pytest.approx(2e-4) in values and pytest.approx(5e-3) in values
    # Equal ratios are equal distances, and larger values sit further along.
    assert scale(1e-3) - scale(1e-4) == pytest.approx(scale(1e-2) - scale(1e-3))
    assert 0.0 < scale(1e-4) < scale(1e-2) < 400.0  # a little room past the extremes


def test_log_scale_over_many_decades_keeps_powers_of_ten_only() -> None:
    scale = LogScale(1e-6, 1.0, 0.0, 400.0)
    labels = [label for _, label in scale.ticks()]
    assert labels == ["1e-6", "1e-5", "1e-4", "0.001", "0.01", "0.1", "1"]


def test_band_scale_puts_categories_at_band_centres() -> None:
    scale = BandScale(["adam", "sgd", "rmsprop"], 0.0, 300.0)
    assert [scale(c) for c in ("adam", "sgd", "rmsprop")] == [50.0, 150.0, 250.0]
    assert scale.ticks() == [("adam", "adam"), ("sgd", "sgd"), ("rmsprop", "rmsprop")]
    assert BandScale(["2", "4"], 0.0, 100.0)(4) == 75.0  # values are looked up as text
    with pytest.raises(ValueError):
        scale("lamb")
