"""Choosing whose code to diagnose: windows aligned, a call graph configured or learned, a choice.

Windows here are small stand-ins with the fields a stored window has; the
ranking itself is ``states.diagnose.components`` (tested on its own and on
PetShop), so these tests are about what the agent feeds it and how it chooses.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from states.diagnose.deviations import ComponentWindow
from states.diagnose.localization import (
    CallGraph,
    aligned_window,
    configured_graph,
    learned_graph,
    localize,
)

WINDOW_S = 60.0
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Window:
    """The figures of one stored window that the ranking reads."""

    start: datetime
    count: int
    error_rate: float
    p50: float | None
    p95: float | None
    p99: float | None


def windows(levels: list[float], skip: frozenset[int] = frozenset()) -> list[Window]:
    return [
        Window(T0 + timedelta(seconds=WINDOW_S * i), 50, 0.0, ms, ms * 1.5, ms * 2)
        for i, ms in enumerate(levels)
        if i not in skip
    ]


def front_and_dependency(
    rows: int = 40, onset: int = 34, shift: float = 100.0, seed: int = 3
) -> dict[str, list[Window]]:
    """``web`` calls ``catalog``; catalog slows down from ``onset`` and web with it."""
    rng = random.Random(seed)
    catalog = [60 + rng.gauss(0, 3) + (shift if i >= onset else 0.0) for i in range(rows)]
    web = [c + 20 + rng.gauss(0, 1) for c in catalog]
    other = [30 + rng.gauss(0, 2) for _ in range(rows)]
    return {"web": windows(web), "catalog": windows(catalog), "search": windows(other)}


def onset_at(row: int) -> datetime:
    return T0 + timedelta(seconds=WINDOW_S * row)


class TestAlignment:
    def test_every_component_is_laid_on_one_grid_with_gaps_left_empty(self) -> None:
        found = aligned_window(
            {"a": windows([10.0] * 8), "b": windows([5.0] * 8, skip=frozenset({2, 3}))},
            onset_at(6),
            WINDOW_S,
        )
        assert found is not None
        assert (found.onset, found.normal) == (6, (0, 1, 2, 3, 4, 5))
        p50 = found.series["b"]["latency/p50"]
        assert np.isnan(p50[2]) and np.isnan(p50[3]) and p50[4] == 5.0
        assert list(found.series["a"]["errors/rate"]) == [0.0] * 8

    def test_too_little_history_before_the_onset_is_no_window(self) -> None:
        assert aligned_window({"a": windows([10.0] * 8)}, onset_at(2), WINDOW_S) is None
        assert aligned_window({}, onset_at(2), WINDOW_S) is None


class TestLearnedGraph:
    def test_co_moving_components_are_linked_slower_calling_faster(self) -> None:
        window = aligned_window(front_and_dependency(), onset_at(34), WINDOW_S)
        assert window is not None
        graph = learned_graph(window, min_windows=20, min_correlation=0.8)
        assert graph.basis == "learned"
        assert [(e.caller, e.callee) for e in graph.edges] == [("web", "catalog")]
        assert graph.edges[0].correlation > 0.9
        assert graph.calls == {"web": ("catalog",)}

    def test_components_that_do_not_move_together_are_not_linked(self) -> None:
        rng = random.Random(9)
        series = {n: windows([50 + rng.gauss(0, 3) for _ in range(40)]) for n in ("a", "b")}
        window = aligned_window(series, onset_at(34), WINDOW_S)
        assert window is not None
        graph = learned_graph(window, min_windows=20, min_correlation=0.8)
        assert (graph.basis, graph.calls) == ("none", {})
        assert "moved together" in graph.note

    def test_too_few_shared_windows_are_named_as_the_reason(self) -> None:
        window = aligned_window(front_and_dependency(rows=12, onset=8), onset_at(8), WINDOW_S)
        assert window is not None
        graph = learned_graph(window, min_windows=20, min_correlation=0.8)
        assert graph.basis == "none"
        assert graph.note == "at most 12 windows shared by two components, 20 needed"

    def test_equally_fast_co_moving_components_are_not_given_a_direction(self) -> None:
        rng = random.Random(4)
        base = [50 + rng.gauss(0, 5) for _ in range(40)]
        window = aligned_window(
            {"a": windows(base), "b": windows([x + 0.01 for x in base])}, onset_at(34), WINDOW_S
        )
        assert window is not None
        graph = learned_graph(window, min_windows=20, min_correlation=0.8)
        assert graph.basis == "none"
        assert "neither of a pair was clearly slower" in graph.note


class TestChoice:
    @pytest.fixture
    def window(self) -> ComponentWindow:
        found = aligned_window(front_and_dependency(), onset_at(34), WINDOW_S)
        assert found is not None
        return found

    def test_the_dependency_that_explains_the_front_is_diagnosed(
        self, window: ComponentWindow
    ) -> None:
        graph = configured_graph({"web": ["catalog"], "catalog": [], "search": []})
        assert graph is not None and graph.basis == "configured"
        found = localize(window, "web", graph, frozenset({"web", "catalog"}))
        assert found.component == "catalog"
        assert found.ranked[0].component == "catalog"
        assert found.anomalous == {"web", "catalog"}
        assert "call graph configured ([components.<name>] calls): web -> catalog" in (
            found.explanation
        )
        assert found.explanation[-1] == (
            "diagnosing the code of catalog, the likely root cause, not the front web"
        )

    def test_a_cause_without_configured_paths_leaves_the_front_to_diagnose(
        self, window: ComponentWindow
    ) -> None:
        graph = CallGraph("configured", {"web": ("catalog",)})
        found = localize(window, "web", graph, frozenset({"web"}))
        assert found.component == "web"
        assert "catalog ranks above web but has no configured paths to diagnose" in (
            found.explanation
        )

    def test_without_a_graph_the_explanation_says_what_the_ranking_rests_on(
        self, window: ComponentWindow
    ) -> None:
        found = localize(window, "web", CallGraph("none", note="reason"), frozenset({"web"}))
        assert any(
            line.startswith("no call graph configured and none learned (reason)")
            and "own deviation and onset only" in line
            for line in found.explanation
        )

    def test_no_configured_calls_is_no_configured_graph(self) -> None:
        assert configured_graph({"web": [], "catalog": []}) is None
