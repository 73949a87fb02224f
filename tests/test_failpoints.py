"""Failpoints kill the process exactly where they are armed, and nowhere else."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROGRAM = (
    "from states import failpoints\n"
    "print('before', flush=True)\n"
    "failpoints.hit('beat:validating:verdict:returned')\n"
    "print('after', flush=True)\n"
)


def _run(armed: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SELFHEAL_FAILPOINT"}
    if armed is not None:
        env["SELFHEAL_FAILPOINT"] = armed
    return subprocess.run(
        [sys.executable, "-c", PROGRAM],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_an_armed_failpoint_kills_the_process_with_sigkill_at_that_point() -> None:
    done = _run("beat:validating:verdict:returned")

    assert done.returncode == -signal.SIGKILL
    assert done.stdout.split() == ["before"]


def test_a_failpoint_armed_elsewhere_lets_the_process_run_on() -> None:
    done = _run("beat:validating:verdict:started")

    assert done.returncode == 0
    assert done.stdout.split() == ["before", "after"]


def test_no_failpoint_armed_changes_nothing() -> None:
    done = _run(None)

    assert (done.returncode, done.stdout.split()) == (0, ["before", "after"])
