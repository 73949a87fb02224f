"""The unit file's ExecStart survives paths that systemd would otherwise split."""

from __future__ import annotations

import shlex
from pathlib import Path

from agent.cli import systemd_unit


def _exec_start(config: Path) -> str:
    unit = systemd_unit(config, "/usr/bin/selfheal", "selfheal")
    (line,) = [ln for ln in unit.splitlines() if ln.startswith("ExecStart=")]
    return line.removeprefix("ExecStart=")


def test_a_config_path_with_spaces_stays_one_argument() -> None:
    words = shlex.split(_exec_start(Path("/etc/self heal/my config.toml")))

    assert words == ["/usr/bin/selfheal", "run", "--config", "/etc/self heal/my config.toml"]


def test_a_plain_config_path_is_written_as_it_is() -> None:
    assert _exec_start(Path("/etc/selfheal/config.toml")).endswith(
        "--config /etc/selfheal/config.toml"
    )


def test_the_unit_names_the_service_user() -> None:
    assert "User=selfheal" in systemd_unit(
        Path("/etc/selfheal/config.toml"), "/usr/bin/selfheal", "selfheal"
    )
