"""The call graph as the ranking needs it: who calls whom, seen from either end.

Configured graphs name callers and their callees; the ranking asks what a
component depends on (looking through components that report nothing), and
who depends on it.  Kept apart from the scoring so both read as plain
graph walks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

Graph = Mapping[str, Iterable[str]]
"""Caller -> callees."""
Callees = Mapping[str, frozenset[str]]


def callee_map(graph: Graph) -> dict[str, frozenset[str]]:
    """The graph as caller -> frozen set of callees, without self-calls."""
    return {
        caller: frozenset(c for c in callees if c != caller) for caller, callees in graph.items()
    }


def observed_callees(component: str, callees: Callees, observed: frozenset[str]) -> frozenset[str]:
    """Callees that report metrics, looking through callees that report nothing.

    A proxy without telemetry must not hide the health of what it forwards to.
    """
    found: set[str] = set()
    seen = {component}
    stack = list(callees.get(component, frozenset()))
    while stack:
        callee = stack.pop()
        if callee in seen:
            continue
        seen.add(callee)
        if callee in observed:
            found.add(callee)
        else:
            stack.extend(callees.get(callee, frozenset()))
    return frozenset(found)


def ancestors_of(component: str, callees: Callees) -> frozenset[str]:
    """Every component that calls this one, directly or not."""
    callers: dict[str, set[str]] = {}
    for caller, called in callees.items():
        for callee in called:
            callers.setdefault(callee, set()).add(caller)
    seen: set[str] = set()
    stack = [component]
    while stack:
        for caller in callers.get(stack.pop(), ()):
            if caller not in seen:
                seen.add(caller)
                stack.append(caller)
    return frozenset(seen)
