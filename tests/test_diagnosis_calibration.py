"""Calibrated confidence: a monotone map from softmax share to probability, fitted and measured."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from states.diagnose import calibration
from states.diagnose.commits import SuspectEvidence, rank_suspects
from states.git import Commit
from tests.test_suspect_ranking import commit


def test_the_shipped_map_is_monotone_in_the_share_and_stays_a_probability() -> None:
    shares = [i / 1000 for i in range(1001)]
    confidences = [calibration.confidence(p) for p in shares]
    assert calibration.SLOPE > 0
    assert all(0.0 <= c <= 1.0 for c in confidences)
    assert all(a <= b for a, b in itertools.pairwise(confidences))
    assert confidences[0] < 0.01 and confidences[-1] > 0.99


@pytest.mark.parametrize(("slope", "intercept"), [(0.5, -1.0), (2.0, 0.3), (1.0, 0.0)])
def test_any_positive_slope_keeps_the_order_of_suspects(slope: float, intercept: float) -> None:
    shares = sorted(random.Random(3).random() for _ in range(200))
    mapped = [calibration.confidence(p, slope, intercept) for p in shares]
    assert mapped == sorted(mapped)


def test_confidence_follows_the_suspects_ranking() -> None:
    evidence = SuspectEvidence(component_paths=("shop",), stack_files=frozenset({"shop/a.py"}))
    commits: list[Commit] = [
        commit("docs", "README.md"),
        commit("near", "shop/b.py"),
        commit("hit", "shop/a.py"),
    ]
    ranked = rank_suspects(commits, evidence)
    assert [s.commit.sha for s in ranked] == ["hit", "near", "docs"]
    assert ranked[0].confidence > ranked[1].confidence > ranked[2].confidence


def test_platt_fitting_recovers_the_map_that_generated_the_outcomes() -> None:
    rng = random.Random(7)
    shares = [rng.uniform(0.01, 0.99) for _ in range(4000)]
    truth = (0.6, -0.4)
    outcomes = [rng.random() < calibration.confidence(p, *truth) for p in shares]

    slope, intercept = calibration.fit_platt(shares, outcomes)

    assert slope == pytest.approx(truth[0], abs=0.08)
    assert intercept == pytest.approx(truth[1], abs=0.1)


def test_calibration_error_is_small_when_confidence_matches_accuracy() -> None:
    rng = random.Random(11)
    confidences = [rng.random() for _ in range(5000)]
    calibrated = [rng.random() < c for c in confidences]
    overconfident = [rng.random() < c / 2 for c in confidences]

    assert calibration.expected_calibration_error(confidences, calibrated) < 0.03
    assert calibration.expected_calibration_error(confidences, overconfident) > 0.2


def test_calibration_error_weighs_each_bin_by_its_size() -> None:
    # Bin 0.9-1.0: confidence 0.95, 3 of 4 right; bin 0.2-0.3: confidence 0.25, 0 of 1 right.
    confidences = [0.95, 0.95, 0.95, 0.95, 0.25]
    outcomes = [True, True, True, False, False]
    expected = (4 / 5) * abs(0.75 - 0.95) + (1 / 5) * abs(0.0 - 0.25)
    assert calibration.expected_calibration_error(confidences, outcomes) == pytest.approx(expected)
    assert calibration.expected_calibration_error([], []) == 0.0


def test_extreme_shares_map_to_finite_confidences() -> None:
    assert calibration.confidence(0.0) >= 0.0 and calibration.confidence(1.0) <= 1.0
    assert math.isfinite(calibration.logit(0.0)) and math.isfinite(calibration.logit(1.0))
    assert calibration.sigmoid(-1000.0) == 0.0 and calibration.sigmoid(1000.0) == 1.0
