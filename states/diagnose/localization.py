"""Which component's code to diagnose: the anomalous components of an incident, cause first.

A front component that is slow because a dependency is slow is a victim:
reverting its own commits fixes nothing. So before the code is read, every
component's windows around the onset are aligned and ranked with the same
ranking the PetShop benchmark measures (``states.diagnose.components``), and
the code diagnosed is that of the highest-ranked anomalous component whose
source paths are known.

The ranking needs to know who calls whom. A graph configured with
``[components.<name>] calls = [...]`` is used as written. Without one, it is
learned from co-movement: two components whose per-window latency rises and
falls together over the recorded windows (the incident included: a
dependency's regression shows in its callers) are linked, the slower calling
the faster, since a caller's latency contains its callee's. With too little
history or nothing moving together there is no graph, and the explanation
says that the ranking rests on each component's own deviation and onset.
Both are poor stand-ins for the real graph (on PetShop the cause ranks first
in 35-60 % of issues with a learned graph, 35-46 % with none, 90-98 % with the
real one; ``benchmarks/petshop.py``), which is why the explanation says which
was used.

Everything here is pure: windows in, ranking and explanation out.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import numpy as np

from states.diagnose.callgraph import Graph
from states.diagnose.components import RankedComponent, RankingSettings, rank_components
from states.diagnose.deviations import ComponentWindow, DeviationSettings, FloatArray, all_shifts

# Rises hurt in every metric a window keeps. The absolute floor keeps a spread
# of at least 0.01 (ms of latency, or one point in a hundred of error rate):
# an error rate that is 0 in every healthy window has no spread of its own.
SYMPTOMS: Mapping[str, float] = {
    "latency/p50": 1.0,
    "latency/p95": 1.0,
    "latency/p99": 1.0,
    "errors/rate": 1.0,
}
RANKING = RankingSettings(deviation=DeviationSettings(directions=SYMPTOMS, absolute_floor=0.01))
COMOVEMENT_METRIC = "latency/p50"
MIN_NORMAL_ROWS = 4  # fewer healthy rows before onset: no normal to measure shifts against
LEVEL_MARGIN = 1.01  # a caller answers at least this much slower than its callee to be told apart


class WindowFigures(Protocol):
    """The part of a stored window the ranking reads."""

    @property
    def start(self) -> datetime: ...
    @property
    def count(self) -> int: ...
    @property
    def error_rate(self) -> float: ...
    @property
    def p50(self) -> float | None: ...
    @property
    def p95(self) -> float | None: ...
    @property
    def p99(self) -> float | None: ...


@dataclass(frozen=True)
class Edge:
    """A call learned from co-movement, with the correlation that suggested it."""

    caller: str
    callee: str
    correlation: float


@dataclass(frozen=True)
class CallGraph:
    """Caller -> callees, and how it is known: ``configured``, ``learned`` or ``none``."""

    basis: str
    calls: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    edges: tuple[Edge, ...] = ()
    note: str = ""


def aligned_window(
    windows: Mapping[str, Sequence[WindowFigures]], onset: datetime, window_s: float
) -> ComponentWindow | None:
    """Every component's metrics on one grid of window starts; None without enough history.

    Rows before ``onset`` are the normal period, the rest the incident.
    """
    starts = sorted({w.start for rows in windows.values() for w in rows})
    if not starts:
        return None
    step = timedelta(seconds=window_s)
    grid = [starts[0] + step * i for i in range(int((starts[-1] - starts[0]) / step) + 1)]
    first = next((i for i, t in enumerate(grid) if t >= onset), None)
    if first is None or first < MIN_NORMAL_ROWS:
        return None
    index = {t: i for i, t in enumerate(grid)}
    series = {name: _metrics(rows, index, len(grid)) for name, rows in windows.items() if rows}
    return ComponentWindow(series, tuple(range(first)), first)


def _metrics(
    rows: Sequence[WindowFigures], index: Mapping[datetime, int], length: int
) -> dict[str, FloatArray]:
    found = {metric: np.full(length, np.nan) for metric in SYMPTOMS}
    for w in rows:
        i = index.get(w.start)
        if i is None or w.count <= 0:
            continue
        for metric, value in (
            ("latency/p50", w.p50),
            ("latency/p95", w.p95),
            ("latency/p99", w.p99),
            ("errors/rate", w.error_rate),
        ):
            if value is not None:
                found[metric][i] = float(value)
    return found


def configured_graph(calls: Mapping[str, Sequence[str]]) -> CallGraph | None:
    """The configured ``calls`` lists as a graph, or None when no component has one."""
    graph = {caller: tuple(callees) for caller, callees in calls.items() if callees}
    return CallGraph("configured", graph) if graph else None


def learned_graph(window: ComponentWindow, min_windows: int, min_correlation: float) -> CallGraph:
    """Calls suggested by latency moving together, the slower component calling the faster."""
    series = {
        name: metrics[COMOVEMENT_METRIC]
        for name, metrics in window.series.items()
        if COMOVEMENT_METRIC in metrics
    }
    edges: list[Edge] = []
    shared_most, undirected = 0, 0
    for a, b in itertools.combinations(sorted(series), 2):
        both = np.isfinite(series[a]) & np.isfinite(series[b])
        shared_most = max(shared_most, int(both.sum()))
        if both.sum() < min_windows:
            continue
        r = _correlation(series[a][both], series[b][both])
        edge = _directed(a, b, r, window, series) if r >= min_correlation else None
        undirected += edge is None and r >= min_correlation
        if edge is not None:
            edges.append(edge)
    calls: dict[str, tuple[str, ...]] = {}
    for e in edges:
        calls[e.caller] = (*calls.get(e.caller, ()), e.callee)
    if edges:
        return CallGraph("learned", calls, tuple(edges))
    return CallGraph(
        "none", note=_no_graph_note(shared_most, undirected, min_windows, min_correlation)
    )


def _no_graph_note(
    shared_most: int, undirected: int, min_windows: int, min_correlation: float
) -> str:
    if shared_most < min_windows:
        return f"at most {shared_most} windows shared by two components, {min_windows} needed"
    if undirected:
        return f"{undirected} pair(s) moved together, but neither of a pair was clearly slower"
    return f"no two components' latency moved together (correlation >= {min_correlation})"


def _correlation(x: FloatArray, y: FloatArray) -> float:
    if float(np.std(x)) == 0.0 or float(np.std(y)) == 0.0:
        return 0.0
    return float(np.corrcoef(x, y)[0, 1])


def _directed(
    a: str, b: str, r: float, window: ComponentWindow, series: Mapping[str, FloatArray]
) -> Edge | None:
    """The edge between two co-moving components, or None when neither is clearly slower."""
    normal = list(window.normal)
    level = {n: float(np.nanmedian(series[n][normal])) for n in (a, b)}
    if not all(np.isfinite(v) for v in level.values()):
        return None
    slow, fast = (a, b) if level[a] >= level[b] else (b, a)
    if level[slow] < level[fast] * LEVEL_MARGIN:
        return None
    return Edge(slow, fast, round(r, 3))


@dataclass(frozen=True)
class Localization:
    """The ranked components, the one whose code to diagnose, and why."""

    ranked: tuple[RankedComponent, ...]
    anomalous: frozenset[str]
    component: str
    explanation: tuple[str, ...]


def localize(
    window: ComponentWindow, front: str, graph: CallGraph, has_paths: frozenset[str]
) -> Localization:
    """Rank the window's components and choose the one to diagnose (else the front)."""
    calls: Graph | None = graph.calls if graph.basis != "none" else None
    ranked = tuple(rank_components(window, front, RANKING, calls))
    shifts = all_shifts(window, RANKING.deviation)
    threshold = RANKING.deviation.threshold
    anomalous = frozenset(
        name for name, s in shifts.items() if any(m.z >= threshold for m in s.values())
    )
    candidates = [r.component for r in ranked if r.component in anomalous]
    usable = [c for c in candidates if c == front or c in has_paths]
    chosen = usable[0] if usable else front
    lines = [_anomalous_line(ranked, anomalous, shifts), _graph_line(graph)]
    lines += [f"ranked: {_ranked_line(r)}" for r in ranked if r.component in anomalous]
    lines += _choice_lines(front, chosen, candidates, has_paths)
    return Localization(ranked, anomalous, chosen, tuple(lines))


def _anomalous_line(
    ranked: Sequence[RankedComponent], anomalous: frozenset[str], shifts: Mapping[str, object]
) -> str:
    named = ", ".join(r.component for r in ranked if r.component in anomalous) or "none"
    return f"{len(shifts)} component(s) in the incident's windows, anomalous: {named}"


def _graph_line(graph: CallGraph) -> str:
    if graph.basis == "configured":
        shown = "; ".join(f"{a} -> {', '.join(b)}" for a, b in sorted(graph.calls.items()))
        return f"call graph configured ([components.<name>] calls): {shown}"
    if graph.basis == "learned":
        shown = "; ".join(f"{e.caller} -> {e.callee} (r={e.correlation})" for e in graph.edges)
        return (
            f"call graph learned from co-movement of per-window p50 latency: {shown} "
            "(configure [components.<name>] calls to rank on the real one)"
        )
    return (
        f"no call graph configured and none learned ({graph.note}): components ranked by "
        "their own deviation and onset only, so a victim may outrank its cause"
    )


def _ranked_line(r: RankedComponent) -> str:
    parts = ", ".join(f"{k} {v:+.2f}" for k, v in r.explanation.items())
    return f"{r.component} score {r.score:.2f} on {r.metric} ({parts})"


def _choice_lines(
    front: str, chosen: str, candidates: Sequence[str], has_paths: frozenset[str]
) -> list[str]:
    lines = [
        f"{c} ranks above {chosen} but has no configured paths to diagnose"
        for c in candidates[: candidates.index(chosen) if chosen in candidates else 0]
    ]
    if chosen != front:
        lines.append(
            f"diagnosing the code of {chosen}, the likely root cause, not the front {front}"
        )
    else:
        lines.append(f"diagnosing the code of the front component {front}")
    return lines
