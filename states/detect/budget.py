"""Error budgets and burn rates from the stored request totals.

The multi-window burn-rate policy (``burn_rate.py``) needs the good and total
requests of a few spans ending at the moment judged: each burn-rate pair's
two windows and the SLO period. They are summed by ``storage.budget_hours``
from hourly totals plus the windows of the partial hours, so judging a window
costs the same with a day or a month of windows stored, and the budget covers
the whole period even after retention deleted its oldest windows. Detection
and ``selfheal status`` read the same numbers through ``stored_report``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from states.detect.burn_rate import BurnRatePolicy, BurnRateReport, Counts, WindowPair, report_of
from states.settings import Settings
from storage import budget_hours
from storage.repository import Session


def policy_for(settings: Settings, component: str) -> BurnRatePolicy | None:
    """The burn-rate policy of a component with an error-rate objective, else None."""
    objective = settings.component(component).slo_error_rate
    if objective is None or not 0.0 < objective < 1.0:
        return None
    pairs = tuple(
        WindowPair(p.name, p.long_s, p.short_s, p.factor) for p in settings.detect.burn_rate_pairs
    )
    return BurnRatePolicy(1.0 - objective, settings.detect.slo_period_s, pairs)


def stored_counts(session: Session, settings: Settings, component: str, now: datetime) -> Counts:
    """(good, total) requests of the component's windows ending in the given seconds up to ``now``."""
    widest_s = settings.telemetry.window_s

    def counts(seconds: float) -> tuple[float, float]:
        since = now - timedelta(seconds=seconds)
        requests, errors = budget_hours.request_totals(session, component, since, now, widest_s)
        return float(requests - errors), float(requests)

    return counts


def stored_report(
    session: Session, settings: Settings, component: str, now: datetime
) -> BurnRateReport | None:
    """Burn rates and budget left at ``now`` for one component (None without an error objective)."""
    policy = policy_for(settings, component)
    if policy is None:
        return None
    return report_of(policy, stored_counts(session, settings, component, now))


def coverage_warnings(settings: Settings) -> list[str]:
    """Burn-rate windows longer than the windows kept to sum their partial hours.

    The SLO period itself is always covered: its whole hours are kept as long
    as the period, whatever ``telemetry.retention_s`` says. A span's partial
    hours come from the windows, so a pair whose long window outlasts them
    would silently count less than it says.
    """
    telemetry = settings.telemetry
    needed = [(p, p.long_s + telemetry.window_s) for p in settings.detect.burn_rate_pairs]
    return [
        f"detect.burn_rate_pairs '{pair.name}' long_s = {pair.long_s:g} s reaches past "
        f"telemetry.retention_s = {telemetry.retention_s:g} s: the oldest windows of its span "
        f"are deleted before it is judged; raise telemetry.retention_s to at least {reach:g} s"
        for pair, reach in needed
        if reach > telemetry.retention_s
    ]


def describe(report: BurnRateReport) -> dict[str, Any]:
    """The report as plain data for status and artifacts."""
    return {
        "budget_remaining": round(report.budget_remaining, 4),
        "alerting": report.alerting,
        "pairs": {
            v.pair.name: {
                "long_burn_rate": round(v.long_burn_rate, 3),
                "short_burn_rate": round(v.short_burn_rate, 3),
                "factor": v.pair.factor,
                "alerting": v.alerting,
            }
            for v in report.verdicts
        },
    }
