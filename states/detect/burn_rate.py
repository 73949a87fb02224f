"""SLO burn-rate alerts in the multi-window, multi-burn-rate style.

A burn rate says how fast a service spends its error budget: 1 spends exactly
the budget over the SLO period, 14.4 spends 2% of a 30-day budget in one hour.
Alerting on a long window alone is slow to fire and slow to clear; a short
window alone pages on blips.  So each alert is a pair: it fires only while the
burn rate over both the long and the short window exceeds the pair's factor
(a fast pair for sudden outages, a slow pair for steady bleeding).  Window
lengths are plain seconds so the demo can use short windows.  Pure functions
over (good, total) counts of the seconds before the moment judged, whether
summed from (epoch seconds, good, total) buckets or by the caller; no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

DAY_SECONDS = 86_400.0

# (good, total) events over the given number of seconds up to the moment judged.
Counts = Callable[[float], tuple[float, float]]


@dataclass(frozen=True)
class Bucket:
    """Good and total events observed in the bucket ending at ``end`` (epoch seconds)."""

    end: float
    good: float
    total: float


@dataclass(frozen=True)
class WindowPair:
    """One alert: the burn rate must exceed ``factor`` over both windows."""

    name: str
    long_seconds: float
    short_seconds: float
    factor: float


FAST_PAIR = WindowPair("fast", 3600.0, 300.0, 14.4)
SLOW_PAIR = WindowPair("slow", 21_600.0, 1800.0, 6.0)


@dataclass(frozen=True)
class BurnRatePolicy:
    """An SLO objective (e.g. 0.999 good), its budget period and its alerting pairs."""

    objective: float
    period_seconds: float = 30 * DAY_SECONDS
    pairs: tuple[WindowPair, ...] = (FAST_PAIR, SLOW_PAIR)

    def __post_init__(self) -> None:
        if not 0.0 < self.objective < 1.0:
            raise ValueError(
                f"SLO objective must be strictly between 0 and 1 (e.g. 0.999), got {self.objective}"
            )


@dataclass(frozen=True)
class PairVerdict:
    """Burn rates of one pair's windows and whether the pair alerts."""

    pair: WindowPair
    long_burn_rate: float
    short_burn_rate: float
    alerting: bool


@dataclass(frozen=True)
class BurnRateReport:
    """Every pair's verdict and the share of the period's error budget still left."""

    verdicts: tuple[PairVerdict, ...]
    budget_remaining: float

    @property
    def alerting(self) -> bool:
        """True when any pair alerts."""
        return any(v.alerting for v in self.verdicts)


def window_counts(buckets: Iterable[Bucket], now: float, seconds: float) -> tuple[float, float]:
    """(good, total) over the buckets ending in the window (now - seconds, now]."""
    start = now - seconds
    chosen = [b for b in buckets if start < b.end <= now]
    return sum(b.good for b in chosen), sum(b.total for b in chosen)


def burn_rate(good: float, total: float, objective: float) -> float:
    """Observed error ratio divided by the ratio the SLO allows; 0 with no traffic."""
    if total <= 0:
        return 0.0
    return ((total - good) / total) / (1.0 - objective)


def budget_remaining(good: float, total: float, objective: float) -> float:
    """Share of the error budget left: 1 untouched, 0 spent, negative overspent."""
    allowed = (1.0 - objective) * total
    if allowed <= 0:
        return 1.0
    return 1.0 - (total - good) / allowed


def pair_verdict(pair: WindowPair, counts: Counts, objective: float) -> PairVerdict:
    """Burn rates over the pair's two windows, from ``counts`` of the time before now."""
    long_rate = burn_rate(*counts(pair.long_seconds), objective)
    short_rate = burn_rate(*counts(pair.short_seconds), objective)
    return PairVerdict(
        pair, long_rate, short_rate, long_rate > pair.factor and short_rate > pair.factor
    )


def report_of(policy: BurnRatePolicy, counts: Counts) -> BurnRateReport:
    """All of the policy's pairs plus the budget left over the period, from ``counts``."""
    verdicts = tuple(pair_verdict(p, counts, policy.objective) for p in policy.pairs)
    good, total = counts(policy.period_seconds)
    return BurnRateReport(verdicts, budget_remaining(good, total, policy.objective))


def evaluate(policy: BurnRatePolicy, buckets: Sequence[Bucket], now: float) -> BurnRateReport:
    """All of the policy's pairs plus the budget left over the period ending at ``now``."""
    return report_of(policy, lambda seconds: window_counts(buckets, now, seconds))
