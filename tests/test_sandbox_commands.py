"""Running configured commands safely: sandbox checks and the command deployer, as real processes."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from states.deploy.command import CommandDeployer, render
from states.deploy.deployers import DeployError
from states.deploy.settings import CommandDeployerSettings
from states.validate.sandbox import (
    BenchmarkOutputError,
    improvement,
    parse_benchmark,
    process_start_ticks,
    reap_children,
    record_child,
    run_command,
    scrubbed_env,
)

PY = sys.executable
SHA_OLD = "1111111"
SHA_NEW = "abcdef0123"


def alive(pid: int) -> bool:
    """Running, not merely a zombie waiting for its parent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pid: int, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def groups() -> Iterator[list[subprocess.Popen[str]]]:
    """Process groups a test starts; whatever survives the test is killed by its id."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


# --- run_command -------------------------------------------------------------------------------------


def test_an_argument_with_shell_metacharacters_is_passed_literally(tmp_path: Path) -> None:
    hostile = "; touch pwned && echo $HOME `id`"
    result = run_command(
        ["{python}", "-c", "import sys; print(sys.argv[1])", hostile],
        tmp_path,
        10,
        scrubbed_env({}),
    )

    assert result.ok
    assert result.stdout.strip() == hostile
    assert not (tmp_path / "pwned").exists()
    assert result.argv[0] == PY, "{python} names the running interpreter"


def test_a_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    script = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )

    result = run_command([PY, "-c", script], tmp_path, 1.0, scrubbed_env({}))

    assert result.timed_out
    assert result.exit_code is None
    assert not result.ok
    assert result.duration_s < 10
    grandchild = int(result.stdout.split()[0])
    assert wait_gone(grandchild), "the grandchild outlived the timeout"


def test_a_failing_command_reports_its_exit_code_and_output_tail(tmp_path: Path) -> None:
    result = run_command(
        [PY, "-c", "import sys; print('ran'); sys.exit('tests failed: 3')"],
        tmp_path,
        10,
        scrubbed_env({}),
    )

    assert (result.exit_code, result.timed_out, result.ok) == (1, False, False)
    assert result.tail() == "ran\n\ntests failed: 3"


def test_a_missing_program_is_reported_not_raised(tmp_path: Path) -> None:
    result = run_command(["no-such-program-here"], tmp_path, 10, scrubbed_env({}))
    assert result.exit_code is None
    assert "cannot start 'no-such-program-here'" in result.stderr


def test_the_scrubbed_environment_drops_the_parents_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEPLOY_TOKEN", "s3cret")
    monkeypatch.setenv("LANG", "C.UTF-8")
    env = scrubbed_env({"SERVICE_URL": "http://localhost:8080"})

    result = run_command(
        [PY, "-c", "import json, os; print(json.dumps(dict(os.environ)))"], tmp_path, 10, env
    )

    seen = json.loads(result.stdout)
    assert "DEPLOY_TOKEN" not in seen
    assert seen["SERVICE_URL"] == "http://localhost:8080"
    assert seen["LANG"] == "C.UTF-8"
    assert seen["PYTHONDONTWRITEBYTECODE"] == "1"


def test_a_noted_child_is_forgotten_once_it_ends(tmp_path: Path) -> None:
    children = tmp_path / "children"
    result = run_command(
        [PY, "-c", "import os; print(os.getpid())"],
        tmp_path,
        10,
        scrubbed_env({}),
        children_dir=children,
    )

    assert result.ok
    assert list(children.glob("*.json")) == []


# --- noting and reaping children ---------------------------------------------------------------------


def start_group(groups: list[subprocess.Popen[str]]) -> tuple[subprocess.Popen[str], int]:
    """A sleeping leader in its own session with a sleeping grandchild; returns both pids."""
    script = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [PY, "-c", script], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    groups.append(proc)
    assert proc.stdout is not None
    grandchild = int(proc.stdout.readline())
    return proc, grandchild


def test_reaping_kills_the_group_a_dead_agent_left_running(
    tmp_path: Path, groups: list[subprocess.Popen[str]]
) -> None:
    leader, grandchild = start_group(groups)
    children = tmp_path / "children"
    record_child(children, leader.pid, ["pytest", "-q"])

    found = reap_children(children)

    assert found == [{"pid": leader.pid, "argv": ["pytest", "-q"], "was_running": True}]
    assert leader.wait(timeout=5) == -signal.SIGKILL
    assert wait_gone(grandchild)
    assert list(children.glob("*.json")) == []


def test_reaping_never_kills_a_process_that_reused_the_pid(
    tmp_path: Path, groups: list[subprocess.Popen[str]]
) -> None:
    stranger, grandchild = start_group(groups)
    ticks = process_start_ticks(stranger.pid)
    assert ticks is not None
    children = tmp_path / "children"
    children.mkdir()
    note = {"pid": stranger.pid, "start": ticks - 1, "argv": ["pytest"]}
    (children / f"{stranger.pid}.json").write_text(json.dumps(note))

    found = reap_children(children)

    assert found == [{"pid": stranger.pid, "argv": ["pytest"], "was_running": False}]
    assert stranger.poll() is None
    assert alive(grandchild)
    assert list(children.glob("*.json")) == []


def test_an_unreadable_note_is_discarded(tmp_path: Path) -> None:
    children = tmp_path / "children"
    children.mkdir()
    (children / "123.json").write_text("{not json")

    assert reap_children(children) == []
    assert list(children.iterdir()) == []


def test_reaping_without_a_children_folder_finds_nothing(tmp_path: Path) -> None:
    assert reap_children(tmp_path / "absent") == []


# --- benchmark output ----------------------------------------------------------------------------------


def test_the_last_non_empty_line_is_the_benchmark_result() -> None:
    out = (
        'warming up\n{"value": 1}\n{"metric": "p95_ms", "value": 12.5, "lower_is_better": true}\n\n'
    )
    reading = parse_benchmark(out)
    assert (reading.metric, reading.value, reading.lower_is_better) == ("p95_ms", 12.5, True)


def test_a_benchmark_result_defaults_to_lower_is_better() -> None:
    reading = parse_benchmark('{"value": 3}')
    assert (reading.metric, reading.value, reading.lower_is_better) == ("benchmark", 3.0, True)


@pytest.mark.parametrize(
    ("stdout", "message"),
    [
        ("", "benchmark printed nothing"),
        ("  \n\n", "benchmark printed nothing"),
        ("took 12 ms", "last line is not JSON: 'took 12 ms'"),
        ("[12.5]", "last line is JSON but not an object"),
        ('"12.5"', "last line is JSON but not an object"),
        ('{"value": NaN}', "'value' must be a finite number, got nan"),
        ('{"value": Infinity}', "'value' must be a finite number, got inf"),
        ('{"value": -Infinity}', "'value' must be a finite number, got -inf"),
        ('{"value": true}', "'value' must be a finite number, got True"),
        ('{"value": "12"}', "'value' must be a finite number, got '12'"),
        ('{"metric": "rps"}', "'value' must be a finite number, got None"),
    ],
)
def test_unusable_benchmark_output_is_rejected_with_a_clear_message(
    stdout: str, message: str
) -> None:
    with pytest.raises(BenchmarkOutputError) as caught:
        parse_benchmark(stdout)
    assert str(caught.value) == message


def test_lower_is_better_improves_when_the_value_falls() -> None:
    assert improvement(200.0, 150.0, lower_is_better=True) == pytest.approx(0.25)
    assert improvement(200.0, 250.0, lower_is_better=True) == pytest.approx(-0.25)


def test_higher_is_better_improves_when_the_value_rises() -> None:
    assert improvement(1000.0, 1200.0, lower_is_better=False) == pytest.approx(0.2)
    assert improvement(1000.0, 800.0, lower_is_better=False) == pytest.approx(-0.2)


def test_a_zero_before_value_claims_no_improvement() -> None:
    assert improvement(0.0, 10.0, lower_is_better=True) == 0.0
    assert not math.isnan(improvement(0.0, 0.0, lower_is_better=False))


# --- the command deployer -------------------------------------------------------------------------------

FAKE_DEPLOY = """\
import json, pathlib, sys
here = pathlib.Path(__file__).parent
with open(here / "calls.log", "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
if sys.argv[1] == "deploy":
    if (here / "broken").exists():
        sys.stderr.write("disk full on " + sys.argv[2] + "\\n")
        sys.exit(3)
    (here / ("version-" + sys.argv[2])).write_text(sys.argv[3] + "\\n")
else:
    version = here / ("version-" + sys.argv[2])
    print(version.read_text().strip() if version.exists() else "")
"""


class Fleet:
    """Two fake targets driven by one script that logs every call."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.script = root / "fake_deploy.py"
        self.script.write_text(FAKE_DEPLOY)
        self.settings = CommandDeployerSettings(
            targets=["web 1", "web-2"],
            deploy=[PY, str(self.script), "deploy", "{target}", "{version}"],
            version=[PY, str(self.script), "version", "{target}"],
            timeout_s=30,
        )
        self.deployer = CommandDeployer(self.settings)

    def calls(self) -> list[list[str]]:
        log = self.root / "calls.log"
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]

    def deploys(self) -> list[list[str]]:
        return [c for c in self.calls() if c[0] == "deploy"]

    def runs(self, target: str, version: str) -> None:
        (self.root / f"version-{target}").write_text(version + "\n")


@pytest.fixture
def fleet(tmp_path: Path) -> Fleet:
    return Fleet(tmp_path)


def test_placeholders_are_substituted_inside_each_argument_literally() -> None:
    rendered = render(
        ["deploy", "--to={target}", "{version}", "{target}:{version}", "{other}"],
        target="web 1; rm -rf /",
        version=SHA_NEW,
    )
    assert rendered == [
        "deploy",
        "--to=web 1; rm -rf /",
        SHA_NEW,
        f"web 1; rm -rf /:{SHA_NEW}",
        "{other}",
    ]


def test_a_target_name_with_spaces_stays_one_argument(fleet: Fleet) -> None:
    fleet.deployer.deploy("web 1", SHA_NEW, timeout_s=30)

    assert fleet.deploys() == [["deploy", "web 1", SHA_NEW]]
    assert fleet.deployer.running_versions() == {"web 1": SHA_NEW, "web-2": None}


def test_deploying_the_running_version_runs_no_deploy_command(fleet: Fleet) -> None:
    fleet.runs("web-2", SHA_NEW)

    fleet.deployer.deploy("web-2", SHA_NEW, timeout_s=30)

    assert fleet.deploys() == []
    assert ["version", "web-2"] in fleet.calls(), "the target itself was asked"


def test_a_rollback_without_its_own_command_uses_the_deploy_command(fleet: Fleet) -> None:
    fleet.runs("web-2", SHA_NEW)

    fleet.deployer.rollback("web-2", SHA_OLD, timeout_s=30)

    assert fleet.deploys() == [["deploy", "web-2", SHA_OLD]]


def test_a_failing_deploy_raises_with_the_exit_code_and_stderr_tail(fleet: Fleet) -> None:
    (fleet.root / "broken").touch()

    with pytest.raises(DeployError) as caught:
        fleet.deployer.deploy("web-2", SHA_NEW, timeout_s=30)

    message = str(caught.value)
    assert message.startswith("deploy web-2: ")
    assert "exited 3" in message
    assert message.endswith("disk full on web-2")


def test_a_non_hex_version_is_refused_before_anything_runs(fleet: Fleet) -> None:
    with pytest.raises(DeployError, match="refusing revision 'main; reboot'"):
        fleet.deployer.deploy("web-2", "main; reboot", timeout_s=30)

    assert fleet.calls() == []


def test_an_unknown_target_is_refused_before_anything_runs(fleet: Fleet) -> None:
    with pytest.raises(DeployError, match="unknown target 'web-3'"):
        fleet.deployer.deploy("web-3", SHA_NEW, timeout_s=30)

    assert fleet.calls() == []


def test_a_deploy_that_outlives_its_timeout_is_a_deploy_error() -> None:
    settings = CommandDeployerSettings(
        targets=["a"],
        deploy=[PY, "-c", "import time; time.sleep(30)"],
        version=[PY, "-c", "print('')"],
    )

    with pytest.raises(DeployError, match="timed out after 0s"):
        CommandDeployer(settings).deploy("a", SHA_NEW, timeout_s=0.3)


def test_a_target_whose_version_command_fails_answers_none() -> None:
    answer = f"import sys\nif sys.argv[1] != 'a': sys.exit(1)\nprint('noise')\nprint('{SHA_OLD}')"
    settings = CommandDeployerSettings(
        targets=["a", "b"], deploy=["true"], version=[PY, "-c", answer, "{target}"]
    )

    assert CommandDeployer(settings).running_versions() == {"a": SHA_OLD, "b": None}
