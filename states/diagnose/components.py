"""Rank the components most likely to have caused an anomaly seen at a front component.

A slow or failing dependency makes every caller above it slow or failing too,
so the loudest component is often a victim.  The cause is the component that
moved most against its own normal, in the kind of metric the front is
suffering from, whose move its callees cannot account for, that broke no later
than the front, and from which an unbroken chain of anomalous callers leads
up to the front.  A leaf of the graph that is only a remote view of an
anomalous service (a load balancer in front of it) counts as that service's
victim.  Each of these is one named feature; the score is their sum,
and the explanation keeps every contribution so an operator can see why a
component was blamed.

No labels are used: everything comes from each component's deviation against
its own normal period (``states.diagnose.deviations``) and the call graph.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from states.diagnose.callgraph import Callees, Graph, ancestors_of, callee_map, observed_callees
from states.diagnose.deviations import (
    ComponentWindow,
    DeviationSettings,
    MetricShift,
    all_shifts,
)

Shifts = Mapping[str, Mapping[str, MetricShift]]


@dataclass(frozen=True)
class RankingSettings:
    """Weights of the ranking features, one configuration for every service.

    ``off_family_weight`` scales symptoms in another kind of metric than the
    front's (a latency jump cannot explain failing requests at the front);
    ``dependency_weight`` of 1 removes the share of a component's shift that
    its worst callee accounts for; ``onset_weight`` is the bonus per row the
    component broke before the front (capped at ``onset_cap`` rows);
    ``path_penalty`` applies, when a graph is known, to components with no
    chain of anomalous callers up to the front.
    """

    deviation: DeviationSettings
    off_family_weight: float = 0.5
    dependency_weight: float = 1.0
    onset_weight: float = 0.5
    onset_cap: int = 2
    path_penalty: float = 1.0
    leaves_may_hide_services: bool = True


@dataclass(frozen=True)
class RankedComponent:
    """One suspect: its name, score, the metric that moved, and the named contributions."""

    component: str
    score: float
    metric: str
    explanation: Mapping[str, float] = field(default_factory=dict)


def metric_family(metric: str) -> str:
    """``latency/p90`` -> ``latency``: statistics of one quantity form a family."""
    return metric.split("/", 1)[0]


def front_family(front: Mapping[str, MetricShift], threshold: float) -> str | None:
    """The kind of metric the front suffers most in, if it suffers at all."""
    worst = max(front.values(), key=lambda s: s.z, default=None)
    return metric_family(worst.metric) if worst is not None and worst.z >= threshold else None


def relevance(metric: str, family: str | None, settings: RankingSettings) -> float:
    """Weight of a symptom: full in the front's family, reduced outside it."""
    return 1.0 if family is None or metric_family(metric) == family else settings.off_family_weight


def strongest(
    shifts: Mapping[str, MetricShift], family: str | None, settings: RankingSettings
) -> MetricShift | None:
    """The component's most relevant shift, weighted by relevance to the front."""
    return max(
        shifts.values(), key=lambda s: s.z * relevance(s.metric, family, settings), default=None
    )


def hidden_callees(
    component: str, own: MetricShift, callees: Callees, shifts: Shifts, threshold: float
) -> frozenset[str]:
    """Services a leaf of the graph may be a remote view of.

    Call graphs end in endpoints seen only from the caller's side (a load
    balancer, a proxy): their latency contains the service behind them,
    which the graph does not link.  A leaf is taken to front any service (a
    component with callees of its own) that does not call it, normally
    answers no slower than it, and is anomalous in the same kind of metric.
    """
    if callees.get(component):
        return frozenset()
    above = ancestors_of(component, callees)
    family = metric_family(own.metric)
    return frozenset(
        name
        for name, metrics in shifts.items()
        if name != component and name not in above and callees.get(name)
        for same in [metrics.get(own.metric)]
        if same is not None
        and same.level <= own.level
        and any(s.z >= threshold for m, s in metrics.items() if metric_family(m) == family)
    )


def explained_share(
    own: MetricShift, below: Iterable[str], shifts: Shifts, threshold: float
) -> float:
    """Largest share of the component's own move that one anomalous callee also made.

    Latency adds up along a call and failures travel up it, so a callee whose
    same metric rose by as much (in the metric's own units) accounts for the
    caller's rise; a callee that barely moved accounts for nothing.
    """
    if own.delta <= 0.0:
        return 0.0
    shares = [
        min(1.0, callee.delta / own.delta)
        for name in below
        for callee in [shifts[name].get(own.metric)]
        if callee is not None and callee.z >= threshold
    ]
    return max(shares, default=0.0)


def anomalous(shifts: Mapping[str, MetricShift], threshold: float) -> bool:
    """Whether any symptom metric of a component crossed the threshold."""
    return any(s.z >= threshold for s in shifts.values())


def connected_to_front(
    front: str, callees: Callees, shifts: Shifts, threshold: float
) -> frozenset[str]:
    """Components reachable from the front through callers that are anomalous or unobserved.

    A fault reaches the front only through components it made anomalous, so
    the end of such a chain is where a cause can sit; the chain itself may
    end at a healthy component (the cause need not be loud).
    """
    reached = {front}
    stack = [front]
    while stack:
        caller = stack.pop()
        passable = caller == front or not shifts.get(caller) or anomalous(shifts[caller], threshold)
        if not passable:
            continue
        for callee in callees.get(caller, frozenset()):
            if callee not in reached:
                reached.add(callee)
                stack.append(callee)
    return frozenset(reached)


def onset_feature(own: MetricShift | None, front_onset: int, settings: RankingSettings) -> float:
    """Bonus for breaking before the front, penalty for breaking after it."""
    if own is None or own.onset is None:
        return 0.0
    lead = float(np.clip(front_onset - own.onset, -settings.onset_cap, settings.onset_cap))
    return settings.onset_weight * lead


@dataclass(frozen=True)
class Context:
    """What every component's explanation is measured against."""

    shifts: Shifts
    family: str | None
    front_onset: int
    callees: Callees | None
    connected: frozenset[str]
    observed: frozenset[str]


def dependency_share(
    component: str,
    own: MetricShift | None,
    callees: Callees,
    context: Context,
    settings: RankingSettings,
) -> float:
    """Share of the component's move that what it calls accounts for, 0 to 1.

    A remote view of an anomalous service (see ``hidden_callees``) is wholly
    that service's victim.
    """
    if own is None:
        return 0.0
    threshold = settings.deviation.threshold
    if settings.leaves_may_hide_services and hidden_callees(
        component, own, callees, context.shifts, threshold
    ):
        return 1.0
    below = observed_callees(component, callees, context.observed)
    return explained_share(own, below, context.shifts, threshold)


def explain(component: str, context: Context, settings: RankingSettings) -> dict[str, float]:
    """Named contributions to one component's score."""
    own = strongest(context.shifts[component], context.family, settings)
    size = own.z * relevance(own.metric, context.family, settings) if own else 0.0
    deviation = float(np.log1p(size))
    parts = {"deviation": deviation, "onset": onset_feature(own, context.front_onset, settings)}
    if context.callees is not None:
        share = dependency_share(component, own, context.callees, context, settings)
        parts["dependencies"] = -settings.dependency_weight * share * deviation
        parts["path"] = 0.0 if component in context.connected else -settings.path_penalty
    return parts


def build_context(
    shifts: Shifts, front: str, onset: int, graph: Graph | None, settings: RankingSettings
) -> Context:
    """Everything shared by the explanations of one incident.

    Onsets are compared with the row the front broke in, or with the
    declared onset when the front shows no breach of its own.
    """
    threshold = settings.deviation.threshold
    front_shifts = shifts.get(front, {})
    family = front_family(front_shifts, threshold)
    front_worst = strongest(front_shifts, family, settings)
    callees = callee_map(graph) if graph is not None else None
    connected = (
        connected_to_front(front, callees, shifts, threshold)
        if callees is not None
        else frozenset()
    )
    return Context(
        shifts=shifts,
        family=family,
        front_onset=front_worst.onset if front_worst and front_worst.onset is not None else onset,
        callees=callees,
        connected=connected,
        observed=frozenset(c for c, s in shifts.items() if s),
    )


def rank_components(
    window: ComponentWindow,
    front: str,
    settings: RankingSettings,
    graph: Graph | None = None,
) -> list[RankedComponent]:
    """All components of the window, most likely root cause first.

    Ties keep alphabetical order so the ranking is reproducible.
    """
    shifts = all_shifts(window, settings.deviation)
    context = build_context(shifts, front, window.onset, graph, settings)
    ranked = []
    for name in sorted(shifts):
        parts = explain(name, context, settings)
        own = strongest(shifts[name], context.family, settings)
        ranked.append(RankedComponent(name, sum(parts.values()), own.metric if own else "", parts))
    return sorted(ranked, key=lambda r: -r.score)
