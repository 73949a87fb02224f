"""Phase 2 beats: judge new windows, keep one anomaly per fingerprint, pick the incident.

An anomaly opens on its first anomalous window, becomes actionable after it
persisted for ``persist_windows`` windows in a row, and closes only after
``clear_windows`` healthy windows in a row (hysteresis), so a flapping metric
stays one anomaly. Windows that fall inside a finished cycle are attributed to
it and never open a new one.  A series whose saved detector state this release
cannot read (written by an older release, or damaged) starts afresh, and the
reset is logged once with the series and the reason; it never fails the beat.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from states.context import BeatContext, BeatResult
from states.detect.budget import budget_report, longest_window_s
from states.detect.judgement import (
    SEVERITY_ORDER,
    Finding,
    Objectives,
    WindowStats,
    burn_finding,
    judge,
)
from states.detect.streaming import DetectorStateError, MetricDetector
from states.facts import in_cooldown, incident_candidate
from states.registry import beat
from states.settings import Settings
from storage import repository as repo
from storage.repository import Session
from storage.tables import AnomalyRow, DetectorStateRow, WindowRow

log = structlog.get_logger("selfheal.detect")


def _objectives(settings: Settings, component: str) -> Objectives:
    comp = settings.component(component)
    return Objectives(
        slo_p95_ms=comp.slo_p95_ms,
        slo_error_rate=comp.slo_error_rate,
        deviation_factor=settings.detect.deviation_factor,
        min_baseline=settings.detect.min_baseline_windows,
        score_threshold=comp.score_threshold or settings.detect.score_threshold,
        min_relative_change=settings.detect.min_relative_change,
    )


class DetectorStates:
    """Streaming detectors of this evaluation, loaded once and saved together."""

    def __init__(self, session: Session, now: datetime) -> None:
        self._session = session
        self._now = now
        self._loaded: dict[str, MetricDetector] = {}

    def score(self, key: str, at: datetime, value: float) -> float:
        """Feed one point to the series' detector and return its score."""
        detector = self._loaded.get(key)
        if detector is None:
            detector = self._loaded[key] = self._restore(key)
        return detector.update(at, value)

    def _restore(self, key: str) -> MetricDetector:
        """The series' saved detector, or a fresh one if there is none or it cannot be read."""
        row = self._session.get(DetectorStateRow, key)
        if row is None:
            return MetricDetector()
        try:
            return MetricDetector.from_state(row.state)
        except DetectorStateError as error:
            log.warning(
                "detector state reset", series=key, points_lost=row.points, reason=str(error)
            )
            return MetricDetector()

    def save(self) -> None:
        """Persist every detector touched, in the caller's transaction."""
        for key, detector in self._loaded.items():
            row = self._session.get(DetectorStateRow, key) or DetectorStateRow(
                key=key, updated_at=self._now
            )
            row.state, row.points, row.updated_at = detector.to_state(), detector.points, self._now
            self._session.add(row)


def _burn(session: Session, settings: Settings, window: WindowRow) -> Finding | None:
    since = window.end - timedelta(seconds=longest_window_s(settings))
    recent = repo.component_windows(session, window.component, since=since, until=window.end)
    report = budget_report(settings, window.component, [*recent, window], window.end)
    return burn_finding(window.component, report) if report else None


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
    row.score = max(row.score, finding.score)
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


def evaluate(session: Session, settings: Settings, now: datetime | None = None) -> dict[str, Any]:
    """Judge every closed window not yet judged, in time order (``now`` stamps detector state)."""
    last = repo.last_closed_cycle(session)
    detectors = DetectorStates(session, now or datetime.now(UTC))
    judged = anomalous = attributed = 0
    for window in repo.unevaluated_windows(session):
        window.evaluated = True
        session.add(window)
        if window.count < settings.detect.min_samples:
            continue
        stats = WindowStats(window.component, window.count, window.error_rate, window.p95)
        if window.p95 is not None:
            window.score = detectors.score(f"{window.component}:p95_ms", window.start, window.p95)
        healthy = _healthy_p95(session, settings, window)
        findings = judge(stats, _objectives(settings, window.component), healthy, window.score)
        burning = _burn(session, settings, window)
        findings += [burning] if burning else []
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
    detectors.save()
    return {"judged": judged, "anomalous": anomalous, "attributed_to_last_cycle": attributed}


@beat("detect.evaluate_windows")
def evaluate_windows(ctx: BeatContext) -> BeatResult:
    """Judge new windows against SLOs and baselines."""
    now = ctx.clock.now()
    return BeatResult(output=ctx.db.transact(lambda s: evaluate(s, ctx.settings, now)))


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
