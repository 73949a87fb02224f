"""Running checks in a sandbox: a worktree, a scrubbed environment, a timeout, a process group.

Commands come from configuration as argument lists; ``{python}`` names the
interpreter running selfheal. The child gets a minimal environment (no
credentials inherited from the daemon) and its own process group, so a
timeout kills everything it started.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from states.processes import process_stat

KEPT_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")
TAIL_CHARS = 2000


@dataclass(frozen=True)
class CommandResult:
    """How one command ended."""

    argv: list[str]
    exit_code: int | None
    duration_s: float
    timed_out: bool
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def tail(self) -> str:
        text = (self.stdout + ("\n" + self.stderr if self.stderr else "")).strip()
        return text[-TAIL_CHARS:]


def expand(argv: list[str]) -> list[str]:
    """Substitute ``{python}`` in each argument; nothing else is interpreted."""
    return [arg.replace("{python}", sys.executable) for arg in argv]


def scrubbed_env(extra: dict[str, str]) -> dict[str, str]:
    """A minimal environment plus the configured extras."""
    env = {k: v for k, v in os.environ.items() if k in KEPT_ENV}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra)
    return env


def process_start_ticks(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), to tell a reused pid apart.

    An exited group leader still has its start time: the rest of its group may live on.
    """
    stat = process_stat(pid)
    return None if stat is None else stat.start_ticks


def record_child(children_dir: Path, pid: int, argv: list[str]) -> Path:
    """Note a running child group so a restarted agent can reap it if we die first."""
    children_dir.mkdir(parents=True, exist_ok=True)
    path = children_dir / f"{pid}.json"
    path.write_text(json.dumps({"pid": pid, "start": process_start_ticks(pid), "argv": argv}))
    return path


def reap_children(children_dir: Path) -> list[dict[str, object]]:
    """Kill child groups a dead agent left running; returns what was found."""
    found: list[dict[str, object]] = []
    for note in sorted(children_dir.glob("*.json")) if children_dir.exists() else []:
        try:
            info = json.loads(note.read_text())
        except (OSError, json.JSONDecodeError):
            note.unlink(missing_ok=True)
            continue
        pid = int(info.get("pid", 0))
        alive = pid > 0 and process_start_ticks(pid) == info.get("start")
        if alive:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        found.append({"pid": pid, "argv": info.get("argv"), "was_running": alive})
        note.unlink(missing_ok=True)
    return found


def run_command(
    argv: list[str],
    cwd: Path,
    timeout_s: float,
    env: dict[str, str],
    children_dir: Path | None = None,
) -> CommandResult:
    """Run ``argv`` in ``cwd``; on timeout the whole process group is killed.

    With ``children_dir`` the running child is noted there (and the note removed
    when it ends), so a crash of the agent never leaves it running unnoticed.
    """
    argv = expand(argv)
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            start_new_session=True,
        )
    except OSError as exc:
        return CommandResult(argv, None, 0.0, False, "", f"cannot start {argv[0]!r}: {exc}")
    note = record_child(children_dir, proc.pid, argv) if children_dir is not None else None
    try:
        out, err = proc.communicate(timeout=timeout_s)
        return CommandResult(argv, proc.returncode, time.monotonic() - started, False, out, err)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = proc.communicate()
        return CommandResult(argv, None, time.monotonic() - started, True, out, err)
    except BaseException:
        _kill_group(proc)
        proc.communicate()
        raise
    finally:
        if note is not None:
            note.unlink(missing_ok=True)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


class BenchmarkOutputError(ValueError):
    """The benchmark's output had no usable result line."""


@dataclass(frozen=True)
class BenchmarkReading:
    """One benchmark result: a value and which direction is better."""

    metric: str
    value: float
    lower_is_better: bool


def parse_benchmark(stdout: str) -> BenchmarkReading:
    """The last non-empty stdout line must be a JSON object with a numeric ``value``."""
    lines = [ln for ln in stdout.splitlines() if ln.strip()]
    if not lines:
        raise BenchmarkOutputError("benchmark printed nothing")
    try:
        data = json.loads(lines[-1])
    except (ValueError, RecursionError) as exc:  # also 4300+ digit numbers, nesting past the stack
        raise BenchmarkOutputError(f"last line is not JSON: {lines[-1][:200]!r}") from exc
    if not isinstance(data, dict):
        raise BenchmarkOutputError("last line is JSON but not an object")
    value = data.get("value")
    number = _finite(value)
    if number is None:
        raise BenchmarkOutputError(f"'value' must be a finite number, got {value!r:.200}")
    return BenchmarkReading(
        str(data.get("metric", "benchmark")), number, bool(data.get("lower_is_better", True))
    )


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float
        return None
    return number if math.isfinite(number) else None


def improvement(before: float, after: float, lower_is_better: bool) -> float:
    """Relative gain of ``after`` over ``before`` (0.25 = 25% better)."""
    if before == 0:
        return 0.0
    gain = (before - after) / abs(before)
    return gain if lower_is_better else -gain
