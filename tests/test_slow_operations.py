"""Which operations moved at the onset: slower or failing beyond their own noise.

Windows are per-operation figures as ingestion stores them (``count``,
``errors``, ``total_ms``, ``max_ms``); the comparison is a pure function of
the healthy windows before the onset and the windows after it.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from states.diagnose.beats import operations_around
from states.diagnose.slow_operations import (
    MIN_RECORDS,
    PASSED,
    OperationShift,
    shifted_operations,
)
from states.telemetry.operations import OTHER, Figures
from storage.tables import WindowRow


def figures(count: int, mean_ms: float, errors: int = 0) -> Figures:
    return {"count": count, "errors": errors, "total_ms": count * mean_ms, "max_ms": 2 * mean_ms}


def steady(
    rng: random.Random, windows: int, jitter: float = 0.2, **means: float
) -> list[dict[str, Figures]]:
    """Windows of 8-12 records per operation whose means wander by up to ``jitter``."""
    return [
        {
            name: figures(rng.randint(8, 12), mean * rng.uniform(1 - jitter, 1 + jitter))
            for name, mean in means.items()
        }
        for _ in range(windows)
    ]


def named(shifts: list[OperationShift]) -> list[str]:
    return [s.operation for s in shifts]


def test_an_operation_that_got_slow_is_named_with_its_figures_before_and_after() -> None:
    rng = random.Random(1)
    before = steady(rng, 30, search=40.0, item=20.0)
    after = steady(rng, 3, search=41.0, item=200.0)

    shifts = shifted_operations(before, after)

    assert named(shifts) == ["item"]
    item = shifts[0]
    assert item.changes == ("slower",) and item.baseline == "own"
    assert item.before_mean_ms is not None and 16 < item.before_mean_ms < 24
    assert item.after_mean_ms is not None and 160 < item.after_mean_ms < 240
    assert item.slowdown == pytest.approx(item.after_mean_ms / item.before_mean_ms, rel=1e-3)
    assert item.before_count >= 30 * 8 and 3 * 8 <= item.after_count <= 3 * 12
    assert item.error_ratio == 1.0 and item.moved > 3


@pytest.mark.parametrize("seed", range(20))
def test_window_to_window_noise_names_nothing(seed: int) -> None:
    rng = random.Random(seed)
    before = steady(rng, 30, jitter=0.3, search=40.0, item=20.0, cart=5.0)
    after = steady(rng, 3, jitter=0.3, search=40.0, item=20.0, cart=5.0)

    assert shifted_operations(before, after) == []


def test_an_operation_that_always_varies_widely_must_move_further() -> None:
    rng = random.Random(3)
    # Its window means range over 10-70 ms: twice its median is within its noise.
    before = [{"report": figures(10, rng.uniform(10, 70))} for _ in range(30)]
    after = [{"report": figures(10, 80.0)} for _ in range(3)]

    assert shifted_operations(before, after) == []
    much_slower = [{"report": figures(10, 400.0)} for _ in range(3)]
    assert named(shifted_operations(before, much_slower)) == ["report"]


def test_a_rare_operation_is_never_named_however_slow() -> None:
    rng = random.Random(4)
    before = [{**w, "export": figures(1, 100.0)} for w in steady(rng, 30, search=40.0)]
    after = [{**w, "export": figures(1, 5000.0)} for w in steady(rng, 3, search=40.0)]

    assert sum(w["export"]["count"] for w in after) < MIN_RECORDS
    assert shifted_operations(before, after) == []


def test_the_other_bucket_names_nothing_even_when_it_moves() -> None:
    rng = random.Random(5)
    before = [{**w, OTHER: figures(30, 10.0)} for w in steady(rng, 30, search=40.0)]
    after = [{**w, OTHER: figures(30, 500.0, errors=15)} for w in steady(rng, 3, search=40.0)]

    assert shifted_operations(before, after) == []


def test_an_operation_new_after_the_onset_is_compared_with_the_whole_component() -> None:
    rng = random.Random(6)
    before = steady(rng, 30, search=40.0, item=20.0)
    slow_new = [{**w, "bulk-import": figures(10, 900.0)} for w in steady(rng, 3, search=40.0)]
    ordinary_new = [{**w, "bulk-import": figures(10, 30.0)} for w in steady(rng, 3, search=40.0)]

    shifts = shifted_operations(before, slow_new)

    assert named(shifts) == ["bulk-import"]
    assert shifts[0].baseline == "component" and shifts[0].before_count == sum(
        int(f["count"]) for w in before for f in w.values()
    )
    assert shifted_operations(before, ordinary_new) == []  # as fast as the component was


def test_an_operation_that_started_failing_is_named_and_a_steady_error_rate_is_not() -> None:
    rng = random.Random(7)
    before = [
        {**w, "checkout": figures(100, 50.0, errors=rng.choice((0, 1, 1, 2)))}
        for w in steady(rng, 30, search=40.0)
    ]
    failing = [{**w, "checkout": figures(100, 50.0, errors=30)} for w in steady(rng, 3, search=40)]
    as_before = [{**w, "checkout": figures(100, 50.0, errors=2)} for w in steady(rng, 3, search=40)]

    shifts = shifted_operations(before, failing)

    assert named(shifts) == ["checkout"]
    assert shifts[0].changes == ("failing",) and shifts[0].slowdown == 1.0
    assert shifts[0].before_error_rate < 0.02 and shifts[0].after_error_rate == 0.3
    assert shifted_operations(before, as_before) == []


def test_a_few_errors_of_an_operation_that_never_failed_are_no_signal() -> None:
    rng = random.Random(8)
    before = steady(rng, 30, search=40.0)
    after = [{"search": figures(10, 40.0, errors=1 if i == 0 else 0)} for i in range(3)]

    assert shifted_operations(before, after) == []


def test_operations_are_ranked_by_how_far_they_moved_and_only_the_first_few_passed() -> None:
    rng = random.Random(9)
    slowdowns = {"a": 3.0, "b": 30.0, "c": 8.0, "d": 2.5, "e": 1.0}
    before = steady(rng, 30, jitter=0.05, **dict.fromkeys(slowdowns, 10.0))
    after = steady(rng, 3, jitter=0.05, **{k: 10.0 * v for k, v in slowdowns.items()})

    assert named(shifted_operations(before, after)) == ["b", "c", "a"][:PASSED]
    assert named(shifted_operations(before, after, limit=10)) == ["b", "c", "a", "d"]


def test_a_faster_operation_is_no_symptom() -> None:
    rng = random.Random(10)
    before = steady(rng, 30, search=40.0)
    after = steady(rng, 3, search=4.0)

    assert shifted_operations(before, after) == []


def test_an_operation_without_durations_is_judged_on_its_errors_alone() -> None:
    before = [{"publish": {"count": 20, "errors": 0, "total_ms": 0.0, "max_ms": 0.0}}] * 30
    after = [{"publish": {"count": 20, "errors": 8, "total_ms": 0.0, "max_ms": 0.0}}] * 3

    shifts = shifted_operations(before, after)

    assert named(shifts) == ["publish"] and shifts[0].changes == ("failing",)
    assert shifts[0].before_mean_ms is None and shifts[0].slowdown == 1.0


def test_without_healthy_windows_before_nothing_is_named() -> None:
    after = [{"search": figures(10, 900.0, errors=5)}] * 3

    assert shifted_operations([], after) == []


def test_the_baseline_is_the_last_healthy_windows_before_the_onset() -> None:
    onset = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)

    def row(minutes: int, mean_ms: float, anomalous: bool = False) -> WindowRow:
        start = onset + timedelta(minutes=minutes)
        return WindowRow(
            component="catalog",
            start=start,
            end=start + timedelta(minutes=1),
            anomalous=anomalous,
            operations={"item": figures(10, mean_ms)},
        )

    # Long ago the item page was slow too; just before the onset it was fast, except
    # while an earlier incident (flagged windows) made it as slow as now.
    windows = [row(m, 200.0) for m in range(-60, -40)]
    windows += [row(m, 20.0) for m in range(-40, -10)]
    windows += [row(m, 200.0, anomalous=True) for m in range(-10, 0)]
    windows += [row(m, 200.0) for m in range(3)]

    moved = operations_around(windows, onset, history=30)

    assert [(o["operation"], o["changes"], o["before_count"]) for o in moved] == [
        ("item", ["slower"], 300)
    ]
    # Reaching back to the old slow windows, 200 ms is within what the item page has done.
    assert operations_around(windows, onset, history=60) == []
