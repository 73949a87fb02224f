"""The agent's real daemon (``python -m agent.cli --config ... run``) as a subprocess.

Each start writes its own log file, so a test can tell what one run of the
daemon said (for example the reaper's report right after a crash).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class Daemon:
    """One run of the daemon on ``config``, logging to ``log_path``."""

    def __init__(self, config: Path, log_path: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.log_path = log_path
        self.extra_env = dict(env or {})
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("the daemon was not started")
        return self._process.pid

    def start(self) -> Daemon:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.extra_env}
        env.pop("NOTIFY_SOCKET", None)
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "agent.cli", "--config", str(self.config), "run"],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=PROJECT_ROOT,
                start_new_session=True,
            )
        return self

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit status once it exited (``-9`` after SIGKILL), else None."""
        return None if self._process is None else self._process.poll()

    def crash(self) -> None:
        """SIGKILL the daemon process alone, as the OOM killer would; its children live on."""
        if self._process is None:
            return
        if self._process.poll() is None:
            os.kill(self._process.pid, signal.SIGKILL)
        self._process.wait(timeout=30)

    def stop(self) -> int | None:
        """SIGTERM and wait for a clean exit; SIGKILL the group if it does not come."""
        if self._process is None:
            return None
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait(timeout=30)
        return self._process.returncode

    def events(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far (the scheduler's plain-text lines are skipped)."""
        found = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                parsed = json.loads(line)
            except ValueError:
                continue
            if isinstance(parsed, dict):
                found.append(parsed)
        return found

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return f"--- {self.log_path.name} (last {lines} lines) ---\n" + "\n".join(
            text.splitlines()[-lines:]
        )
