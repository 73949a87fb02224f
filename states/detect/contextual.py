"""Contextual novelty: has this short sequence of coarse values ever been seen before?

Predictor surprise misses anomalies that stay inside the usual range but break
the usual order of values (a daily peak that arrives at night, a sawtooth that
stops).  Following the idea of the contextual anomaly detector (CAD OSE) that
ranks well on NAB, each value is cut into one of a few bins of the range seen
so far, and every point asks, for each context length 1..order, whether "these
last bins, then this bin" has happened before.  The share of never-seen
contexts is the novelty.  After a high novelty the detector rests for a while,
because one incident should page once.  Memory is a capped dict of short
string keys, so the cost per point and per series is bounded and the state is
plain JSON.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

# Symbols are single characters so a context is a short string slice, cheap to hash.
_FIRST_SYMBOL = 48


@dataclass
class ContextNovelty:
    """Share of never-seen value contexts at each point, silenced after an alarm."""

    bins: int = 8
    order: int = 3
    rest_points: int = 100
    alarm: float = 0.75
    capacity: int = 5000
    quiet_points: int = 30
    low: float = 0.0
    high: float = 0.0
    recent: str = ""
    seen: dict[str, int] = field(default_factory=dict)
    points: int = 0
    last_alarm: int = -1

    def update(self, value: float) -> float:
        """Novelty of ``value`` in [0, 1] given the values before it, then learn it."""
        symbol = self._symbol(value)
        novelty = self._novelty(symbol)
        self.recent = (self.recent + symbol)[-self.order :] if self.order else ""
        self.points += 1
        if self.points <= self.quiet_points:
            return 0.0
        if self.last_alarm >= 0 and self.points - self.last_alarm <= self.rest_points:
            return 0.0
        if novelty >= self.alarm:
            self.last_alarm = self.points
        return novelty

    def _symbol(self, value: float) -> str:
        """The bin of ``value`` within the range seen so far (which it widens)."""
        if not self.points:
            self.low = self.high = value
        self.low = min(self.low, value)
        self.high = max(self.high, value)
        return chr(_FIRST_SYMBOL + bin_index(value, self.low, self.high, self.bins))

    def _novelty(self, symbol: str) -> float:
        """Share of contexts ending in ``symbol`` never seen before; remembers them all."""
        lengths = len(self.recent)
        if not lengths:
            return 0.0
        unseen = 0
        for length in range(1, lengths + 1):
            key = self.recent[lengths - length :] + symbol
            if key not in self.seen:
                unseen += 1
                self.seen[key] = self.points
                if len(self.seen) > self.capacity:
                    del self.seen[next(iter(self.seen))]
        return unseen / lengths

    def to_state(self) -> dict[str, Any]:
        """JSON-friendly copy, including the remembered contexts in insertion order."""
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ContextNovelty:
        """Rebuild a detector dumped by ``to_state``."""
        return cls(**{**state, "seen": dict(state["seen"])})


def bin_index(value: float, low: float, high: float, bins: int) -> int:
    """Which of ``bins`` equal slices of [low, high] holds ``value`` (0 for an empty range)."""
    width = high - low
    if width <= 0.0:
        return 0
    return max(0, min(math.floor((value - low) / width * bins), bins - 1))
