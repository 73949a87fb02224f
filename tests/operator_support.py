"""Shared helpers for the tests that drive selfheal as an operator would.

They write real configuration files and log files into a test's directory and
run the real command line (``python -m agent.cli``) as a subprocess, with an
environment cleaned of anything that would leak the test runner's own settings
(``SELFHEAL_CONFIG``, ``NOTIFY_SOCKET``, ``USER``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
CLI_TIMEOUT_S = 60.0
# Variables of the runner that must not reach a selfheal started by a test.
_LEAKY = ("SELFHEAL_CONFIG", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "USER", "LOGNAME")


def toml_str(value: str | Path) -> str:
    """A TOML basic string (JSON's escapes are valid TOML)."""
    return json.dumps(str(value))


def toml_list(values: Iterable[str | Path]) -> str:
    return "[" + ", ".join(toml_str(v) for v in values) + "]"


def write_config(
    directory: Path,
    *,
    name: str = "config.toml",
    agent: str = "",
    deploy_command: Mapping[str, Sequence[str | Path]] | None = None,
    extra: str = "",
) -> Path:
    """The minimal valid configuration, plus ``agent`` lines and ``extra`` tables.

    Paths stay relative (``data``, ``logs/*.log``) so they resolve against the
    file's own directory, as they would for an operator's config.
    """
    command = deploy_command or {
        "targets": ["t1"],
        "deploy": ["true"],
        "version": ["echo", "abc1234"],
    }
    command_lines = "\n".join(f"{key} = {toml_list(value)}" for key, value in command.items())
    text = f"""[agent]
data_dir = "data"
{agent}

[[telemetry.sources]]
name = "app"
paths = ["logs/*.log"]
format = "json"

[deploy]
kind = "command"

[deploy.command]
{command_lines}

{extra}
"""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def cli_env(**extra: str) -> dict[str, str]:
    """The runner's environment without selfheal's variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in _LEAKY}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p
    )
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def cli_argv(config: Path | None, *args: str) -> list[str]:
    head = [PY, "-m", "agent.cli"]
    return [*head, "--config", str(config), *args] if config is not None else [*head, *args]


def run_cli(
    config: Path | None,
    *args: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """One ``selfheal`` invocation, to completion."""
    return subprocess.run(
        cli_argv(config, *args),
        cwd=cwd or (config.parent if config is not None else REPO),
        env=dict(env) if env is not None else cli_env(),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


def run_cli_together(
    calls: Sequence[tuple[Path | None, Sequence[str]]], *, env: Mapping[str, str] | None = None
) -> list[subprocess.CompletedProcess[str]]:
    """Independent invocations started at once (they share the two cores), in call order."""
    procs = [
        subprocess.Popen(
            cli_argv(config, *args),
            cwd=config.parent if config is not None else REPO,
            env=dict(env) if env is not None else cli_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for config, args in calls
    ]
    results = []
    try:
        for proc, (_, args) in zip(procs, calls, strict=True):
            out, err = proc.communicate(timeout=CLI_TIMEOUT_S)
            results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results


def ok_json(result: subprocess.CompletedProcess[str]) -> Any:
    """The JSON a successful invocation printed; fails with its stderr otherwise."""
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}"
    return json.loads(result.stdout)


def log_line(ts: datetime, /, **fields: Any) -> str:
    """One line in the default JSON shape (``fields`` override or add keys)."""
    record: dict[str, Any] = {
        "ts": ts.isoformat(),
        "component": "catalog",
        "operation": "GET /x",
        "duration_ms": 12.3,
        "status": 200,
        "level": "info",
        "message": "served",
        "version": "abc1234",
        "instance": "web-1",
    }
    record.update(fields)
    return json.dumps(record)


def append(path: Path, data: str | bytes) -> None:
    """Append to a log file as a service would (creating it and its folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode() if isinstance(data, str) else data
    with path.open("ab") as handle:
        handle.write(raw)
