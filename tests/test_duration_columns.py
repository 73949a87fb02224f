"""A column of durations is taken as the general path takes each value, or left to it.

``checked_durations`` may only convert a value the way
``fields.coerce_duration_ms`` would; anything it cannot vouch for (a text,
a boolean, a value out of range, a null where a later key may hold the
duration) is flagged for the general path, which then decides.
"""

from __future__ import annotations

import math
import random

import pytest

from states.telemetry.duration_columns import GENERAL, UNTIMED, checked_durations
from states.telemetry.fields import coerce_duration_ms
from states.telemetry.json_shapes import Shape, shape_of

NAMES: dict[str, tuple[str, ...]] = {
    "component": ("service",),
    "instance": (),
    "version": (),
    "operation": (),
    "level": (),
    "status": (),
    "timestamp": ("ts",),
    "duration": ("duration_ms", "latency"),
    "stack": (),
}
ODD = [True, False, "230ms", "1.5s", -1.0, -1, 1e300, 2**80, float("nan"), float("inf"), [], {}]


def shape_reading(key: str) -> Shape:
    shape = shape_of({"service": "api", "ts": "2026-12-03T11:00:00Z", key: 1.0}, NAMES)
    assert shape is not None
    return shape


def column(rng: random.Random, size: int, odd: float) -> list[object]:
    values: list[object] = []
    for _ in range(size):
        pick = rng.random()
        if pick < odd:
            values.append(rng.choice(ODD))
        elif pick < 0.5:
            values.append(rng.randint(0, 10_000))
        else:
            values.append(round(rng.uniform(0, 5_000), 3))
    return values


@pytest.mark.parametrize("unit_ms", [1.0, 1000.0, 0.001])
@pytest.mark.parametrize("odd", [0.0, 0.05])
def test_every_value_taken_is_the_general_paths_and_the_rest_are_flagged(
    unit_ms: float, odd: float
) -> None:
    rng = random.Random(int(unit_ms * 1000) + int(odd * 100))
    shape = shape_reading("duration_ms")
    for _ in range(20):
        durations = column(rng, 200, odd)
        flags: dict[int, str] = {}
        limit = 3_600_000.0 / unit_ms

        values = list(checked_durations(durations, shape, flags, unit_ms, limit, typed=False))

        assert len(values) == len(durations)
        for i, (raw, taken) in enumerate(zip(durations, values, strict=True)):
            if i in flags:
                assert flags[i] == GENERAL
                continue
            assert taken == coerce_duration_ms(raw, unit_ms)


def test_texts_booleans_and_values_out_of_range_are_all_left_to_the_general_path() -> None:
    shape = shape_reading("duration_ms")
    flags: dict[int, str] = {}

    values = list(checked_durations(list(ODD), shape, flags, 1.0, 3_600_000.0, typed=False))

    assert all(map(math.isnan, values))
    assert len(values) == len(ODD)
    assert flags == dict.fromkeys(range(len(ODD)), GENERAL)


def test_a_null_is_no_duration_unless_a_later_key_may_hold_the_duration() -> None:
    first_key, later_key = shape_reading("latency"), shape_reading("duration_ms")
    for shape, flagged in ((first_key, {}), (later_key, {1: GENERAL})):
        flags: dict[int, str] = {}
        values = list(checked_durations([1.5, None], shape, flags, 1.0, 10.0, typed=True))
        assert values[0] == 1.5
        assert math.isnan(values[1])
        assert flags == flagged


def test_floats_above_the_limit_go_to_the_general_path() -> None:
    shape = shape_reading("duration_ms")
    flags: dict[int, str] = {}

    values = list(checked_durations([5.0, 50.0], shape, flags, 1.0, 10.0, typed=True))

    assert values[0] == 5.0
    assert math.isnan(values[1])
    assert flags == {1: GENERAL}


def test_a_shape_without_durations_reads_every_line_as_untimed() -> None:
    assert checked_durations(None, shape_reading("duration_ms"), {}, 1.0, 10.0, typed=False) is (
        UNTIMED
    )


@pytest.mark.parametrize("value", [-0.0, "-0.0", "-0ms", "-0s"])
def test_a_negative_zero_duration_is_taken_as_zero(value: object) -> None:
    millis = coerce_duration_ms(value, 1000.0)

    assert millis == 0.0
    assert math.copysign(1.0, millis) == 1.0
