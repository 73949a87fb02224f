"""Finding, reading and validating the configuration file.

Every error names the file, the key and what was expected, because the person
reading it is an operator at a terminal, not a developer with a debugger.
Relative paths in the file are resolved against the file's own directory, so
a config works the same from any working directory (and under systemd).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from states.settings import Settings

ENV_VAR = "SELFHEAL_CONFIG"
DEFAULT_NAME = "config.toml"


class ConfigError(Exception):
    """The configuration cannot be used; the message says where and why."""


def config_path(explicit: Path | None) -> Path:
    """``--config``, else ``$SELFHEAL_CONFIG``, else ``./config.toml``."""
    if explicit is not None:
        return explicit
    from_env = os.environ.get(ENV_VAR)
    return Path(from_env) if from_env else Path(DEFAULT_NAME)


def _describe(path: Path, exc: ValidationError) -> str:
    lines = [f"{path}: invalid configuration ({exc.error_count()} problem(s)):"]
    for error in exc.errors():
        key = ".".join(str(p) for p in error["loc"]) or "(top level)"
        got = error.get("input")
        shown = "" if isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"  key '{key}': {error['msg']}{shown}")
    return "\n".join(lines)


def _resolve(base: Path, value: str | Path) -> Path:
    try:
        candidate = Path(value).expanduser()
    except RuntimeError as exc:
        raise ValueError(f"path {str(value)!r} names the home of an unknown user") from exc
    return candidate if candidate.is_absolute() else (base / candidate)


def _table(value: object) -> dict[str, Any]:
    """``value`` if it is a table; anything else is left for validation to name."""
    return value if isinstance(value, dict) else {}


def _resolve_paths(raw: dict[str, Any], base: Path) -> None:
    """Make the file's relative paths relative to the file, before validation."""
    agent = _table(raw.get("agent"))
    for key in ("data_dir", "sequences_dir"):
        if isinstance(agent.get(key), str):
            agent[key] = str(_resolve(base, agent[key]))
    repository = _table(raw.get("repository"))
    if isinstance(repository.get("path"), str):
        repository["path"] = str(_resolve(base, repository["path"]))
    sources = _table(raw.get("telemetry")).get("sources")
    for source in sources if isinstance(sources, list) else []:
        if isinstance(source, dict) and isinstance(source.get("paths"), list):
            source["paths"] = [
                str(_resolve(base, p)) if isinstance(p, str) else p for p in source["paths"]
            ]
    fleet = _table(_table(raw.get("deploy")).get("local_fleet"))
    for key in ("repository", "fleet_dir"):
        if isinstance(fleet.get(key), str):
            fleet[key] = str(_resolve(base, fleet[key]))


def load_settings(path: Path, *, data_dir: Path | None = None) -> Settings:
    """Read and validate ``path``; ``data_dir`` overrides ``agent.data_dir``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{path}: configuration file not found (use --config or ${ENV_VAR})"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}") from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    except RecursionError as exc:
        raise ConfigError(f"{path}: not valid TOML: arrays or tables nested too deeply") from exc
    try:
        _resolve_paths(raw, path.resolve().parent)
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    if data_dir is not None and isinstance(raw.setdefault("agent", {}), dict):
        raw["agent"]["data_dir"] = str(data_dir.resolve())
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(path, exc)) from exc
