"""Error budgets and burn rates from stored windows.

The multi-window burn-rate policy (``burn_rate.py``) works on buckets of good
and total events; every closed window of a component is one such bucket, so
detection and ``selfheal status`` read the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from states.detect.burn_rate import (
    Bucket,
    BurnRatePolicy,
    BurnRateReport,
    WindowPair,
    evaluate,
)
from states.settings import Settings
from storage.tables import WindowRow


def buckets_of(windows: Sequence[WindowRow]) -> list[Bucket]:
    """One bucket per window: good = requests that did not fail."""
    return [Bucket(w.end.timestamp(), float(w.count - w.errors), float(w.count)) for w in windows]


def policy_for(settings: Settings, component: str) -> BurnRatePolicy | None:
    """The burn-rate policy of a component with an error-rate objective, else None."""
    objective = settings.component(component).slo_error_rate
    if objective is None or not 0.0 < objective < 1.0:
        return None
    pairs = tuple(
        WindowPair(p.name, p.long_s, p.short_s, p.factor) for p in settings.detect.burn_rate_pairs
    )
    return BurnRatePolicy(1.0 - objective, settings.detect.slo_period_s, pairs)


def longest_window_s(settings: Settings) -> float:
    """How far back burn rates and the budget look."""
    longest = max((p.long_s for p in settings.detect.burn_rate_pairs), default=0.0)
    return max(longest, settings.detect.slo_period_s)


def budget_report(
    settings: Settings, component: str, windows: Sequence[WindowRow], now: datetime
) -> BurnRateReport | None:
    """Burn rates and budget left at ``now`` for one component."""
    policy = policy_for(settings, component)
    if policy is None:
        return None
    return evaluate(policy, buckets_of(windows), now.timestamp())


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
