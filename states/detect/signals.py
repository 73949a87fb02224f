"""The leak and log detectors of one closed window, fed from the component's stored windows.

Latency and errors are judged on the window alone (and a baseline of P95s);
these detectors need the component's recent history: a watched gauge's
values over the look-back, and each template's counts and first sighting.
One read of the recent windows serves them and the P95 baseline
(``history_needed`` says how many the detectors want). A verdict also says which
metrics the window could judge, because only those may count towards
closing an open anomaly: a window without the gauge (a failed scrape) or
without enough points says nothing about a leak.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from states.detect import leaks, logs
from states.detect.judgement import Finding
from states.detect.policies import LogDetection
from states.settings import Settings
from states.telemetry.window_templates import OTHER, stored_levels, stored_templates
from storage import window_store
from storage.repository import Session
from storage.tables import WindowRow


@dataclass
class SignalVerdict:
    """Findings of the leak and log detectors, and which metrics they judged."""

    findings: list[Finding] = field(default_factory=list)
    metrics: set[str] = field(default_factory=set)
    judges_templates: bool = False

    @property
    def judged_anything(self) -> bool:
        """Whether the window held anything for these detectors to judge."""
        return bool(self.metrics or self.judges_templates or self.findings)

    def judged(self, metric: str) -> bool:
        """Whether this window said something about ``metric`` (so a silence means healthy)."""
        return metric in self.metrics or (
            self.judges_templates and metric.startswith(logs.METRIC_PREFIX)
        )


class TemplateBook:
    """Template texts and creating levels by ``<source>:<id>``, read once per source."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._sources: dict[str, tuple[dict[int, str], dict[int, str]]] = {}

    def lookup(self, key: str) -> tuple[str, str | None]:
        """The template's text (the key itself if unknown) and its level, if recorded."""
        source, _, number = key.rpartition(":")
        if not number.isdigit():
            return key, None
        if source not in self._sources:
            state = window_store.template_state(self._session, source)
            self._sources[source] = (stored_templates(state), stored_levels(state))
        texts, levels = self._sources[source]
        template_id = int(number)
        return texts.get(template_id, key), levels.get(template_id)


def _logs_on(policy: LogDetection) -> bool:
    return policy.new_errors or policy.spikes


def _mined(window: WindowRow, policy: LogDetection) -> dict[str, int]:
    """The window's template counts the log detectors judge (none when both are off)."""
    if not _logs_on(policy):
        return {}
    return {k: n for k, n in window.templates.items() if k != OTHER}


def history_needed(settings: Settings, window: WindowRow) -> int:
    """How many of the component's latest windows (this one included) the detectors read."""
    comp = settings.component(window.component)
    needed = [g.lookback_windows for g in comp.gauges if g.name in window.gauges]
    if _mined(window, comp.logs):
        needed += [comp.logs.baseline_windows + 1, comp.logs.new_template_windows]
    return max(needed, default=0)


def judge_window(
    settings: Settings, window: WindowRow, history: Sequence[WindowRow], book: TemplateBook
) -> SignalVerdict:
    """The leak and log findings of one closed all-instance window.

    ``history`` is the component's latest windows in time order, ending with
    ``window``, at least ``history_needed`` of them where there are so many.
    """
    comp = settings.component(window.component)
    mined = _mined(window, comp.logs)
    judges_logs = _logs_on(comp.logs) and (
        bool(window.templates) or window.count >= settings.detect.min_samples
    )
    verdict = SignalVerdict(judges_templates=judges_logs)
    for watch in (g for g in comp.gauges if g.name in window.gauges):
        recent = history[-watch.lookback_windows :]
        points = [
            (w.end.timestamp(), w.gauges[watch.name]) for w in recent if watch.name in w.gauges
        ]
        gauge = leaks.judge_gauge(window.component, watch, points)
        if gauge is not None:
            verdict.metrics.add(watch.name)
            verdict.findings += [gauge.finding] if gauge.finding else []
    if mined:
        verdict.findings += _log_findings(window, mined, history, comp.logs, book)
    return verdict


def _log_findings(
    window: WindowRow,
    mined: dict[str, int],
    history: Sequence[WindowRow],
    policy: LogDetection,
    book: TemplateBook,
) -> list[Finding]:
    before = [w for w in history if w.start < window.start]
    young = {k for w in [*before, window][-policy.new_template_windows :] for k in w.new_templates}
    first_seen = {k: i for i, w in enumerate(before) for k in w.new_templates}
    found: list[Finding] = []
    for key, count in sorted(mined.items()):
        text, level = book.lookup(key)
        if key in young:
            finding = logs.new_error_finding(window.component, key, count, text, level, policy)
        else:
            since = first_seen.get(key, 0)  # its history starts where it was first seen
            counts = [w.templates.get(key, 0) for w in before[since:]][-policy.baseline_windows :]
            finding = logs.spike_finding(window.component, key, count, counts, text, policy)
        found += [finding] if finding else []
    return found
