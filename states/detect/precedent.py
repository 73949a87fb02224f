"""Precedent: has a view of the series ever gone this far before?

A value beyond everything seen so far is the plainest evidence that something
changed, and it needs no model of the noise: for any steady series a new record
becomes rarer the longer the series runs (about 1/n at point n), whatever the
distribution, so the same rule is equally strict for a quiet series and a
spiky one.  The detector watches several views of one series (the value, its
short-term mean, its point-to-point spread, its deviation from the learned
daily shape) and each view keeps the highest and lowest value it has reached.
A record counts only when it clears the old one by a share of the view's range,
so small drifts at the edge are not news, and the range relaxes very slowly
towards the series' level, so a spike long ago does not hide a smaller one
forever.  Each record reports how many tolerances it cleared.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# A range of zero (a flat series) still needs a width, relative to the level.
_ABSOLUTE_FLOOR = 1e-9
_RELATIVE_FLOOR = 1e-4


@dataclass(slots=True)
class RangeRecord:
    """Highest and lowest value of one view; reports values that clear them."""

    tolerance: float
    warmup: int
    keep: float = 1.0
    upward_only: bool = False
    high: float = 0.0
    low: float = 0.0
    count: int = 0

    def update(self, value: float, centre: float) -> float:
        """How many tolerances ``value`` clears the range by (0 if it does not), then learn it.

        ``centre`` is where the range relaxes to (the series' level, or zero for
        views that are deviations).
        """
        count, high, low = self.count, self.high, self.low
        if not count:
            self.high = self.low = value
            self.count = 1
            return 0.0
        width = max(high - low, _ABSOLUTE_FLOOR + _RELATIVE_FLOOR * abs(centre))
        margin = self.tolerance * width + _ABSOLUTE_FLOOR
        beyond = value - high
        if not self.upward_only and low - value > beyond:
            beyond = low - value
        cleared = beyond / margin if count >= self.warmup and beyond > margin else 0.0
        keep = self.keep
        # max()/min() spelled out: the same result (NaN included), without two calls per point.
        relaxed_high, relaxed_low = centre + (high - centre) * keep, centre + (low - centre) * keep
        self.high = relaxed_high if relaxed_high > value else value
        self.low = relaxed_low if relaxed_low < value else value
        self.count = count + 1
        return cleared

    def to_state(self) -> dict[str, Any]:
        """JSON-friendly copy of the record."""
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> RangeRecord:
        """Rebuild a record dumped by ``to_state``."""
        return cls(**state)
