"""Contextual novelty: has this short sequence of coarse values ever been seen before?

Records miss anomalies that stay inside the usual range but break the usual
order of values (a daily peak that arrives at night, a sawtooth that stops).
Following the idea of the contextual anomaly detector (CAD OSE), each value is
cut into a coarse bin, and every point asks, for each context length
1..order, whether "these last bins, then this bin" has happened before; the
share of never-seen contexts is the novelty.

The bins must not depend on values not seen yet, so their width is fixed at
the end of a warm-up from the range seen during it, widened a few times so
that normal values share a few bins and a value far outside lands in a new
one.  Bins reach far beyond that range (46 either side of its centre).  Novelty
alone is noisy, so
``NoveltySurge`` asks whether its recent average stands out from its own
long-run distribution (the anomaly-likelihood idea of Numenta's detector).
Memory is a capped dict of short string keys, so the cost per point and per
series is bounded and the state is plain JSON.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from states.detect import baselines

# Bin numbers become single printable ASCII characters, so a context is a short
# string slice that JSON stores without escapes; values more than 46 bins (about
# 17 warm-up ranges) from the origin share the outermost bins.
_ZERO_SYMBOL = 80
_MAX_BIN = 46


@dataclass
class ContextNovelty:
    """Share of never-seen value contexts at each point."""

    bins: int = 8
    order: int = 3
    widening: float = 3.0
    warmup: int = 150
    capacity: int = 5000
    low: float = 0.0
    high: float = 0.0
    origin: float = 0.0
    width: float = 0.0
    recent: str = ""
    seen: dict[str, int] = field(default_factory=dict)
    points: int = 0

    def update(self, value: float) -> float:
        """Novelty of ``value`` in [0, 1] given the values before it, then learn it."""
        symbol = chr(_ZERO_SYMBOL + self._bin(value))
        novelty = self._novelty(symbol)
        self.recent = (self.recent + symbol)[-self.order :] if self.order else ""
        self.points += 1
        return novelty

    def _bin(self, value: float) -> int:
        """The bin of ``value``; during the warm-up the bins follow the range seen so far."""
        if self.points < self.warmup:
            if not self.points:
                self.low = self.high = value
            self.low, self.high = min(self.low, value), max(self.high, value)
            self.origin = (self.low + self.high) / 2.0
            floor = 1e-9 + 1e-6 * abs(self.origin)
            self.width = max((self.high - self.low) * self.widening / self.bins, floor)
        return bin_index(value, self.origin, self.width)

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


@dataclass
class NoveltySurge:
    """How far the recent mean novelty stands above its long-run mean, in standard deviations.

    A noisy series is novel all the time; what matters is novelty well above
    its own habit.  The floors on mean and deviation keep a series that is
    almost never novel from alarming at its first new context.
    """

    window: int = 10
    half_life: float = 3000.0
    warmup: int = 300
    floor_mean: float = 0.03
    floor_deviation: float = 0.0173
    recent: list[float] = field(default_factory=list)
    mean: float = 0.0
    variance: float = 0.0
    count: int = 0

    def update(self, novelty: float) -> float:
        """Standardised recent mean novelty (0 during the warm-up), then learn it."""
        self.recent.append(novelty)
        if len(self.recent) > self.window:
            del self.recent[0]
        average = sum(self.recent) / len(self.recent)
        surge = 0.0
        if self.count >= self.warmup:
            deviation = max(math.sqrt(self.variance), self.floor_deviation)
            surge = (average - max(self.mean, self.floor_mean)) / deviation
        rate = max(baselines.smoothing_factor(self.half_life), 1.0 / (self.count + 1))
        delta = average - self.mean
        self.mean += rate * delta
        self.variance = (1.0 - rate) * (self.variance + rate * delta * delta)
        self.count += 1
        return surge

    def to_state(self) -> dict[str, Any]:
        """JSON-friendly copy."""
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> NoveltySurge:
        """Rebuild a surge tracker dumped by ``to_state``."""
        return cls(**{**state, "recent": list(state["recent"])})


def bin_index(value: float, origin: float, width: float) -> int:
    """Which bin of ``width`` (counted from ``origin``) holds ``value``, within the symbol range."""
    return max(-_MAX_BIN, min(math.floor((value - origin) / width), _MAX_BIN))
