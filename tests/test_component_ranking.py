"""Component root-cause ranking on small generated services, and the benchmark's yardsticks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pytest

from benchmarks.petshop import (
    accuracy_at,
    average_at,
    nsigma_scores,
    traversal_ranking,
)
from states.diagnose.components import RankingSettings, rank_components
from states.diagnose.deviations import ComponentWindow, DeviationSettings, FloatArray

ROWS = 60
ONSET = 50
LATENCY = "latency/Average"
AVAILABILITY = "availability/Average"
SETTINGS = RankingSettings(DeviationSettings(directions={LATENCY: 1.0, AVAILABILITY: -1.0}))

# front -> api -> db, front -> cache, api -> queue
GRAPH: dict[str, list[str]] = {
    "front": ["api", "cache"],
    "api": ["db", "queue"],
    "db": [],
    "cache": [],
    "queue": [],
}
OWN_LATENCY = {"front": 0.05, "api": 0.03, "db": 0.01, "cache": 0.002, "queue": 0.004}


def callees_first(graph: Mapping[str, Sequence[str]]) -> list[str]:
    """Components ordered so every callee comes before its callers."""
    ordered: list[str] = []

    def visit(name: str) -> None:
        if name not in ordered:
            for callee in graph.get(name, ()):
                visit(callee)
            ordered.append(name)

    for name in graph:
        visit(name)
    return ordered


def simulate(
    faults: Mapping[str, tuple[int, float]], seed: int = 7
) -> dict[str, dict[str, FloatArray]]:
    """Latency that adds up along calls; ``faults``: component -> (first row, extra seconds)."""
    rng = np.random.default_rng(seed)
    latency: dict[str, FloatArray] = {}
    for name in callees_first(GRAPH):
        own = OWN_LATENCY[name] * (1.0 + 0.05 * rng.standard_normal(ROWS))
        if name in faults:
            start, extra = faults[name]
            own[start:] += extra
        latency[name] = own + sum((latency[c] for c in GRAPH[name]), np.zeros(ROWS))
    return {
        name: {LATENCY: values, AVAILABILITY: 100.0 - 0.01 * rng.random(ROWS)}
        for name, values in latency.items()
    }


def window_of(series: dict[str, dict[str, FloatArray]]) -> ComponentWindow:
    return ComponentWindow(series=series, normal=tuple(range(ONSET)), onset=ONSET)


def names(window: ComponentWindow, graph: Mapping[str, Sequence[str]] | None = GRAPH) -> list[str]:
    return [r.component for r in rank_components(window, "front", SETTINGS, graph)]


class TestPropagatedFaults:
    def test_fault_in_a_leaf_ranks_the_leaf_first_although_its_callers_are_anomalous_too(
        self,
    ) -> None:
        window = window_of(simulate({"db": (ONSET, 0.2)}))
        ranked = rank_components(window, "front", SETTINGS, GRAPH)
        assert ranked[0].component == "db"
        assert ranked[0].metric == LATENCY
        deviation = {r.component: r.explanation["deviation"] for r in ranked}
        threshold_size = float(np.log1p(SETTINGS.deviation.threshold))
        assert deviation["api"] > threshold_size
        assert deviation["front"] > threshold_size

    def test_callers_of_the_faulty_leaf_are_explained_by_it(self) -> None:
        ranked = rank_components(
            window_of(simulate({"db": (ONSET, 0.2)})), "front", SETTINGS, GRAPH
        )
        explanation = {r.component: r.explanation for r in ranked}
        assert explanation["api"]["dependencies"] < -0.5 * explanation["api"]["deviation"]
        assert explanation["db"]["dependencies"] == 0.0

    def test_fault_in_a_middle_component_ranks_it_above_its_callers_and_callees(self) -> None:
        ranked = rank_components(
            window_of(simulate({"api": (ONSET, 0.2)})), "front", SETTINGS, GRAPH
        )
        assert ranked[0].component == "api"
        front = next(r for r in ranked if r.component == "front")
        assert front.explanation["dependencies"] < -0.5 * front.explanation["deviation"]

    def test_without_a_graph_the_largest_relative_move_leads(self) -> None:
        ranking = names(window_of(simulate({"db": (ONSET, 0.2)})), graph=None)
        assert ranking[0] == "db"


class TestRemoteViews:
    def test_a_leaf_that_only_views_a_sick_service_is_explained_by_it(self) -> None:
        # "balancer" is a leaf the front calls; its latency wraps "api", which the graph
        # does not say.  A fault in db makes api, balancer and front slow.
        graph = {**GRAPH, "front": ["api", "cache", "balancer"], "balancer": []}
        series = simulate({"db": (ONSET, 0.2)})
        noise = 1.0 + 0.01 * np.random.default_rng(3).standard_normal(ROWS)
        series["balancer"] = {LATENCY: (series["api"][LATENCY] + 0.01) * noise}
        ranked = rank_components(window_of(series), "front", SETTINGS, graph)
        explanation = {r.component: r.explanation for r in ranked}
        assert ranked[0].component == "db"
        assert explanation["balancer"]["dependencies"] == -explanation["balancer"]["deviation"]

    def test_without_the_rule_the_same_leaf_is_not_explained(self) -> None:
        graph = {**GRAPH, "front": ["api", "cache", "balancer"], "balancer": []}
        series = simulate({"db": (ONSET, 0.2)})
        series["balancer"] = {LATENCY: series["api"][LATENCY] + 0.01}
        strict = RankingSettings(SETTINGS.deviation, leaves_may_hide_services=False)
        ranked = rank_components(window_of(series), "front", strict, graph)
        balancer = next(r for r in ranked if r.component == "balancer")
        assert balancer.explanation["dependencies"] == 0.0


class TestHealthyService:
    def test_nothing_scores_as_anomalous_when_nothing_broke(self) -> None:
        ranked = rank_components(window_of(simulate({})), "front", SETTINGS, GRAPH)
        threshold_size = float(np.log1p(SETTINGS.deviation.threshold))
        assert all(r.explanation["deviation"] < threshold_size for r in ranked)

    def test_a_fault_scores_far_above_any_healthy_ranking(self) -> None:
        healthy = rank_components(window_of(simulate({})), "front", SETTINGS, GRAPH)
        broken = rank_components(
            window_of(simulate({"db": (ONSET, 0.2)})), "front", SETTINGS, GRAPH
        )
        assert broken[0].score > healthy[0].score + 1.0


class TestOnsetOrder:
    @pytest.mark.parametrize(("early", "late"), [("cache", "queue"), ("queue", "cache")])
    def test_of_two_equal_faults_the_one_that_broke_first_ranks_first(
        self, early: str, late: str
    ) -> None:
        faults = {early: (ONSET - 1, 0.05), late: (ONSET, 0.05)}
        ranked = rank_components(window_of(simulate(faults)), "front", SETTINGS, GRAPH)
        ranking = [r.component for r in ranked]
        assert ranking.index(early) < ranking.index(late)
        onset = {r.component: r.explanation["onset"] for r in ranked}
        assert onset[early] > onset[late]

    def test_breaking_after_the_front_costs_the_onset_weight_per_row(self) -> None:
        faults = {"cache": (ONSET, 0.05), "queue": (ONSET + 2, 0.05)}
        ranked = rank_components(window_of(simulate(faults)), "front", SETTINGS, GRAPH)
        onset = {r.component: r.explanation["onset"] for r in ranked}
        assert onset["cache"] == 0.0
        assert onset["queue"] == pytest.approx(-2 * SETTINGS.onset_weight)


class TestExplanation:
    def test_explanation_names_every_feature_and_sums_to_the_score(self) -> None:
        ranked = rank_components(
            window_of(simulate({"db": (ONSET, 0.2)})), "front", SETTINGS, GRAPH
        )
        for suspect in ranked:
            assert set(suspect.explanation) == {"deviation", "onset", "dependencies", "path"}
            assert suspect.score == pytest.approx(sum(suspect.explanation.values()))

    def test_without_a_graph_no_graph_features_are_claimed(self) -> None:
        ranked = rank_components(window_of(simulate({"db": (ONSET, 0.2)})), "front", SETTINGS)
        assert set(ranked[0].explanation) == {"deviation", "onset"}

    def test_components_off_the_anomalous_chain_pay_the_path_penalty(self) -> None:
        series = simulate({"db": (ONSET, 0.2)})
        series["orphan"] = {LATENCY: series["queue"][LATENCY] * 0 + 0.01}
        series["orphan"][LATENCY][ONSET:] = 1.0
        ranked = rank_components(window_of(series), "front", SETTINGS, GRAPH)
        explanation = {r.component: r.explanation for r in ranked}
        assert explanation["orphan"]["path"] == -SETTINGS.path_penalty
        assert explanation["db"]["path"] == 0.0


class TestWindowValidation:
    def test_arrays_of_different_lengths_are_refused(self) -> None:
        with pytest.raises(ValueError, match="share one length"):
            ComponentWindow({"a": {LATENCY: np.zeros(3)}, "b": {LATENCY: np.zeros(4)}}, (0,), 1)

    def test_normal_rows_after_the_onset_are_refused(self) -> None:
        with pytest.raises(ValueError, match="before the onset"):
            ComponentWindow({"a": {LATENCY: np.zeros(4)}}, (0, 3), 2)


class TestNSigmaBaseline:
    def test_scores_the_largest_absolute_z_after_the_onset(self) -> None:
        # normal 1, 3 -> mean 2, std 1; after the onset 2, 6 -> largest |z| is 4
        # normal 10, 10 -> std 0 floored; the flat component stays at 0
        window = ComponentWindow(
            series={
                "a": {LATENCY: np.array([1.0, 3.0, 2.0, 6.0])},
                "b": {LATENCY: np.array([10.0, 10.0, 10.0, 10.0])},
                "c": {LATENCY: np.array([5.0, 7.0, 3.0, 6.0])},
            },
            normal=(0, 1),
            onset=2,
        )
        scores = nsigma_scores(window, {LATENCY: 1.0})
        assert scores == pytest.approx({"a": 4.0, "b": 0.0, "c": 3.0})

    def test_traversal_prefers_the_deepest_anomalous_callee(self) -> None:
        scores = {"front": 9.0, "api": 8.0, "db": 5.0, "cache": 7.0, "queue": 1.0}
        ranking = traversal_ranking(scores, "front", GRAPH, threshold=3.0)
        assert ranking[:3] == ["db", "cache", "api"]


class TestAccuracyMetrics:
    RANKINGS = (["a", "b", "c"], ["b", "a", "c"], ["c", "b", "a"], ["a", "c", "b"])
    TRUTHS = ("a", "a", "a", "d")

    def test_accuracy_at_k_counts_truths_within_the_first_k(self) -> None:
        assert accuracy_at(self.RANKINGS, self.TRUTHS, 1) == 0.25
        assert accuracy_at(self.RANKINGS, self.TRUTHS, 2) == 0.5
        assert accuracy_at(self.RANKINGS, self.TRUTHS, 3) == 0.75

    def test_average_at_k_is_the_mean_of_the_first_k_accuracies(self) -> None:
        assert average_at(self.RANKINGS, self.TRUTHS, 3) == pytest.approx((0.25 + 0.5 + 0.75) / 3)
        assert average_at(self.RANKINGS, self.TRUTHS, 5) == pytest.approx(
            (0.25 + 0.5 + 0.75 + 0.75 + 0.75) / 5
        )
