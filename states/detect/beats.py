"""Phase 2 beats: judge new windows, keep one anomaly per fingerprint, pick the incident.

An anomaly opens on its first anomalous window, becomes actionable after it
persisted for ``persist_windows`` windows in a row, and closes only after
``clear_windows`` healthy windows in a row (hysteresis), so a flapping metric
stays one anomaly. Windows that fall inside a finished cycle are attributed to
it and never open a new one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from states.context import BeatContext, BeatResult
from states.detect.judgement import SEVERITY_ORDER, Finding, Objectives, WindowStats, judge
from states.facts import in_cooldown, incident_candidate
from states.registry import beat
from states.settings import Settings
from storage import repository as repo
from storage.repository import Session
from storage.tables import AnomalyRow, WindowRow


def _objectives(settings: Settings, component: str) -> Objectives:
    comp = settings.component(component)
    return Objectives(
        slo_p95_ms=comp.slo_p95_ms,
        slo_error_rate=comp.slo_error_rate,
        deviation_factor=settings.detect.deviation_factor,
        min_baseline=settings.detect.min_baseline_windows,
    )


def _healthy_p95(session: Session, settings: Settings, window: WindowRow) -> list[float]:
    recent = repo.component_windows(
        session, window.component, until=window.start, limit=settings.detect.baseline_windows * 3
    )
    healthy = [w.p95 for w in recent if w.evaluated and not w.anomalous and w.p95 is not None]
    return healthy[-settings.detect.baseline_windows :]


def _open_or_update(
    session: Session, settings: Settings, finding: Finding, window: WindowRow
) -> AnomalyRow:
    current = [
        a
        for a in repo.open_anomalies(session, finding.component)
        if a.fingerprint == finding.fingerprint
    ]
    evidence = {
        "window_start": window.start.isoformat(),
        "count": window.count,
        "detector": finding.detector,
    }
    if current:
        row = current[0]
        row.consecutive += 1
        row.healthy_streak = 0
        row.last_seen = window.start
        if SEVERITY_ORDER[finding.severity] > SEVERITY_ORDER.get(row.severity, 0):
            row.severity = finding.severity
    else:
        row = AnomalyRow(
            fingerprint=finding.fingerprint,
            component=finding.component,
            metric=finding.metric,
            detector=finding.detector,
            category=finding.category,
            severity=finding.severity,
            onset=window.start,
            last_seen=window.start,
        )
    row.value, row.threshold, row.baseline = finding.value, finding.threshold, finding.baseline
    row.detector = finding.detector
    row.evidence = {**evidence, "excess": round(finding.excess, 3)}
    row.actionable = row.consecutive >= settings.detect.persist_windows
    session.add(row)
    return row


def _heal(
    session: Session, settings: Settings, component: str, seen: set[str], at: datetime
) -> None:
    for row in repo.open_anomalies(session, component):
        if row.fingerprint in seen:
            continue
        row.healthy_streak += 1
        if row.healthy_streak >= settings.detect.clear_windows:
            row.status, row.closed_at = "closed", at
        session.add(row)


def evaluate(session: Session, settings: Settings) -> dict[str, Any]:
    """Judge every closed window not yet judged, in time order."""
    last = repo.last_closed_cycle(session)
    judged = anomalous = attributed = 0
    for window in repo.unevaluated_windows(session):
        window.evaluated = True
        session.add(window)
        if window.count < settings.detect.min_samples:
            continue
        stats = WindowStats(window.component, window.count, window.error_rate, window.p95)
        findings = judge(
            stats, _objectives(settings, window.component), _healthy_p95(session, settings, window)
        )
        window.anomalous = bool(findings)
        judged += 1
        anomalous += bool(findings)
        if last is not None and last.closed_at is not None and window.end <= last.closed_at:
            attributed += 1
            continue
        for finding in findings:
            _open_or_update(session, settings, finding, window)
        _heal(session, settings, window.component, {f.fingerprint for f in findings}, window.end)
        session.flush()
    return {"judged": judged, "anomalous": anomalous, "attributed_to_last_cycle": attributed}


@beat("detect.evaluate_windows")
def evaluate_windows(ctx: BeatContext) -> BeatResult:
    """Judge new windows against SLOs and baselines."""
    return BeatResult(output=ctx.db.transact(lambda s: evaluate(s, ctx.settings)))


@beat("detect.select_incident")
def select_incident(ctx: BeatContext) -> BeatResult:
    """Say which anomaly would open a cycle, and what stops it if anything."""
    now = ctx.clock.now()

    def explain(session: Session) -> dict[str, Any]:
        candidate = incident_candidate(session)
        if candidate is None:
            pending = [a.fingerprint for a in repo.open_anomalies(session) if a.cycle_id is None]
            return {"incident": None, "open_not_actionable": pending}
        return {
            "incident": candidate.fingerprint,
            "severity": candidate.severity,
            "in_cooldown": in_cooldown(session, ctx.settings, candidate.component, now),
            "cycles_today": repo.cycles_opened_since(
                session, now.replace(hour=0, minute=0, second=0)
            ),
        }

    return BeatResult(output=ctx.db.query(explain))
