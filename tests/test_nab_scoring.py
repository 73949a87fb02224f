"""NAB scoring: windows, probation, sigmoid weighting, profiles and threshold choice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from benchmarks import nab_scoring
from benchmarks.nab_scoring import PROFILES, LabelledSeries

ROWS = 1000
# Probation is 15% of 1000 rows = 150; windows lie after it.
WINDOWS = [(300, 399), (700, 799)]


def series(detections: dict[int, float], name: str = "file", rows: int = ROWS) -> LabelledSeries:
    """A file whose scores are zero except at ``detections`` (row -> score)."""
    scores = [detections.get(i, 0.0) for i in range(rows)]
    return LabelledSeries(name, scores, WINDOWS)


def perfect(name: str = "file") -> LabelledSeries:
    """Detects every window at its first row and nothing else."""
    return series({first: 1.0 for first, _ in WINDOWS}, name)


def corpus(detections: dict[int, float]) -> list[LabelledSeries]:
    """Two files: one with ``detections``, one perfect, so thresholds are corpus-wide."""
    return [series(detections, "a"), perfect("b")]


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_null_detector_scores_zero_in_every_profile(profile: nab_scoring.CostProfile) -> None:
    null = [LabelledSeries(n, [0.5] * ROWS, WINDOWS) for n in ("a", "b")]
    assert nab_scoring.score_profile(null, profile).normalized == pytest.approx(0.0)


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_perfect_detector_scores_hundred_in_every_profile(
    profile: nab_scoring.CostProfile,
) -> None:
    result = nab_scoring.score_profile([perfect("a"), perfect("b")], profile)
    assert result.normalized == pytest.approx(100.0)


def test_null_score_is_minus_fn_weight_per_window() -> None:
    null = [LabelledSeries("a", [0.5] * ROWS, WINDOWS)]
    results = nab_scoring.score_corpus(null)
    assert [r.null for r in results] == [-2.0, -2.0, -4.0]


def test_earlier_detection_in_a_window_scores_more_than_a_later_one() -> None:
    standard = PROFILES[0]
    early = nab_scoring.score_at_threshold([series({310: 1.0})], standard, 0.5)
    late = nab_scoring.score_at_threshold([series({390: 1.0})], standard, 0.5)
    assert early > late


def test_detection_at_a_window_left_edge_earns_the_full_tp_weight() -> None:
    standard = PROFILES[0]
    hit = nab_scoring.score_at_threshold([series({300: 1.0})], standard, 0.5)
    assert hit == pytest.approx(standard.tp_weight - standard.fn_weight)


def test_only_the_earliest_detection_in_a_window_counts() -> None:
    standard = PROFILES[0]
    once = nab_scoring.score_at_threshold([series({310: 1.0})], standard, 0.5)
    twice = nab_scoring.score_at_threshold([series({310: 1.0, 350: 1.0})], standard, 0.5)
    assert once == twice


def test_a_false_positive_lowers_the_score() -> None:
    standard = PROFILES[0]
    clean = nab_scoring.score_at_threshold([perfect()], standard, 0.5)
    noisy = nab_scoring.score_at_threshold([series({300: 1.0, 700: 1.0, 200: 1.0})], standard, 0.5)
    assert noisy == pytest.approx(clean - standard.fp_weight)


def test_a_false_positive_just_after_a_window_costs_less_than_one_far_away() -> None:
    standard = PROFILES[0]
    near = nab_scoring.score_at_threshold([series({401: 1.0})], standard, 0.5)
    far = nab_scoring.score_at_threshold([series({600: 1.0})], standard, 0.5)
    assert far < near < nab_scoring.score_at_threshold([series({})], standard, 0.5)


def test_low_fp_profile_charges_false_positives_double() -> None:
    standard, low_fp, _ = PROFILES
    base = [perfect()]
    noisy = [series({300: 1.0, 700: 1.0, 200: 1.0})]
    cost = nab_scoring.score_at_threshold(base, standard, 0.5) - nab_scoring.score_at_threshold(
        noisy, standard, 0.5
    )
    cost_low_fp = nab_scoring.score_at_threshold(
        base, low_fp, 0.5
    ) - nab_scoring.score_at_threshold(noisy, low_fp, 0.5)
    assert cost_low_fp == pytest.approx(2 * cost)


def test_probation_rows_are_not_scored() -> None:
    standard = PROFILES[0]
    in_probation = nab_scoring.score_at_threshold([series({100: 1.0})], standard, 0.5)
    nothing = nab_scoring.score_at_threshold([series({})], standard, 0.5)
    assert in_probation == nothing
    assert nab_scoring.probation_length(ROWS) == 150


def test_probation_is_capped_at_750_rows() -> None:
    assert nab_scoring.probation_length(20_000) == 750


def test_threshold_optimization_picks_the_best_threshold() -> None:
    standard = PROFILES[0]
    # 0.9 detects both windows; 0.4 adds two false positives; 0.95 detects only one window.
    files = [series({300: 0.95, 700: 0.9, 200: 0.4, 500: 0.4})]
    best = nab_scoring.optimize_threshold(files, standard)
    assert best.threshold == 0.9
    for threshold in (0.95, 0.9, 0.4):
        assert nab_scoring.score_at_threshold(files, standard, threshold) <= best.score
    assert best.score == pytest.approx(nab_scoring.score_at_threshold(files, standard, 0.9))


def test_sweep_scores_match_scoring_at_each_threshold() -> None:
    standard = PROFILES[0]
    files = corpus({310: 0.8, 200: 0.6, 720: 0.3, 900: 0.7})
    points = [p for f in files for p in nab_scoring.sweep_points(f, standard)]
    for candidate in nab_scoring.scores_by_threshold(points, standard):
        expected = nab_scoring.score_at_threshold(files, standard, candidate.threshold)
        assert candidate.score == pytest.approx(expected)


def test_window_rows_map_timestamps_to_inclusive_rows() -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    times = [start + timedelta(minutes=5 * i) for i in range(10)]
    rows = nab_scoring.window_rows(times, [(times[2], times[5])])
    assert rows == [(2, 5)]
