"""Phase 2 beats: judge new windows, keep one anomaly per fingerprint, pick the incident.

Each closed window is judged by every detector that has something to judge
in it: objectives, the learned baseline, the streaming score and burn rates
on its requests; the leak detector on watched gauges and the log detectors
on mined templates (``signals``). How anomalies persist, heal and re-open is
``lifecycle``. Windows that fall inside a finished cycle are attributed to it
and never open a new one.  A series whose saved detector state this release
cannot read (written by an older release, or damaged) starts afresh, and the
reset is logged once with the series and the reason; it never fails the beat.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import structlog

from states.context import BeatContext, BeatResult
from states.detect import lifecycle, signals
from states.detect.budget import stored_report
from states.detect.judgement import (
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
from storage import window_store
from storage.repository import Session
from storage.tables import DetectorStateRow, WindowRow

# The metrics judged on a window's requests (only with enough of them).
REQUEST_METRICS = frozenset({"p95_ms", "error_rate", "error_budget_burn"})

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
    report = stored_report(session, settings, window.component, window.end)
    return burn_finding(window.component, report) if report else None


def _baseline_reach(settings: Settings) -> int:
    """Windows before this one that the P95 baseline looks through for healthy ones."""
    return settings.detect.baseline_windows * 3


def _healthy_p95(settings: Settings, window: WindowRow, history: list[WindowRow]) -> list[float]:
    recent = [w for w in history if w.start < window.start][-_baseline_reach(settings) :]
    healthy = [w.p95 for w in recent if w.evaluated and not w.anomalous and w.p95 is not None]
    return healthy[-settings.detect.baseline_windows :]


def _request_findings(
    session: Session,
    settings: Settings,
    window: WindowRow,
    detectors: DetectorStates,
    history: list[WindowRow],
) -> list[Finding]:
    """SLO, baseline, streaming-score and burn-rate findings of a window with enough requests."""
    stats = WindowStats(window.component, window.count, window.error_rate, window.p95)
    if window.p95 is not None:
        window.score = detectors.score(f"{window.component}:p95_ms", window.start, window.p95)
    healthy = _healthy_p95(settings, window, history)
    findings = judge(stats, _objectives(settings, window.component), healthy, window.score)
    burning = _burn(session, settings, window)
    return findings + ([burning] if burning else [])


def _history(
    session: Session, settings: Settings, window: WindowRow, requests: bool
) -> list[WindowRow]:
    """The component's latest windows up to this one, as many as any detector reads (one query)."""
    needed = signals.history_needed(settings, window)
    if requests:
        needed = max(needed, _baseline_reach(settings) + 1)
    if not needed:
        return []
    return window_store.component_windows(session, window.component, until=window.end, limit=needed)


def evaluate(session: Session, settings: Settings, now: datetime | None = None) -> dict[str, Any]:
    """Judge every closed window not yet judged, in time order (``now`` stamps detector state).

    Requests are judged when the window has ``min_samples`` of them; watched
    gauges and mined templates whenever the window holds them.
    """
    last = repo.last_closed_cycle(session)
    detectors = DetectorStates(session, now or datetime.now(UTC))
    book = signals.TemplateBook(session)
    judged = anomalous = attributed = 0
    for window in window_store.unevaluated_windows(session):
        window.evaluated = True
        session.add(window)
        requests = window.count >= settings.detect.min_samples
        history = _history(session, settings, window, requests)
        verdict = signals.judge_window(settings, window, history, book)
        if not requests and not verdict.judged_anything:
            continue
        findings = (
            _request_findings(session, settings, window, detectors, history) if requests else []
        )
        findings += verdict.findings
        window.anomalous = bool(findings)
        judged += 1
        anomalous += bool(findings)
        if last is not None and last.closed_at is not None and window.end <= last.closed_at:
            attributed += 1
            continue
        for finding in findings:
            lifecycle.open_or_update(session, settings, finding, window)
        seen = {f.fingerprint for f in findings}
        verdict.metrics.update(REQUEST_METRICS if requests else ())
        lifecycle.heal(session, settings, window.component, seen, window.end, verdict.judged)
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
