"""The local-fleet deployer, against real processes started from a real git repository.

The repository holds a tiny HTTP service whose revisions differ in how they
behave: a normal one, a second normal one, one that crashes at start-up and
one that ignores SIGTERM. The service writes the argv and environment it got
to its ``{log}`` file, so tests can see exactly what the deployer passed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from states.deploy.deployers import DeployError
from states.deploy.fleet_instances import TargetState, stop_fleet
from states.deploy.local_fleet import LocalFleet, LocalFleetSettings, render_argv

SERVICE = """\
import json, os, signal, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

BEHAVIOUR = "normal"
if BEHAVIOUR == "crash":
    raise RuntimeError("cannot open the orders database at /nonexistent/orders.db")
if BEHAVIOUR == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
with open(sys.argv[2], "w") as seen:
    json.dump({"argv": sys.argv[1:], "env": dict(os.environ)}, seen)


class Version(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"version": os.environ["SERVICE_VERSION"]}).encode()
        self.send_response(200 if self.path == "/version" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", int(sys.argv[1].removeprefix("--port="))), Version).serve_forever()
"""

LITERAL = "$(touch pwned); `touch pwned2` | cat > x && echo * {instance}"
ARGV = ["{python}", "serve.py", "--port={port}", "{log}", "{instance}@{version}", LITERAL]


def git(repository: Path, *arguments: str) -> str:
    env = {"PATH": os.environ["PATH"], "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
    identity = ["-c", "user.name=Fleet Tests", "-c", "user.email=fleet@tests.example"]
    command = ["git", "-C", str(repository), *identity, *arguments]
    return subprocess.run(command, capture_output=True, text=True, check=True, env=env).stdout


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A repository with one revision per behaviour, by name."""
    repository = tmp_path_factory.mktemp("service")
    git(repository, "init", "-q", "--initial-branch=main")
    revisions = {}
    for name, behaviour in [("v1", "normal"), ("v2", "normal"), ("crash", "crash")]:
        source = SERVICE.replace('BEHAVIOUR = "normal"', f'BEHAVIOUR = "{behaviour}"')
        (repository / "serve.py").write_text(f"# release {name}\n{source}")
        git(repository, "add", "serve.py")
        git(repository, "commit", "-q", "-m", f"release {name}")
        revisions[name] = git(repository, "rev-parse", "HEAD").strip()
    source = SERVICE.replace('BEHAVIOUR = "normal"', 'BEHAVIOUR = "stubborn"')
    (repository / "serve.py").write_text(source)
    git(repository, "commit", "-q", "-am", "release stubborn")
    revisions["stubborn"] = git(repository, "rev-parse", "HEAD").strip()
    return repository, revisions


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def settings_for(repository: Path, fleet_dir: Path, **overrides: Any) -> LocalFleetSettings:
    fields: dict[str, Any] = {
        "repository": repository,
        "fleet_dir": fleet_dir,
        "targets": {"web-1": free_port(), "web-2": free_port()},
        "argv": ARGV,
        "env": {"GREETING": "hello; rm -rf / && echo $HOME"},
        "start_timeout_s": 10.0,
        "stop_timeout_s": 2.0,
    }
    return LocalFleetSettings(**(fields | overrides))


@pytest.fixture
def fleet(versions: tuple[Path, dict[str, str]], tmp_path: Path) -> Iterator[LocalFleet]:
    fleet = LocalFleet(settings_for(versions[0], tmp_path / "fleet"))
    yield fleet
    stop_fleet(tmp_path / "fleet")


def state_file(fleet: LocalFleet, target: str) -> TargetState:
    state = fleet.state(target)
    assert state is not None
    return state


def alive(pid: int) -> bool:
    """Running and not a zombie (a zombie has exited, only its status is left)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in "ZX"
    except OSError:
        return False


# Deploying and the no-op.


def test_deploy_starts_a_target_that_answers_its_version(
    fleet: LocalFleet, versions: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    v1 = versions[1]["v1"]
    fleet.deploy("web-1", v1, timeout_s=10)
    assert fleet.running_versions() == {"web-1": v1, "web-2": None}
    state = state_file(fleet, "web-1")
    assert (state.version, state.port) == (v1, fleet.settings.targets["web-1"])
    assert alive(state.pid) and state.started_at.tzinfo is not None
    releases = tmp_path / "fleet" / "releases"
    assert [path.name for path in releases.iterdir()] == [v1]
    assert (releases / v1 / "serve.py").read_text().startswith("# release v1")


def test_deploying_the_running_version_is_a_no_op(
    fleet: LocalFleet, versions: tuple[Path, dict[str, str]]
) -> None:
    fleet.deploy("web-1", versions[1]["v1"], timeout_s=10)
    before = state_file(fleet, "web-1")
    fleet.deploy("web-1", versions[1]["v1"], timeout_s=10)
    assert state_file(fleet, "web-1") == before
    assert alive(before.pid)


def test_deploying_a_new_version_replaces_the_process(
    fleet: LocalFleet, versions: tuple[Path, dict[str, str]]
) -> None:
    fleet.deploy("web-1", versions[1]["v1"], timeout_s=10)
    old = state_file(fleet, "web-1")
    fleet.deploy("web-1", versions[1]["v2"], timeout_s=10)
    new = state_file(fleet, "web-1")
    assert new.pid != old.pid and not alive(old.pid) and alive(new.pid)
    assert fleet.running_versions()["web-1"] == versions[1]["v2"]


def test_rollback_returns_the_target_to_the_earlier_version(
    fleet: LocalFleet, versions: tuple[Path, dict[str, str]]
) -> None:
    fleet.deploy("web-2", versions[1]["v1"], timeout_s=10)
    fleet.deploy("web-2", versions[1]["v2"], timeout_s=10)
    fleet.rollback("web-2", versions[1]["v1"], timeout_s=10)
    assert fleet.running_versions()["web-2"] == versions[1]["v1"]


def test_releases_are_exported_once_and_shared_by_targets(
    fleet: LocalFleet, versions: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    fleet.deploy("web-1", versions[1]["v1"], timeout_s=10)
    release = tmp_path / "fleet" / "releases" / versions[1]["v1"]
    inode = release.stat().st_ino
    fleet.deploy("web-2", versions[1]["v1"], timeout_s=10)
    assert release.stat().st_ino == inode
    assert sorted(path.name for path in release.parent.iterdir()) == [versions[1]["v1"]]


# Asking the targets.


def test_running_versions_asks_the_targets_not_the_state_files(
    fleet: LocalFleet, versions: tuple[Path, dict[str, str]]
) -> None:
    fleet.deploy("web-1", versions[1]["v1"], timeout_s=10)
    fleet.deploy("web-2", versions[1]["v1"], timeout_s=10)
    os.kill(state_file(fleet, "web-1").pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while fleet.running_versions()["web-1"] is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fleet.running_versions() == {"web-1": None, "web-2": versions[1]["v1"]}
    assert state_file(fleet, "web-1").version == versions[1]["v1"]


def test_a_killed_target_is_started_again_by_the_next_deploy(
    fleet: LocalFleet, versions: tuple[Path, dict[str, str]]
) -> None:
    fleet.deploy("web-1", versions[1]["v1"], timeout_s=10)
    os.kill(state_file(fleet, "web-1").pid, signal.SIGKILL)
    fleet.deploy("web-1", versions[1]["v1"], timeout_s=10)
    assert fleet.running_versions()["web-1"] == versions[1]["v1"]


# Stopping.


def test_stop_fleet_stops_every_recorded_target_and_clears_its_state(
    fleet: LocalFleet, versions: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    for target in fleet.targets():
        fleet.deploy(target, versions[1]["v1"], timeout_s=10)
    pids = [state_file(fleet, target).pid for target in fleet.targets()]
    assert stop_fleet(tmp_path / "fleet") == ["web-1", "web-2"]
    assert not any(alive(pid) for pid in pids)
    assert fleet.running_versions() == {"web-1": None, "web-2": None}
    assert list((tmp_path / "fleet" / "targets").iterdir()) == []


def test_stop_fleet_never_signals_a_process_it_did_not_start(tmp_path: Path) -> None:
    bystander = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        recycled = TargetState(
            pid=bystander.pid,
            port=free_port(),
            version="v1",
            started_at=datetime(2026, 1, 1, tzinfo=UTC),
            process_start=1,  # the pid was reused: this start time is not the bystander's
        )
        (tmp_path / "targets").mkdir()
        (tmp_path / "targets" / "web-1.json").write_text(recycled.model_dump_json())
        assert stop_fleet(tmp_path) == ["web-1"]
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_a_target_ignoring_sigterm_is_killed_after_the_stop_timeout(
    versions: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    fleet = LocalFleet(settings_for(versions[0], tmp_path / "fleet", stop_timeout_s=0.3))
    try:
        fleet.deploy("web-1", versions[1]["stubborn"], timeout_s=10)
        stubborn = state_file(fleet, "web-1").pid
        fleet.deploy("web-1", versions[1]["v1"], timeout_s=10)
        assert not alive(stubborn)
        assert fleet.running_versions()["web-1"] == versions[1]["v1"]
    finally:
        stop_fleet(tmp_path / "fleet", timeout_s=0.3)


# Failures.


def test_a_failing_start_raises_deploy_error_naming_the_target_with_its_output(
    fleet: LocalFleet, versions: tuple[Path, dict[str, str]]
) -> None:
    with pytest.raises(DeployError) as raised:
        fleet.deploy("web-2", versions[1]["crash"], timeout_s=10)
    message = str(raised.value)
    assert message.startswith("web-2:")
    assert "RuntimeError: cannot open the orders database at /nonexistent/orders.db" in message
    assert fleet.state("web-2") is None
    assert fleet.running_versions()["web-2"] is None


def test_an_unknown_version_raises_deploy_error_and_leaves_the_target_running(
    fleet: LocalFleet, versions: tuple[Path, dict[str, str]]
) -> None:
    fleet.deploy("web-1", versions[1]["v1"], timeout_s=10)
    with pytest.raises(DeployError, match=r"web-1: cannot export version 'f{40}'"):
        fleet.deploy("web-1", "f" * 40, timeout_s=10)
    with pytest.raises(DeployError, match="web-1: version '--output=/tmp/x'"):
        fleet.deploy("web-1", "--output=/tmp/x", timeout_s=10)
    with pytest.raises(DeployError, match="web-9: not a target"):
        fleet.deploy("web-9", versions[1]["v1"], timeout_s=10)
    assert fleet.running_versions()["web-1"] == versions[1]["v1"]


# The command line of an instance.


def test_argv_placeholders_are_substituted_per_element_and_shell_text_stays_literal(
    fleet: LocalFleet, versions: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    v1 = versions[1]["v1"]
    fleet.deploy("web-1", v1, timeout_s=10)
    seen = json.loads(fleet.log_path("web-1").read_text())
    port = fleet.settings.targets["web-1"]
    literal = LITERAL.replace("{instance}", "web-1")
    assert seen["argv"] == [f"--port={port}", str(fleet.log_path("web-1")), f"web-1@{v1}", literal]
    cmdline = Path(f"/proc/{state_file(fleet, 'web-1').pid}/cmdline").read_bytes()
    assert cmdline.split(b"\0")[:2] == [sys.executable.encode(), b"serve.py"]
    assert seen["env"]["SERVICE_VERSION"] == v1
    assert seen["env"]["GREETING"] == "hello; rm -rf / && echo $HOME"
    release = tmp_path / "fleet" / "releases" / v1
    assert sorted(path.name for path in release.iterdir()) == ["serve.py"]


def test_a_relative_fleet_dir_gives_instances_an_absolute_log_path(
    versions: tuple[Path, dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    fleet = LocalFleet(settings_for(versions[0], Path("fleet")))
    try:
        fleet.deploy("web-1", versions[1]["v1"], timeout_s=10)
        log = tmp_path / "fleet" / "logs" / "web-1.jsonl"
        assert json.loads(log.read_text())["argv"][1] == str(log)
    finally:
        stop_fleet(tmp_path / "fleet")


def test_values_are_substituted_once_so_placeholder_text_in_a_value_stays() -> None:
    values = {"python": "/py", "port": "80", "log": "{port}", "instance": "a", "version": "v"}
    assert render_argv(["{log}:{port}", "{{x}}", "{python}"], values) == [
        "{port}:80",
        "{{x}}",
        "/py",
    ]


def test_settings_reject_unknown_placeholders_shared_ports_and_unsafe_names(
    versions: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    with pytest.raises(ValidationError, match="unknown placeholder"):
        settings_for(versions[0], tmp_path, argv=["{python}", "{host}"])
    with pytest.raises(ValidationError, match="own port"):
        settings_for(versions[0], tmp_path, targets={"web-1": 8001, "web-2": 8001})
    with pytest.raises(ValidationError, match="target name"):
        settings_for(versions[0], tmp_path, targets={"../web": 8001})
