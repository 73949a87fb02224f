"""A clock the test moves: wall time that can jump by hours, monotonic time that cannot.

It implements ``states.clock.Clock`` plus ``boot_id``, so a test can also play
a reboot: a new clock whose monotonic readings start again from another origin
under another boot id.
"""

from __future__ import annotations

from datetime import datetime, timedelta


class SteppedClock:
    """``advance`` moves both clocks; ``jump`` steps only the wall clock, as NTP or a person would."""

    def __init__(self, wall: datetime, mono: float = 1000.0, boot: str = "boot-a") -> None:
        self._wall = wall
        self._mono = mono
        self._boot = boot

    def now(self) -> datetime:
        return self._wall

    def monotonic(self) -> float:
        return self._mono

    def boot_id(self) -> str:
        return self._boot

    def advance(self, seconds: float) -> None:
        self._wall += timedelta(seconds=seconds)
        self._mono += seconds

    def jump(self, seconds: float) -> None:
        self._wall += timedelta(seconds=seconds)
