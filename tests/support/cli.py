"""The ``selfheal`` command line as an operator runs it: a subprocess on a config file.

The environment is the runner's minus what would leak its own settings into
the agent (a config path, a systemd socket, a failpoint), so a test's CLI
call behaves as one typed into a shell next to the daemon.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.daemon import PROJECT_ROOT

CLI_TIMEOUT_S = 120.0
_LEAKY = ("SELFHEAL_CONFIG", "SELFHEAL_FAILPOINT", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def cli_env() -> dict[str, str]:
    """The runner's environment without selfheal's own variables."""
    env = {k: v for k, v in os.environ.items() if k not in _LEAKY}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def cli_argv(config: Path, *arguments: str) -> list[str]:
    return [sys.executable, "-m", "agent.cli", "--config", str(config), *arguments]


def run_cli(config: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """One invocation, to completion (it never raises for a non-zero exit)."""
    return subprocess.run(
        cli_argv(config, *arguments),
        cwd=PROJECT_ROOT,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


def override(config: Path, verb: str, *, by: str, reason: str) -> subprocess.CompletedProcess[str]:
    """``selfheal override <verb>`` as operator ``by``; fails loudly if the CLI refused it."""
    done = run_cli(config, "override", verb, "--reason", reason, "--by", by, "--json")
    if done.returncode != 0:
        raise AssertionError(f"override {verb} exited {done.returncode}: {done.stderr.strip()}")
    return done
