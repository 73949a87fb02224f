"""Turning dials of a ``config.toml`` written by the demo, one ``key = value`` line at a time.

The demo's ``write_config`` writes the documented configuration with short
windows; a test that needs another autonomy, cooldown or instance command
changes just that line, and the agent reads the file as it would any other.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

START_RECORDER = Path(__file__).with_name("start_recorder.py")


def toml_value(value: Any) -> str:
    """A TOML literal for a string, number, boolean or list of those."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML literal for {value!r}")


def set_option(config: Path, section: str, key: str, value: Any) -> None:
    """Replace the one ``key = ...`` line of table ``[section]``; refuses if it is not there."""
    lines = config.read_text().splitlines()
    current, hits = "", []
    for index, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("["):
            current = stripped.strip("[]").strip()
        elif current == section and stripped.split("=", 1)[0].strip() == key and "=" in stripped:
            hits.append(index)
    if len(hits) != 1:
        raise KeyError(f"{config}: expected one '{key} =' line in [{section}], found {len(hits)}")
    lines[hits[0]] = f"{key} = {toml_value(value)}"
    config.write_text("\n".join(lines) + "\n")
    loaded: Any = tomllib.loads(config.read_text())
    for part in section.split("."):
        loaded = loaded[part]
    if loaded[key] != value:
        raise ValueError(f"{config}: [{section}] {key} reads back as {loaded[key]!r}")


def record_instance_starts(config: Path, starts: Path) -> None:
    """Start every local-fleet instance through ``start_recorder.py``, which notes it in ``starts``."""
    fleet = tomllib.loads(config.read_text())["deploy"]["local_fleet"]
    argv = ["{python}", str(START_RECORDER), str(starts), "{instance}", *fleet["argv"]]
    set_option(config, "deploy.local_fleet", "argv", argv)


def read_starts(starts: Path) -> list[dict[str, Any]]:
    """Every instance start noted so far, in order."""
    if not starts.exists():
        return []
    return [json.loads(line) for line in starts.read_text().splitlines() if line.strip()]
