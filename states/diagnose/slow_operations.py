"""Which of a component's operations got slow or started failing at the onset.

A component's window figures say that it regressed, not which of its
operations did. Each window also keeps per-operation figures
(``states.telemetry.operations``), and an operation's name leads diagnosis to
the function behind it (``states.diagnose.functions.names_operation``). So
each operation seen after the onset is compared with its own windows before:

- latency: the median of its per-window mean latencies (``total_ms / count``)
  after the onset against the same median before, in units of the spread of
  the windows before (``states.diagnose.deviations.robust_scale``: scaled MAD,
  harmful tail or a tenth of the level, whichever is largest). It moved when
  it is at least ``MIN_SLOWDOWN`` times as slow and ``NOISE_Z`` spreads above.
- errors: its error rate after against its rate before (add-one smoothed, so
  an operation that never failed still has a rate to be compared with). It
  moved when it failed at least ``MIN_ERRORS`` times, at ``MIN_ERROR_RATIO``
  times the rate before, and ``NOISE_Z`` binomial standard errors above it.

An operation needs ``MIN_RECORDS`` records after the onset to be judged, so a
rare operation's noise never names one. One with fewer than that before (new
with the release, or rare until then) is compared with the whole component
before the onset instead, and says so (``baseline: "component"``). ``other``
(the operations summed beyond each window's busiest) is never named. Moved
operations are ranked by how far they moved (``moved``: log2 of the larger of
the slowdown and the error-rate ratio) and the first ``PASSED`` are passed to
the suspect ranking. Records without a duration are not in ``total_ms``: a
window whose records of an operation carry none gives it no latency, and an
operation without any is judged on its errors alone.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np

from states.diagnose.deviations import DeviationSettings, robust_scale
from states.telemetry.operations import OTHER, Figures

MIN_RECORDS: Final = 10  # per side: fewer records say nothing about a mean or a rate
MIN_SLOWDOWN: Final = 1.5
MIN_ERRORS: Final = 3
MIN_ERROR_RATIO: Final = 2.0
NOISE_Z: Final = 3.0
PASSED: Final = 3  # the operations passed to the suspect ranking
_SPREAD: Final = DeviationSettings(directions={}, relative_floor=0.1, absolute_floor=1e-6)

Windows = Sequence[Mapping[str, Figures]]
Baseline = Literal["own", "component"]


@dataclass(frozen=True)
class Observed:
    """An operation's records over some windows: counts and each window's mean latency."""

    count: int = 0
    errors: int = 0
    means: tuple[float, ...] = ()

    @property
    def error_rate(self) -> float:
        return self.errors / self.count if self.count else 0.0

    @property
    def level(self) -> float | None:
        """The median of the windows' mean latencies (None without any duration)."""
        return statistics.median(self.means) if self.means else None


@dataclass(frozen=True)
class OperationShift:
    """One operation that got slower or started failing, with its figures before and after.

    ``slowdown`` is ``after_mean_ms / before_mean_ms`` and ``error_ratio`` the
    error rate after over the smoothed rate before; each is 1.0 unless it
    moved beyond noise. The means are medians of per-window means.
    """

    operation: str
    baseline: Baseline
    before_count: int
    after_count: int
    before_mean_ms: float | None
    after_mean_ms: float | None
    before_error_rate: float
    after_error_rate: float
    slowdown: float
    error_ratio: float
    moved: float

    @property
    def changes(self) -> tuple[str, ...]:
        """``slower``, ``failing`` or both."""
        return tuple(
            name
            for name, value in (("slower", self.slowdown), ("failing", self.error_ratio))
            if value > 1.0
        )


def observe(windows: Windows, operation: str | None) -> Observed:
    """One operation's records over ``windows``; ``None`` for all of them together."""
    count = errors = 0
    means = []
    for window in windows:
        entries = window.values() if operation is None else [window.get(operation)]
        figures = [e for e in entries if e is not None]
        n = sum(int(e["count"]) for e in figures)
        total = sum(e["total_ms"] for e in figures)
        count += n
        errors += sum(int(e["errors"]) for e in figures)
        if n and total > 0:
            means.append(total / n)
    return Observed(count, errors, tuple(means))


def slowdown(before: Observed, after: Observed) -> float:
    """How many times slower ``after`` is, if beyond noise; 1.0 otherwise."""
    level, late = before.level, after.level
    if level is None or late is None or level <= 0:
        return 1.0
    scale = robust_scale(np.asarray(before.means, dtype=np.float64), 1.0, _SPREAD)
    ratio = late / level
    return ratio if ratio >= MIN_SLOWDOWN and (late - level) / scale >= NOISE_Z else 1.0


def error_ratio(before: Observed, after: Observed) -> float:
    """How many times the (smoothed) error rate before ``after`` fails at, if beyond noise."""
    if after.errors < MIN_ERRORS:
        return 1.0
    expected = (before.errors + 1) / (before.count + 2)
    rate = after.error_rate
    z = (rate - expected) / math.sqrt(expected * (1 - expected) / after.count)
    ratio = rate / expected
    return ratio if ratio >= MIN_ERROR_RATIO and z >= NOISE_Z else 1.0


def compare(
    operation: str, before: Observed, after: Observed, baseline: Baseline
) -> OperationShift:
    """The shift of one operation (``moved`` 0 when neither latency nor errors moved)."""
    slower, failing = slowdown(before, after), error_ratio(before, after)
    return OperationShift(
        operation=operation,
        baseline=baseline,
        before_count=before.count,
        after_count=after.count,
        before_mean_ms=_rounded(before.level),
        after_mean_ms=_rounded(after.level),
        before_error_rate=round(before.error_rate, 4),
        after_error_rate=round(after.error_rate, 4),
        slowdown=round(slower, 3),
        error_ratio=round(failing, 3),
        moved=round(math.log2(max(slower, failing)), 3),
    )


def shifted_operations(
    before: Windows, after: Windows, limit: int = PASSED
) -> list[OperationShift]:
    """The operations that moved most from ``before`` (healthy windows) to ``after`` the onset."""
    component = observe(before, None)
    found = []
    for name in sorted({n for window in after for n in window} - {OTHER}):
        late = observe(after, name)
        if late.count < MIN_RECORDS:
            continue
        own = observe(before, name)
        basis: Baseline = "own" if own.count >= MIN_RECORDS else "component"
        reference = own if basis == "own" else component
        if reference.count < MIN_RECORDS:
            continue
        shift = compare(name, reference, late, basis)
        if shift.moved > 0:
            found.append(shift)
    return sorted(found, key=lambda s: (-s.moved, s.operation))[:limit]


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
