"""Folding records into windows: nearest-rank quantiles, alignment, per-instance folds, health."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from states.telemetry import windows
from states.telemetry.records import Record, StackFrame
from states.telemetry.windows import fold, health_score, quantile, window_start

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def record(
    second: float,
    component: str = "api",
    *,
    instance: str | None = None,
    duration_ms: float | None = 10.0,
    status: int | None = 200,
    version: str | None = None,
    frames: tuple[StackFrame, ...] = (),
) -> Record:
    return Record(
        timestamp=T0 + timedelta(seconds=second),
        component=component,
        duration_ms=duration_ms,
        status=status,
        version=version,
        instance=instance,
        frames=frames,
    )


# --- quantiles ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("q", "expected"),
    [(0.5, 5.0), (0.9, 9.0), (0.95, 10.0), (0.99, 10.0), (0.1, 1.0), (0.0, 1.0), (1.0, 10.0)],
)
def test_nearest_rank_quantiles_of_one_to_ten(q: float, expected: float) -> None:
    samples = [7.0, 3.0, 10.0, 1.0, 5.0, 2.0, 9.0, 4.0, 8.0, 6.0]
    assert quantile(samples, q) == expected


def test_a_quantile_is_always_an_observed_sample() -> None:
    samples = [12.0, 480.0, 15.0, 13.0]
    # 0.95 x 4 = 3.8, rounded up to rank 4: the slowest request, not an interpolation.
    assert quantile(samples, 0.95) == 480.0
    assert quantile(samples, 0.5) == 13.0


def test_the_p95_of_twenty_samples_is_the_nineteenth() -> None:
    samples = [float(i) for i in range(1, 21)]
    assert quantile(samples, 0.95) == 19.0


def test_a_single_sample_is_every_quantile() -> None:
    assert [quantile([42.0], q) for q in (0.01, 0.5, 0.99)] == [42.0, 42.0, 42.0]


def test_no_samples_have_no_quantile() -> None:
    assert quantile([], 0.95) is None


# --- alignment -------------------------------------------------------------------------------------


def test_windows_are_aligned_to_the_epoch() -> None:
    moment = datetime(2026, 3, 1, 12, 0, 59, 999000, tzinfo=UTC)
    assert window_start(moment, 60) == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert window_start(moment + timedelta(milliseconds=1), 60) == datetime(
        2026, 3, 1, 12, 1, tzinfo=UTC
    )


def test_a_moment_on_a_boundary_starts_its_own_window() -> None:
    assert window_start(T0, 300) == T0
    assert window_start(T0 - timedelta(microseconds=1), 300) == T0 - timedelta(seconds=300)


def test_window_starts_are_utc_even_for_other_zones() -> None:
    paris = datetime(2026, 3, 1, 13, 0, 30, tzinfo=timezone(timedelta(hours=1)))
    start = window_start(paris, 60)
    assert start == T0
    assert start.tzinfo is UTC


def test_a_window_closes_after_its_width_plus_lateness() -> None:
    assert windows.closes_at(T0, 60, 10) == T0 + timedelta(seconds=70)


# --- folding ---------------------------------------------------------------------------------------------


def test_records_fold_into_windows_per_component() -> None:
    parts = fold(
        [record(1, duration_ms=5), record(61, duration_ms=7), record(2, "db", duration_ms=3)], 60
    )

    assert set(parts) == {
        ("api", "", T0),
        ("api", "", T0 + timedelta(seconds=60)),
        ("db", "", T0),
    }
    assert parts[("api", "", T0)].samples == [5.0]
    assert parts[("db", "", T0)].samples == [3.0]


def test_a_record_with_an_instance_counts_for_the_instance_and_for_all() -> None:
    parts = fold(
        [
            record(1, instance="a", status=500),
            record(2, instance="b"),
            record(3, instance="a"),
            record(4),
        ],
        60,
    )

    assert set(parts) == {("api", "", T0), ("api", "a", T0), ("api", "b", T0)}
    together, a, b = parts[("api", "", T0)], parts[("api", "a", T0)], parts[("api", "b", T0)]
    assert (together.count, together.errors) == (4, 1)
    assert (a.count, a.errors) == (2, 1)
    assert (b.count, b.errors) == (1, 0)


def test_untimed_events_count_but_add_no_latency_sample() -> None:
    [part] = fold([record(1, duration_ms=None, status=None), record(2, duration_ms=8)], 60).values()
    assert part.count == 2
    assert part.samples == [8.0]


def test_versions_are_counted_and_frames_kept_once() -> None:
    frame = StackFrame("shop/catalog.py", 12, "search")
    parts = fold(
        [
            record(1, version="abc1234", frames=(frame,)),
            record(2, version="abc1234", frames=(frame,)),
            record(3, version="def5678"),
        ],
        60,
    )
    part = parts[("api", "", T0)]
    assert dict(part.versions) == {"abc1234": 2, "def5678": 1}
    assert part.frames == [["shop/catalog.py", 12, "search"]]


def test_at_most_max_frames_distinct_frames_are_kept() -> None:
    frames = tuple(StackFrame("f.py", i, "g") for i in range(windows.MAX_FRAMES + 5))
    [part] = fold([record(1, frames=frames)], 60).values()
    assert len(part.frames) == windows.MAX_FRAMES
    assert part.frames[0] == ["f.py", 0, "g"]


# --- health score ---------------------------------------------------------------------------------------


def test_health_of_twice_the_objective_with_ten_percent_errors_is_45() -> None:
    assert health_score(0.10, p95_ms=400.0, slo_p95_ms=200.0) == 45.0


def test_health_within_the_objective_depends_on_errors_alone() -> None:
    assert health_score(0.0, p95_ms=150.0, slo_p95_ms=200.0) == 100.0
    assert health_score(0.25, p95_ms=150.0, slo_p95_ms=200.0) == 75.0


def test_health_without_an_objective_or_timings_uses_the_error_rate() -> None:
    assert health_score(0.02, p95_ms=9_999.0, slo_p95_ms=None) == 98.0
    assert health_score(0.02, p95_ms=None, slo_p95_ms=200.0) == 98.0


def test_health_is_rounded_to_two_decimals() -> None:
    # 100 x 1 x 200/300 = 66.666...
    assert health_score(0.0, p95_ms=300.0, slo_p95_ms=200.0) == 66.67


def test_every_request_failing_scores_zero() -> None:
    assert health_score(1.0, p95_ms=50.0, slo_p95_ms=200.0) == 0.0
