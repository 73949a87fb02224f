"""What the kernel says of a process, so a pid recorded earlier is never mistaken for a stranger.

A pid is reused once its process is gone; its start time (clock ticks since
boot, from ``/proc/<pid>/stat``) is not. The sandbox's child notes and the
local fleet's instance records keep both, and a process counts as theirs only
while both still match.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

GONE_STATES = frozenset({"Z", "X"})  # zombie, dead: exited, only its entry is left


@dataclass(frozen=True)
class ProcessStat:
    """A process's run state letter and its start time in clock ticks since boot."""

    state: str
    start_ticks: int

    @property
    def exited(self) -> bool:
        return self.state in GONE_STATES


def process_stat(pid: int) -> ProcessStat | None:
    """The kernel's record of ``pid``, or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name in parentheses may hold spaces and parentheses: split after the last one.
    fields = stat[stat.rindex(")") + 2 :].split()
    return ProcessStat(state=fields[0], start_ticks=int(fields[19]))
