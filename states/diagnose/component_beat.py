"""Phase 3 beat: rank the incident's components and choose whose code to diagnose.

It is a beat of its own, checkpointed like the others, because windows keep
arriving while a cycle runs: the onset's versions and frames, the suspects'
paths and ``diagnosis.json`` must all follow the one ranking made here, also
after a restart. A sequence without this beat diagnoses the front component.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from states.context import BeatContext, BeatResult
from states.diagnose.components import RankedComponent, metric_family
from states.diagnose.localization import (
    CallGraph,
    Localization,
    aligned_window,
    configured_graph,
    learned_graph,
    localize,
)
from states.registry import beat
from storage import repository as repo
from storage import window_store
from storage.repository import Session
from storage.tables import WindowRow

BEAT_ID = "rank-components"


def chosen_component(outputs: dict[str, dict[str, Any]], front: str) -> str:
    """The component this beat chose to diagnose, or ``front`` when it did not run."""
    return str(outputs.get(BEAT_ID, {}).get("component") or front)


@beat("diagnose.rank_components")
def rank_components(ctx: BeatContext) -> BeatResult:
    """Rank every component with windows around the onset; choose the one to diagnose."""
    cycle_id = ctx.require_cycle()
    settings = ctx.settings
    history = settings.telemetry.window_s * settings.diagnose.history_windows

    def gather(session: Session) -> tuple[str, str, datetime, dict[str, list[WindowRow]]]:
        cycle = repo.cycle(session, cycle_id)
        onset = min(a.onset for a in repo.cycle_anomalies(session, cycle_id))
        since = onset - timedelta(seconds=history)
        names = sorted(window_store.latest_windows(session))
        found = {c: window_store.component_windows(session, c, since=since) for c in names}
        return cycle.component, cycle.category, onset, found

    front, category, onset, windows = ctx.db.query(gather)
    window = aligned_window(windows, onset, settings.telemetry.window_s)
    if window is None:
        reason = "too little history before onset to rank components"
        return BeatResult(output=_unranked(front, category, reason))
    graph = configured_graph({n: c.calls for n, c in settings.components.items()})
    if graph is None:
        graph = learned_graph(
            window,
            settings.diagnose.comovement_min_windows,
            settings.diagnose.comovement_min_correlation,
        )
    has_paths = frozenset(n for n, c in settings.components.items() if c.paths)
    found = localize(window, front, graph, has_paths)
    return BeatResult(output=_output(front, category, graph, found))


def _unranked(front: str, category: str, reason: str) -> dict[str, Any]:
    return {
        "front": front,
        "component": front,
        "category": category,
        "graph": "none",
        "ranked": [],
        "explanation": [f"{reason}; diagnosing the code of the front component {front}"],
    }


def _output(front: str, category: str, graph: CallGraph, found: Localization) -> dict[str, Any]:
    top = next((r for r in found.ranked if r.component == found.component), None)
    if found.component != front and top is not None:
        category = metric_family(top.metric)
    return {
        "front": front,
        "component": found.component,
        "category": category,
        "graph": graph.basis,
        "ranked": [_entry(r, r.component in found.anomalous) for r in found.ranked],
        "explanation": list(found.explanation),
    }


def _entry(ranked: RankedComponent, anomalous: bool) -> dict[str, Any]:
    return {
        "component": ranked.component,
        "score": round(float(ranked.score), 4),
        "metric": ranked.metric,
        "anomalous": anomalous,
        "contributions": {k: round(float(v), 4) for k, v in ranked.explanation.items()},
    }
