"""Phase 3 beats: snapshot the evidence, find the onset, collect changes, rank suspects.

Each beat reads persisted facts and writes its result to its checkpoint, so
the chain can stop after any beat and continue with exactly the same inputs.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from states.artifacts import (
    AnomaliesArtifact,
    AnomalyEntry,
    Candidate,
    DiagnosisArtifact,
    SuspectEntry,
    TelemetryArtifact,
    WindowSnapshot,
)
from states.context import BeatContext, BeatResult, PermanentError
from states.diagnose.culprits import (
    CodeEvidence,
    LocatedSuspect,
    commit_range,
    diagnose_commits,
)
from states.diagnose.frames import Frame
from states.git import Commit, resolve
from states.learn.signatures import signature_of
from states.registry import beat
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
        comps = {w.component for w in repo.latest_windows(session).values()}
        windows = [
            w for c in sorted(comps) for w in repo.component_windows(session, c, since=since)
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
            for c in repo.cursors(session).values()
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
    """The onset window and the versions running before and after it."""
    cycle_id = ctx.require_cycle()

    def locate(session: Session) -> dict[str, Any]:
        cycle = repo.cycle(session, cycle_id)
        anomalies = repo.cycle_anomalies(session, cycle_id)
        onset = min(a.onset for a in anomalies)
        windows = repo.component_windows(session, cycle.component)
        before: Counter[str] = Counter()
        after: Counter[str] = Counter()
        frames: list[list[Any]] = []
        for w in windows:
            target = before if w.start < onset else after
            target.update(w.versions)
            if w.start >= onset:
                frames.extend(f for f in w.frames if f not in frames)
        fresh = Counter({v: n for v, n in after.items() if v not in before})
        # What ran when it was last healthy, not what ran longest: an earlier incident's
        # release may dominate the history while having been the regression itself.
        last_healthy: Counter[str] = Counter()
        for w in [w for w in windows if w.start < onset and not w.anomalous][-HEALTHY_WINDOWS:]:
            last_healthy.update(w.versions)
        return {
            "onset": onset.isoformat(),
            "component": cycle.component,
            "healthy_version": dominant(last_healthy) or dominant(before),
            "unhealthy_version": dominant(fresh) or dominant(after),
            "new_versions": sorted(fresh),
            "frames": frames[:20],
        }

    return BeatResult(output=ctx.db.query(locate))


def _version_events(session: Session, component: str) -> list[dict[str, Any]]:
    first_seen: dict[str, datetime] = {}
    for w in repo.component_windows(session, component):
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
            for d in repo.agent_deployments(session, onset - timedelta(days=1))
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


def _commit_of(d: dict[str, Any]) -> Commit:
    return Commit(
        d["sha"],
        d["author"],
        d["email"],
        datetime.fromisoformat(d["at"]),
        d["subject"],
        tuple(d["files"]),
    )


@beat("diagnose.rank_suspects")
def rank(ctx: BeatContext) -> BeatResult:
    """Rank suspects, pick file and line, list candidates, write diagnosis.json."""
    cycle_id = ctx.require_cycle()
    onset_info, changes = ctx.outputs["find-onset"], ctx.outputs["collect-changes"]
    component = onset_info["component"]
    repo_path = ctx.settings.repository.path
    head = changes["unhealthy"] or resolve(repo_path, "HEAD")
    cycle = ctx.db.query(lambda s: repo.cycle(s, cycle_id))
    learned = ctx.db.query(
        lambda s: [p for p in repo.patterns(s) if p.component == component and p.successes]
    )
    evidence = CodeEvidence(
        commits=tuple(_commit_of(c) for c in changes["commits"]),
        running_revision=head,
        component_paths=tuple(ctx.settings.component(component).paths),
        deployed_commits=frozenset(changes["deployed_commits"]),
        frames=tuple(Frame(str(f), int(n), str(fn)) for f, n, fn in onset_info["frames"]),
        pattern_files=frozenset(f for p in learned for f in p.files),
        path_prefixes=tuple(ctx.settings.repository.path_prefixes),
        category=cycle.category,
    )
    located = diagnose_commits(repo_path, evidence, ctx.settings.diagnose.max_blamed_frames)
    entries = [
        SuspectEntry(
            commit=s.suspect.commit.sha,
            author=s.suspect.commit.author,
            committed_at=s.suspect.commit.committed_at,
            subject=s.suspect.commit.subject,
            files=list(s.suspect.commit.files),
            score=s.suspect.score,
            confidence=s.suspect.confidence,
            features=s.suspect.features,
            file=s.file,
            line=s.line,
        )
        for s in located
    ]
    top = entries[0] if entries else None
    confidence = top.confidence if top else 0.0
    conclusive = top is not None and confidence >= ctx.settings.diagnose.min_confidence
    candidates = [
        Candidate(
            strategy="revert_commit",
            commit=e.commit,
            file=e.file,
            line=e.line,
            reason=f"suspect score {e.score}, confidence {e.confidence}",
        )
        for e in entries[:3]
        if e.score > 0
    ]
    if changes["healthy"] and changes["unhealthy"] and changes["healthy"] != changes["unhealthy"]:
        candidates.append(
            Candidate(
                strategy="redeploy_version",
                version=changes["healthy"],
                reason="last healthy version",
            )
        )
    sig_files = [top.file] if top and top.file else []
    diagnosis = DiagnosisArtifact(
        cycle_id=cycle_id,
        component=component,
        category=cycle.category,
        metric=cycle.metric,
        onset=datetime.fromisoformat(onset_info["onset"]),
        healthy_version=changes["healthy"],
        unhealthy_version=changes["unhealthy"],
        suspect_commit=top.commit if top else None,
        file=top.file if top else None,
        line=top.line if top else None,
        confidence=confidence,
        conclusive=conclusive,
        suspects=entries,
        candidates=candidates,
        change_events=changes["events"],
        evidence=_explain(located[0] if located else None, changes, component),
    )
    ctx.artifacts.write_model(cycle_id, "diagnosis", diagnosis)
    signature = signature_of(component, cycle.category, cycle.metric, sig_files)
    return BeatResult(
        output={
            "suspect": diagnosis.suspect_commit,
            "confidence": confidence,
            "candidates": len(candidates),
        },
        cycle_updates={
            "cause_found": conclusive and bool(candidates),
            "confidence": confidence,
            "candidates_total": len(candidates),
            "candidate_index": 0,
            "signature": signature,
            "summary": {
                "suspect_commit": diagnosis.suspect_commit,
                "file": diagnosis.file,
                "line": diagnosis.line,
                "running_version": changes["unhealthy"] or head,
                "healthy_version": changes["healthy"],
                "signature_files": sig_files,
            },
        },
    )


def _explain(top: LocatedSuspect | None, changes: dict[str, Any], component: str) -> list[str]:
    if top is None:
        return [f"no commit found ({changes['basis']}); escalating instead of guessing"]
    suspect = top.suspect
    lines = [f"{len(changes['commits'])} commit(s) considered from the {changes['basis']}"]
    lines += [f"{name} contributed {value}" for name, value in suspect.features.items() if value]
    lines.append(f"softmax share {suspect.share}, calibrated confidence {suspect.confidence}")
    lines.append(
        f"{suspect.commit.sha[:12]} '{suspect.commit.subject}' touches "
        f"{', '.join(suspect.commit.files)} (component {component})"
    )
    if top.file is not None:
        lines.append(f"{top.file}:{top.line} chosen by {top.located_by}")
    return lines
