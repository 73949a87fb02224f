"""Which processes a workspace still has: by command line or working directory, read from /proc.

Every process a test starts names its workspace somewhere (the daemon's
``--config``, an instance's ``--log``) or runs inside it (sandbox checks run
in worktrees under the data directory), so scanning /proc for the workspace
path finds whatever survived, whoever its parent is.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

from states.deploy import fleet_instances


def _is_zombie(stat: str) -> bool:
    return stat.rsplit(")", 1)[1].split(maxsplit=1)[0] in ("Z", "X")


def processes_of(workspace: Path) -> dict[int, str]:
    """Live processes (not zombies) whose command line names ``workspace`` or that run in it."""
    root = str(workspace.resolve())
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if _is_zombie((entry / "stat").read_text()):
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            cwd = ""
        if root in cmdline or cwd == root or cwd.startswith(root + "/"):
            found[int(entry.name)] = f"{cmdline.strip()} (cwd {cwd})"
    return found


def is_alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        return not _is_zombie(Path(f"/proc/{pid}/stat").read_text())
    except OSError:
        return False


def kill_leftovers(workspace: Path) -> dict[int, str]:
    """Last resort of a finalizer: SIGKILL, by pid, what a failed test left in its workspace."""
    left = processes_of(workspace)
    for pid in left:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return left


def collect_exited_instances() -> None:
    """Collect instances this process started that another process (the daemon) stopped."""
    fleet_instances.collect_exited_instances()
