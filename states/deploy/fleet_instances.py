"""A local-fleet instance: the record of what was started on a target, and its process.

Each target's state file (``<fleet_dir>/targets/<target>.json``) records the
process last started there, so a later run (the agent may restart) can stop it.
Instances are started in their own session so that they outlive the agent, and
are recognised on stop by their pid *and* kernel start time, so a recycled pid
is never signalled. An instance this process started is its child until it
exits; whoever stops it (a deployer, ``stop_fleet``) collects its exit status,
so no zombie lingers. Linux (``/proc``) only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from states.deploy.deployers import DeployError
from states.processes import process_stat
from storage.artifacts import write_atomically

# Instances started by this process, by pid: they are our children until they exit,
# and whichever deployer or stop_fleet call stops one collects its exit status.
_STARTED: dict[int, subprocess.Popen[bytes]] = {}
_POLL_S = 0.025


class TargetState(BaseModel):
    """What was started on a target: enough to recognise and stop that process later."""

    pid: int
    port: int
    version: str
    started_at: datetime
    process_start: int = Field(description="Kernel start time of the process, in clock ticks.")


def start_instance(
    target: str, argv: list[str], *, cwd: Path, env: Mapping[str, str], output: Path
) -> subprocess.Popen[bytes]:
    """Start one instance in its own session, stdout and stderr to ``output``."""
    with output.open("wb") as sink:
        try:
            process = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as error:
            raise DeployError(f"{target}: cannot start {argv[0]!r}: {error}") from None
    _STARTED[process.pid] = process
    return process


def record_instance(fleet_dir: Path, target: str, pid: int, *, port: int, version: str) -> None:
    """Write the target's state file: the process, and the start time that recognises it."""
    state = TargetState(
        pid=pid,
        port=port,
        version=version,
        started_at=datetime.now(UTC),
        process_start=_process_start(pid) or 0,
    )
    write_atomically(state_path(fleet_dir, target), state.model_dump_json().encode())


def stop_fleet(fleet_dir: Path, *, timeout_s: float = 5.0) -> list[str]:
    """Stop every target process recorded under ``fleet_dir``, and nothing else.

    Returns the names of the targets whose state file was cleared; tries every
    target before raising for those whose process would not stop.
    """
    cleared, failures = [], []
    collect_exited_instances()
    for path in sorted((fleet_dir / "targets").glob("*.json")):
        state = read_state(path)
        try:
            if state is not None:
                stop_process(state, timeout_s)
        except DeployError as error:
            failures.append(f"{path.stem}: {error}")
            continue
        path.unlink(missing_ok=True)
        cleared.append(path.stem)
    collect_exited_instances()
    if failures:
        raise DeployError("; ".join(failures))
    return cleared


def stop_process(state: TargetState, timeout_s: float) -> None:
    """SIGTERM the recorded process group, SIGKILL it after ``timeout_s``; never another process."""
    try:
        for signum, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
            if not _is_running(state):
                return
            try:
                os.killpg(state.pid, signum)
            except ProcessLookupError:
                return
            if _wait_until_gone(state, wait_s):
                return
        raise DeployError(f"process {state.pid} (version {state.version}) survived SIGKILL")
    finally:
        _reap(state.pid)


def state_path(fleet_dir: Path, target: str) -> Path:
    return fleet_dir / "targets" / f"{target}.json"


def read_state(path: Path) -> TargetState | None:
    try:
        return TargetState.model_validate_json(path.read_bytes())
    except (OSError, ValidationError):
        return None


def _process_start(pid: int) -> int | None:
    """Kernel start time of a live process (not a zombie), or None."""
    stat = process_stat(pid)
    return None if stat is None or stat.exited else stat.start_ticks


def _is_running(state: TargetState) -> bool:
    return state.process_start != 0 and _process_start(state.pid) == state.process_start


def _wait_until_gone(state: TargetState, wait_s: float) -> bool:
    deadline = time.monotonic() + wait_s
    while True:
        _reap(state.pid)
        if not _is_running(state):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_S)


def collect_exited_instances() -> int:
    """Collect every instance this process started that has exited since (another
    process, such as the daemon, may have replaced it); returns how many."""
    exited = [pid for pid, child in _STARTED.items() if child.poll() is not None]
    for pid in exited:
        _STARTED.pop(pid, None)
    return len(exited)


def _reap(pid: int) -> None:
    """Collect the exit status of an instance this process started, so no zombie lingers."""
    child = _STARTED.get(pid)
    if child is not None and child.poll() is not None:
        _STARTED.pop(pid, None)
