"""Where "now" comes from: injected, so tests move time without sleeping.

Two clocks with two jobs. Wall time (``now``) names moments that people read
and that are stored (when a wave was applied); NTP or an operator can step it
by hours. Monotonic time never jumps, so every duration the agent waits out
(a bake, a retry delay) is measured on it. A wait that must survive a restart
is stored as a ``Countdown``: how long, from which monotonic reading, on which
boot. Within one boot the monotonic clock carries on across processes, so a
restarted agent sees the exact time elapsed; after a reboot it starts again
from zero, so the countdown restarts in full at the first look: never longer
than its duration from the restart, never shorter than its duration on the
clock of the boot that finishes it.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")
# Without a kernel boot id every process counts as a new boot: a restart then
# waits a countdown out in full, which is the safe direction.
_PROCESS_BOOT = f"process-{uuid.uuid4()}"


class Clock(Protocol):
    """Wall time for stored moments, monotonic time for durations.

    A clock may also have ``boot_id() -> str`` naming the epoch its monotonic
    readings count from; one without it counts from this machine's boot.
    """

    def now(self) -> datetime:
        """The current UTC time, timezone-aware."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin that never goes backwards."""
        ...


class SystemClock:
    """The real clocks of this machine."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def boot_id(self) -> str:
        return machine_boot_id()


def machine_boot_id() -> str:
    """This boot's id from the kernel (monotonic readings are comparable within it)."""
    try:
        return BOOT_ID_PATH.read_text().strip() or _PROCESS_BOOT
    except OSError:
        return _PROCESS_BOOT


def boot_of(clock: Clock) -> str:
    """Which boot ``clock``'s monotonic readings count from."""
    named = getattr(clock, "boot_id", None)
    return str(named()) if callable(named) else machine_boot_id()


@dataclass(frozen=True)
class Countdown:
    """A duration being waited out, anchored on one boot's monotonic clock."""

    duration_s: float
    started_mono: float
    boot_id: str


def start_countdown(clock: Clock, duration_s: float) -> Countdown:
    """A countdown of ``duration_s`` starting now."""
    return Countdown(max(0.0, duration_s), clock.monotonic(), boot_of(clock))


def remaining_s(countdown: Countdown, clock: Clock) -> float | None:
    """Seconds left (0 when done); None when it was anchored on another boot and must restart."""
    elapsed = clock.monotonic() - countdown.started_mono
    if countdown.boot_id != boot_of(clock) or elapsed < 0:
        return None
    return max(0.0, countdown.duration_s - elapsed)


def resume_countdown(countdown: Countdown, clock: Clock) -> tuple[Countdown, float]:
    """The countdown to keep and the seconds it has left; restarted in full on a new boot.

    When the returned countdown differs from the one given, the caller stores it.
    """
    left = remaining_s(countdown, clock)
    if left is not None:
        return countdown, left
    restarted = start_countdown(clock, countdown.duration_s)
    return restarted, restarted.duration_s
