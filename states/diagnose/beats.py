"""Phase 3 beats: snapshot the evidence, find the onset, collect the changes around it.

Each beat reads persisted facts and writes its result to its checkpoint, so
the chain can stop after any beat and continue with exactly the same inputs:
windows keep arriving while a cycle runs, so what the onset beat reads from
them (versions, frames, the operations that moved) is fixed in its output.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from states.artifacts import (
    AnomaliesArtifact,
    AnomalyEntry,
    TelemetryArtifact,
    WindowSnapshot,
)
from states.context import BeatContext, BeatResult, PermanentError
from states.diagnose.component_beat import chosen_component
from states.diagnose.culprits import commit_range
from states.diagnose.slow_operations import shifted_operations
from states.git import Commit, resolve
from states.registry import beat
from storage import deployment_store, window_store
from storage import repository as repo
from storage.repository import Session
from storage.tables import WindowRow

CONTEXT_WINDOWS = 20
HEALTHY_WINDOWS = 3  # the last healthy windows before onset name the healthy version


def _snapshot(row: WindowRow) -> WindowSnapshot:
    return WindowSnapshot(
        component=row.component,
        instance=row.instance,
        start=row.start,
        count=row.count,
        error_rate=row.error_rate,
        p50_ms=row.p50,
        p95_ms=row.p95,
        p99_ms=row.p99,
        health=row.health,
        versions=dict(row.versions),
        gauges=dict(row.gauges),
    )


@beat("diagnose.record_evidence")
def record_evidence(ctx: BeatContext) -> BeatResult:
    """Write telemetry.json and anomalies.json for the cycle."""
    cycle_id = ctx.require_cycle()
    window_s = ctx.settings.telemetry.window_s

    def gather(session: Session) -> tuple[list[WindowRow], list[AnomalyEntry], dict[str, Any]]:
        anomalies = repo.cycle_anomalies(session, cycle_id)
        onset = min(a.onset for a in anomalies)
        since = onset - timedelta(seconds=window_s * CONTEXT_WINDOWS)
        comps = {w.component for w in window_store.latest_windows(session).values()}
        windows = [
            w
            for c in sorted(comps)
            for w in window_store.component_windows(session, c, since=since)
        ]
        entries = [
            AnomalyEntry(
                fingerprint=a.fingerprint,
                component=a.component,
                metric=a.metric,
                category=a.category,
                detector=a.detector,
                severity=a.severity,
                onset=a.onset,
                last_seen=a.last_seen,
                consecutive_windows=a.consecutive,
                value=a.value,
                threshold=a.threshold,
                baseline=a.baseline,
                score=a.score,
                evidence=a.evidence,
            )
            for a in anomalies
        ]
        sources = {
            c.key: {"lines": c.lines, "rejected": c.rejected, "offset": c.offset}
            for c in window_store.cursors(session).values()
        }
        return windows, entries, sources

    windows, entries, sources = ctx.db.query(gather)
    ctx.artifacts.write_model(
        cycle_id,
        "telemetry",
        TelemetryArtifact(
            cycle_id=cycle_id,
            window_s=window_s,
            windows=[_snapshot(w) for w in windows],
            sources=sources,
        ),
    )
    ctx.artifacts.write_model(
        cycle_id, "anomalies", AnomaliesArtifact(cycle_id=cycle_id, anomalies=entries)
    )
    return BeatResult(output={"windows": len(windows), "anomalies": len(entries)})


def dominant(counts: Counter[str]) -> str | None:
    """The most common key, or None for an empty counter."""
    return counts.most_common(1)[0][0] if counts else None


@beat("diagnose.find_onset")
def find_onset(ctx: BeatContext) -> BeatResult:
    """The onset window, the versions running before and after it, and what moved.

    Versions, frames and operations are those of the component chosen for
    diagnosis (``rank-components``); the front's stand in for versions the
    chosen component's records do not carry, and its frames follow the chosen
    one's. ``operations`` are the chosen component's operations that got slow
    or started failing (``states.diagnose.slow_operations``), most moved first.
    """
    cycle_id = ctx.require_cycle()
    history = ctx.settings.diagnose.history_windows

    def locate(session: Session) -> dict[str, Any]:
        cycle = repo.cycle(session, cycle_id)
        anomalies = repo.cycle_anomalies(session, cycle_id)
        onset = min(a.onset for a in anomalies)
        component = chosen_component(ctx.outputs, cycle.component)
        own = window_store.component_windows(session, component)
        front = (
            own
            if component == cycle.component
            else window_store.component_windows(session, cycle.component)
        )
        frames: list[list[Any]] = []
        for w in [w for w in [*own, *front] if w.start >= onset]:
            frames.extend(f for f in w.frames if f not in frames)
        return {
            "onset": onset.isoformat(),
            "component": component,
            **versions_around(own if any(w.versions for w in own) else front, onset),
            "frames": frames[:20],
            "operations": operations_around(own, onset, history),
        }

    return BeatResult(output=ctx.db.query(locate))


def versions_around(windows: list[WindowRow], onset: datetime) -> dict[str, Any]:
    """The healthy and unhealthy versions, and those first seen from the onset on."""
    before: Counter[str] = Counter()
    after: Counter[str] = Counter()
    for w in windows:
        (before if w.start < onset else after).update(w.versions)
    fresh = Counter({v: n for v, n in after.items() if v not in before})
    # What ran when it was last healthy, not what ran longest: an earlier incident's
    # release may dominate the history while having been the regression itself.
    last_healthy: Counter[str] = Counter()
    for w in [w for w in windows if w.start < onset and not w.anomalous][-HEALTHY_WINDOWS:]:
        last_healthy.update(w.versions)
    return {
        "healthy_version": dominant(last_healthy) or dominant(before),
        "unhealthy_version": dominant(fresh) or dominant(after),
        "new_versions": sorted(fresh),
    }


def operations_around(
    windows: list[WindowRow], onset: datetime, history: int
) -> list[dict[str, Any]]:
    """The operations that moved from the last ``history`` healthy windows to those from onset."""
    before = [w.operations for w in windows if w.start < onset and not w.anomalous][-history:]
    after = [w.operations for w in windows if w.start >= onset]
    return [
        {**asdict(shift), "changes": list(shift.changes)}
        for shift in shifted_operations(before, after)
    ]


def _version_events(session: Session, component: str) -> list[dict[str, Any]]:
    first_seen: dict[str, datetime] = {}
    for w in window_store.component_windows(session, component):
        for version in w.versions:
            first_seen.setdefault(version, w.start)
    return [
        {"kind": "version_seen", "version": v, "at": t.isoformat()} for v, t in first_seen.items()
    ]


@beat("diagnose.collect_changes")
def collect_changes(ctx: BeatContext) -> BeatResult:
    """Versions seen, the agent's own deployments, and commits between healthy and unhealthy."""
    onset_info = ctx.outputs["find-onset"]
    repo_path = ctx.settings.repository.path
    onset = datetime.fromisoformat(onset_info["onset"])
    healthy = (
        resolve(repo_path, onset_info["healthy_version"]) if onset_info["healthy_version"] else None
    )
    unhealthy = (
        resolve(repo_path, onset_info["unhealthy_version"])
        if onset_info["unhealthy_version"]
        else None
    )
    settings = ctx.settings.diagnose
    considered = commit_range(
        repo_path, healthy, unhealthy, onset, settings.max_commits, settings.lookback_s
    )
    if considered is None:
        raise PermanentError(f"{repo_path}: no commit to diagnose against (empty repository?)")
    commits, basis = considered

    def events(session: Session) -> list[dict[str, Any]]:
        found = _version_events(session, onset_info["component"])
        found += [
            {
                "kind": "agent_deployment",
                "version": d.to_version,
                "target": d.target,
                "at": d.done_at.isoformat(),
            }
            for d in deployment_store.agent_deployments(session, onset - timedelta(days=1))
            if d.done_at is not None
        ]
        return found

    change_events = ctx.db.query(events)
    change_events += [
        {"kind": "commit", "commit": c.sha, "at": c.committed_at.isoformat(), "subject": c.subject}
        for c in commits
    ]
    return BeatResult(
        output={
            "healthy": healthy,
            "unhealthy": unhealthy,
            "basis": basis,
            "commits": [_commit_dict(c) for c in commits],
            "deployed_commits": [c.sha for c in commits] if basis == "version range" else [],
            "events": change_events,
        }
    )


def _commit_dict(c: Commit) -> dict[str, Any]:
    return {
        "sha": c.sha,
        "author": c.author,
        "email": c.email,
        "at": c.committed_at.isoformat(),
        "subject": c.subject,
        "files": list(c.files),
    }
