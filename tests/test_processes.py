"""A recorded pid is recognised by the kernel's start time, and an exited one is told apart.

Real child processes: running, exited but not yet waited for (a zombie),
waited for (gone), and one whose command name holds spaces and parentheses.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from states.processes import process_stat


def _wait_for_state(pid: int, exited: bool) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        stat = process_stat(pid)
        if stat is not None and stat.exited == exited:
            return
        time.sleep(0.01)
    raise AssertionError(f"pid {pid} never reached exited={exited}")


def test_a_running_child_is_live_with_a_start_time_that_stays_the_same() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        first, again = process_stat(child.pid), process_stat(child.pid)
        assert first is not None and not first.exited
        assert first == again
        assert first.start_ticks > 0
    finally:
        child.kill()
        child.wait()


def test_an_exited_child_not_yet_waited_for_is_exited_and_keeps_its_start_time() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        running = process_stat(child.pid)
        _wait_for_state(child.pid, exited=True)
        zombie = process_stat(child.pid)
        assert zombie is not None and zombie.exited
        assert running is not None and running.start_ticks == zombie.start_ticks
    finally:
        child.wait()
    assert process_stat(child.pid) is None


def test_a_command_name_with_spaces_and_parentheses_is_read_whole(tmp_path: Path) -> None:
    odd = tmp_path / "a (b) c"
    odd.symlink_to(sys.executable)
    child = subprocess.Popen([str(odd), "-c", "import time; time.sleep(30)"])
    try:
        stat = process_stat(child.pid)
        assert stat is not None and not stat.exited
        assert stat.state in {"R", "S", "D"}
    finally:
        child.kill()
        child.wait()


def test_no_such_process_has_no_record() -> None:
    assert process_stat(2**22 + 1) is None  # above the kernel's largest pid
    assert process_stat(os.getpid()) is not None
