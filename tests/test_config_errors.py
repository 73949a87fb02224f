"""Configuration mistakes are reported for a person at a terminal: file, key, problem.

The messages are checked on ``agent.settings.load_settings`` directly; the
command line's side (exit code 2, message on stderr, no traceback, nothing
written to the data directory) is checked on real ``python -m agent.cli``
processes, started together once for the whole module to spare the cores.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.settings import ConfigError, load_settings
from tests.operator_support import PY, cli_env, write_config

VALID_DEPLOY = """[deploy]
kind = "command"

[deploy.command]
targets = ["t1"]
deploy = ["true"]
version = ["echo", "abc1234"]
"""

BAD_CONFIGS = {
    "wrong-type": '[agent]\ndata_dir = "data"\npoll_interval_s = "often"\n\n' + VALID_DEPLOY,
    "unknown-key": '[agent]\ndata_dir = "data"\nfrobnicate = 1\n\n' + VALID_DEPLOY,
    "no-command-table": '[agent]\ndata_dir = "data"\n\n[deploy]\nkind = "command"\n',
    "waves-out-of-order": '[agent]\ndata_dir = "data"\n\n'
    + VALID_DEPLOY.replace('kind = "command"', 'kind = "command"\nwaves = [50.0, 25.0, 100.0]'),
    "waves-short-of-all": '[agent]\ndata_dir = "data"\n\n'
    + VALID_DEPLOY.replace('kind = "command"', 'kind = "command"\nwaves = [25.0, 50.0]'),
    "section-not-a-table": 'agent = "fast"\n\n' + VALID_DEPLOY,
    "not-toml": '[agent]\ndata_dir = "data"\npoll_interval_s = = 3\n\n' + VALID_DEPLOY,
    "calls-unknown-component": '[components.web]\ncalls = ["catalgo"]\n\n'
    + '[components.catalog]\npaths = ["catalog/"]\n\n'
    + VALID_DEPLOY,
}


def write_bad(directory: Path, case: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.toml"
    path.write_text(BAD_CONFIGS[case], encoding="utf-8")
    return path


def problem(path: Path) -> str:
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    return str(raised.value)


class TestMessagesNameFileKeyAndProblem:
    def test_a_value_of_the_wrong_type(self, tmp_path: Path) -> None:
        path = write_bad(tmp_path, "wrong-type")
        message = problem(path)
        assert message.startswith(f"{path}: invalid configuration")
        assert "key 'agent.poll_interval_s'" in message
        assert "valid number" in message
        assert "'often'" in message

    def test_an_unknown_key(self, tmp_path: Path) -> None:
        path = write_bad(tmp_path, "unknown-key")
        message = problem(path)
        assert str(path) in message
        assert "key 'agent.frobnicate'" in message
        assert "not permitted" in message

    def test_a_command_deployer_without_its_table(self, tmp_path: Path) -> None:
        path = write_bad(tmp_path, "no-command-table")
        message = problem(path)
        assert str(path) in message
        assert "key 'deploy'" in message
        assert "needs a [deploy.command] table" in message

    @pytest.mark.parametrize(
        ("case", "says"),
        [
            ("waves-out-of-order", "increasing percentages"),
            ("waves-short-of-all", "the last wave must be 100"),
        ],
    )
    def test_invalid_waves(self, tmp_path: Path, case: str, says: str) -> None:
        path = write_bad(tmp_path, case)
        message = problem(path)
        assert str(path) in message
        assert "key 'deploy.waves'" in message
        assert says in message

    def test_a_call_to_a_component_that_is_not_configured(self, tmp_path: Path) -> None:
        path = write_bad(tmp_path, "calls-unknown-component")
        message = problem(path)
        assert str(path) in message
        assert "key 'components'" in message
        assert "components.web.calls names 'catalgo'" in message
        assert "configured: catalog, web" in message

    def test_a_component_calling_itself(self, tmp_path: Path) -> None:
        path = tmp_path / "config.toml"
        path.write_text('[components.web]\ncalls = ["web"]\n\n' + VALID_DEPLOY, encoding="utf-8")
        assert "components.web.calls names the component itself" in problem(path)

    def test_a_section_that_is_not_a_table(self, tmp_path: Path) -> None:
        path = write_bad(tmp_path, "section-not-a-table")
        message = problem(path)
        assert str(path) in message
        assert "key 'agent'" in message

    def test_every_problem_is_listed_not_only_the_first(self, tmp_path: Path) -> None:
        path = tmp_path / "config.toml"
        path.write_text(
            '[agent]\npoll_interval_s = -1\nautonomy = "yolo"\n\n' + VALID_DEPLOY,
            encoding="utf-8",
        )
        message = problem(path)
        assert "2 problem(s)" in message
        assert "key 'agent.poll_interval_s'" in message
        assert "key 'agent.autonomy'" in message

    def test_invalid_toml_names_the_file_and_the_line(self, tmp_path: Path) -> None:
        path = write_bad(tmp_path, "not-toml")
        message = problem(path)
        assert message.startswith(f"{path}: not valid TOML")
        assert "line 3" in message

    def test_a_missing_file_names_the_ways_to_point_at_one(self, tmp_path: Path) -> None:
        message = problem(tmp_path / "nowhere.toml")
        assert str(tmp_path / "nowhere.toml") in message
        assert "not found" in message
        assert "SELFHEAL_CONFIG" in message
        assert "--config" in message


class TestPathResolution:
    def test_relative_paths_resolve_against_the_config_files_directory(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        config = write_config(tmp_path / "conf", agent='sequences_dir = "my-sequences"')
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        monkeypatch.chdir(elsewhere)

        settings = load_settings(Path("../conf/config.toml"))

        assert settings.agent.data_dir == config.parent / "data"
        assert settings.agent.sequences_dir == config.parent / "my-sequences"
        assert settings.telemetry.sources[0].paths == [str(config.parent / "logs" / "*.log")]

    def test_the_data_dir_override_wins_and_resolves_against_the_working_directory(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        config = write_config(tmp_path / "conf")
        monkeypatch.chdir(tmp_path)

        settings = load_settings(config, data_dir=Path("state"))

        assert settings.agent.data_dir == tmp_path / "state"


# --- the command line ---------------------------------------------------------------------


@dataclass
class Outcome:
    """One CLI run and the directory whose ``data`` folder it must not create."""

    directory: Path
    config: Path
    result: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Every CLI case of this module, run as many at once as there are cores."""
    root = tmp_path_factory.mktemp("cli")
    commands = {
        "wrong-type": ["check"],
        "unknown-key": ["run"],
        "no-command-table": ["tick"],
        "not-toml": ["override", "pause", "--reason", "x"],
    }
    calls: list[tuple[str, Path, list[str], dict[str, str]]] = []
    for case, args in commands.items():
        config = write_bad(root / case, case)
        calls.append((case, config, ["--config", str(config), *args], cli_env()))
    good = write_config(root / "good")
    missing = root / "missing" / "config.toml"
    missing.parent.mkdir()
    calls += [
        ("missing-via-env", missing, ["status"], cli_env(SELFHEAL_CONFIG=str(missing))),
        (
            "flag-beats-env",
            good,
            ["--config", str(good), "check", "--json"],
            cli_env(SELFHEAL_CONFIG=str(write_bad(root / "env-bad", "unknown-key"))),
        ),
        (
            "data-dir-flag",
            good,
            ["--config", "good/config.toml", "--data-dir", "state", "check", "--json"],
            cli_env(),
        ),
    ]
    # As many at once as there are cores: each call's deadline then covers its own start-up
    # (about 2 s of CPU), not that of every call sharing the cores with it.
    width = os.cpu_count() or 2
    found: dict[str, Outcome] = {}
    for start in range(0, len(calls), width):
        found.update(_run_at_once(root, calls[start : start + width]))
    return found


def _run_at_once(
    root: Path, calls: list[tuple[str, Path, list[str], dict[str, str]]]
) -> dict[str, Outcome]:
    # Every case runs from the root, never from its config's directory.
    procs = [
        (
            case,
            config,
            subprocess.Popen(
                [PY, "-m", "agent.cli", *args],
                cwd=root,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
        )
        for case, config, args, env in calls
    ]
    found = {}
    try:
        for case, config, proc in procs:
            out, err = proc.communicate(timeout=60)
            result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
            found[case] = Outcome(config.parent, config, result)
    finally:
        for _, _, proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return found


class TestCommandLine:
    @pytest.mark.parametrize(
        ("case", "key"),
        [
            ("wrong-type", "agent.poll_interval_s"),
            ("unknown-key", "agent.frobnicate"),
            ("no-command-table", "deploy"),
            ("not-toml", None),
        ],
    )
    def test_a_bad_config_exits_2_with_the_message_on_stderr_and_writes_nothing(
        self, outcomes: dict[str, Outcome], case: str, key: str | None
    ) -> None:
        outcome = outcomes[case]
        result = outcome.result
        assert result.returncode == 2, result.stderr
        assert result.stdout == ""
        assert result.stderr.startswith(f"selfheal: {outcome.config}: ")
        assert "Traceback" not in result.stderr
        if key is not None:
            assert f"key '{key}'" in result.stderr
        else:
            assert "line 3" in result.stderr
        assert sorted(p.name for p in outcome.directory.iterdir()) == ["config.toml"]

    def test_without_the_flag_the_environment_variable_names_the_file(
        self, outcomes: dict[str, Outcome]
    ) -> None:
        outcome = outcomes["missing-via-env"]
        assert outcome.result.returncode == 2
        assert str(outcome.config) in outcome.result.stderr
        assert "SELFHEAL_CONFIG" in outcome.result.stderr
        assert not outcome.config.parent.joinpath("data").exists()

    def test_the_config_flag_beats_the_environment_variable(
        self, outcomes: dict[str, Outcome]
    ) -> None:
        outcome = outcomes["flag-beats-env"]
        assert outcome.result.returncode == 0, outcome.result.stderr
        report = json.loads(outcome.result.stdout)
        assert report["config"] == str(outcome.config)
        # run from another directory: the file's relative data_dir is next to the file
        assert report["data_dir"] == str(outcome.config.parent / "data")

    def test_the_data_dir_flag_overrides_the_file(self, outcomes: dict[str, Outcome]) -> None:
        outcome = outcomes["data-dir-flag"]
        assert outcome.result.returncode == 0, outcome.result.stderr
        report = json.loads(outcome.result.stdout)
        assert report["data_dir"] == str(outcome.config.parent.parent / "state")
        assert report["config"] == "good/config.toml"
