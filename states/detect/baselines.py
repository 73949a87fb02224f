"""Online baselines that learn a metric's normal level, spread and daily/weekly shape.

The streaming detector keeps thousands of series alive on one core, so every
baseline here is O(1) per point, holds a fixed handful of floats, and is plain
Python (numpy call overhead would dominate at one value per call).  Each class
can dump and restore itself as a JSON-friendly dict so detector state survives
an agent restart.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field
from typing import Any

# Mean absolute deviation of a normal variable is sigma * sqrt(2/pi).
MAD_TO_SIGMA = math.sqrt(math.pi / 2.0)


@functools.cache
def smoothing_factor(half_life: float) -> float:
    """EW smoothing factor whose weights halve every ``half_life`` points.

    Cached: every baseline asks for its factor at every point, from a handful
    of half-lives.
    """
    return 1.0 - math.pow(0.5, 1.0 / half_life)


@dataclass
class EwLevel:
    """Exponentially weighted level and mean absolute deviation of a signal around it."""

    level_half_life: float
    spread_half_life: float
    level: float = 0.0
    spread: float = 0.0
    count: int = 0

    def residual(self, value: float) -> float:
        """How far ``value`` is from the level, before it is learned."""
        return value - self.level if self.count else 0.0

    def sigma(self) -> float:
        """The spread expressed as a normal standard deviation."""
        return self.spread * MAD_TO_SIGMA

    def learn(self, value: float) -> None:
        """Move level and spread towards ``value``."""
        if not self.count:
            self.level = value
            self.count = 1
            return
        error = abs(value - self.level)
        rate_s = max(smoothing_factor(self.spread_half_life), 1.0 / (self.count + 1))
        self.spread += rate_s * (error - self.spread)
        rate_l = max(smoothing_factor(self.level_half_life), 1.0 / (self.count + 1))
        self.level += rate_l * (value - self.level)
        self.count += 1

    def reset_level(self, value: float) -> None:
        """Jump to a new level after a confirmed level shift, keeping the learned spread."""
        self.level = value

    def to_state(self) -> dict[str, Any]:
        """JSON-friendly copy of the baseline."""
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> EwLevel:
        """Rebuild a baseline dumped by ``to_state``."""
        return cls(**state)


@dataclass
class EwMean:
    """Exponentially weighted mean at a constant rate, starting from the first value.

    Unlike ``EwLevel`` it does not average the first points evenly, so a short
    smoothing window stays short from the start instead of carrying the noise of
    its first few values.
    """

    half_life: float
    value: float = 0.0
    count: int = 0

    def learn(self, value: float) -> None:
        """Move the mean towards ``value``."""
        if self.count:
            self.value += smoothing_factor(self.half_life) * (value - self.value)
        else:
            self.value = value
        self.count += 1

    def to_state(self) -> dict[str, Any]:
        """JSON-friendly copy of the mean."""
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> EwMean:
        """Rebuild a mean dumped by ``to_state``."""
        return cls(**state)


@dataclass
class SeasonalProfile:
    """Typical offset from the level for each slot of a season, learned online.

    ``seen`` counts the points learned into each slot (it sets the learning
    rate); ``visits`` counts the separate passes through each slot (each day of
    a daily profile), so a caller can wait until a slot has been seen on more
    than one occasion.
    """

    half_life: float
    slots: int
    period_seconds: float
    offsets: list[float] = field(default_factory=list)
    seen: list[int] = field(default_factory=list)
    visits: list[int] = field(default_factory=list)
    last_pass: int | None = None

    def __post_init__(self) -> None:
        if not self.offsets:
            self.offsets = [0.0] * self.slots
            self.seen = [0] * self.slots
            self.visits = [0] * self.slots

    def pass_at(self, epoch_seconds: float) -> int:
        """Which pass through which slot a UTC timestamp falls in (its slot is this mod ``slots``)."""
        return slot_pass(epoch_seconds, self.period_seconds, self.slots)

    def offset(self, at_pass: int) -> float | None:
        """Learned offset of the slot of ``at_pass`` (None until that slot has been seen)."""
        slot = at_pass % self.slots
        return self.offsets[slot] if self.seen[slot] else None

    def earlier_visits(self, at_pass: int) -> int:
        """Passes through the slot of ``at_pass`` before this one."""
        return self.visits[at_pass % self.slots] - (at_pass == self.last_pass)

    def learn(self, at_pass: int, deviation: float) -> None:
        """Blend a deviation from the level observed during ``at_pass`` into its slot."""
        slot = at_pass % self.slots
        if at_pass != self.last_pass:
            self.visits[slot] += 1
            self.last_pass = at_pass
        seen = self.seen[slot]
        rate = max(smoothing_factor(self.half_life), 1.0 / (seen + 1))
        self.offsets[slot] += rate * (deviation - self.offsets[slot])
        self.seen[slot] = seen + 1

    def to_state(self) -> dict[str, Any]:
        """JSON-friendly copy of the profile."""
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SeasonalProfile:
        """Rebuild a profile dumped by ``to_state``; ValueError if its lists do not fit its slots."""
        profile = cls(**state)
        lengths = {len(profile.offsets), len(profile.seen), len(profile.visits)}
        if lengths != {profile.slots}:
            raise ValueError(f"a profile of {profile.slots} slots holds lists of {sorted(lengths)}")
        return profile


def slot_pass(epoch_seconds: float, period_seconds: float, slots: int) -> int:
    """How many slot-long spans of a season have begun since the epoch.

    Consecutive points share a number while they stay in one pass through one
    slot.  The product is taken before the division so that a timestamp on a
    slot boundary (01:00 for hourly slots) is an exact multiple and lands in
    the slot it starts, not the one before.
    """
    return math.floor(epoch_seconds * slots / period_seconds)


def season_slot(epoch_seconds: float, period_seconds: float, slots: int) -> int:
    """Slot 0..slots-1 of a UTC timestamp within a season of ``period_seconds``.

    Epoch 0 fell on a Thursday; a weekly season therefore starts on Thursday 00:00,
    which does not matter as long as the slot is the same every week.
    """
    return slot_pass(epoch_seconds, period_seconds, slots) % slots


def normal_tail(z: float) -> float:
    """One-sided tail probability P(Z > z) of a standard normal variable."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))
