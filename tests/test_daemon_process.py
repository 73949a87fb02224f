"""The daemon as systemd runs it: a real ``selfheal run`` process, its lock, signals and sd_notify.

The service manager is played by the test: it binds an AF_UNIX datagram
socket, passes it as ``NOTIFY_SOCKET`` (with ``WATCHDOG_USEC`` so the daemon
pings), and reads what the daemon says. Every wait is on a message or a
process exit, with a deadline; every process started here is stopped by its
id in teardown.
"""

from __future__ import annotations

import json
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.operator_support import cli_argv, cli_env, run_cli, write_config

DEADLINE_S = 20.0


class ServiceManager:
    """The receiving end of the notify protocol: one datagram socket, every message kept."""

    def __init__(self, path: Path) -> None:
        assert len(str(path)) < 100, "AF_UNIX paths are limited to 108 bytes"
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[dict[str, str]] = []

    def wait_for(self, wanted: Callable[[dict[str, str]], bool], what: str) -> dict[str, str]:
        """The first message (already received or arriving) that ``wanted`` accepts."""
        for message in self.messages:
            if wanted(message):
                return message
        deadline = time.monotonic() + DEADLINE_S
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                payload = self.sock.recv(4096).decode()
            except TimeoutError:
                break
            message = dict(line.split("=", 1) for line in payload.splitlines() if "=" in line)
            self.messages.append(message)
            if wanted(message):
                return message
        raise AssertionError(f"no {what} within {DEADLINE_S}s; got {self.messages}")

    def drain(self) -> None:
        """Keep whatever is still queued (the sender has exited, so nothing more comes)."""
        self.sock.setblocking(False)
        while True:
            try:
                payload = self.sock.recv(4096).decode()
            except BlockingIOError:
                return
            self.messages.append(
                dict(line.split("=", 1) for line in payload.splitlines() if "=" in line)
            )

    def close(self) -> None:
        self.sock.close()


@dataclass
class Daemons:
    """Daemon processes a test starts; teardown stops any still running, by pid."""

    started: list[subprocess.Popen[str]] = field(default_factory=list)

    def start(self, config: Path, notify: ServiceManager | None = None) -> subprocess.Popen[str]:
        extra = {"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "1000000"} if notify else {}
        proc = subprocess.Popen(
            cli_argv(config, "run"),
            cwd=config.parent,
            env=cli_env(**extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.started.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[str]) -> None:
        """SIGTERM, then SIGKILL if it outlives the deadline; pipes are drained either way."""
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=DEADLINE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()

    def stop_all(self) -> None:
        for proc in self.started:
            if proc.returncode is None:
                self.stop(proc)


def is_ready(message: dict[str, str]) -> bool:
    return message.get("READY") == "1"


@dataclass
class StoppedDaemon:
    """A daemon that was started under a notify socket, ran, and was sent SIGTERM."""

    config: Path
    pid: int
    messages: list[dict[str, str]]
    exit_code: int
    exit_after_s: float
    stderr: str


@pytest.fixture(scope="module")
def daemons() -> Iterator[Daemons]:
    started = Daemons()
    yield started
    started.stop_all()


@pytest.fixture(scope="module")
def stopped(tmp_path_factory: pytest.TempPathFactory, daemons: Daemons) -> Iterator[StoppedDaemon]:
    directory = tmp_path_factory.mktemp("daemon")
    config = write_config(directory)
    manager = ServiceManager(directory / "notify.sock")
    try:
        proc = daemons.start(config, manager)
        manager.wait_for(is_ready, "READY=1")
        manager.wait_for(lambda m: m.get("STATUS") == "idle", "STATUS from a tick")
        manager.wait_for(lambda m: m.get("WATCHDOG") == "1", "WATCHDOG=1")
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        manager.wait_for(lambda m: m.get("STOPPING") == "1", "STOPPING=1")
        _, err = proc.communicate(timeout=DEADLINE_S)
        exited = time.monotonic() - sent
        manager.drain()
        yield StoppedDaemon(config, proc.pid, manager.messages, proc.returncode, exited, err)
    finally:
        manager.close()


class TestNotifyProtocol:
    def test_ready_names_the_main_pid_and_status_follows_each_tick(
        self, stopped: StoppedDaemon
    ) -> None:
        ready = next(m for m in stopped.messages if is_ready(m))
        assert ready["MAINPID"] == str(stopped.pid)
        assert ready["STATUS"] == "running"
        first = stopped.messages.index(ready)
        assert {"STATUS": "idle"} in stopped.messages[first:]

    def test_the_watchdog_is_fed_while_the_daemon_runs(self, stopped: StoppedDaemon) -> None:
        ready = next(i for i, m in enumerate(stopped.messages) if is_ready(m))
        pings = [i for i, m in enumerate(stopped.messages) if m == {"WATCHDOG": "1"}]
        assert pings
        assert min(pings) > ready

    def test_sigterm_sends_stopping_once_after_ready(self, stopped: StoppedDaemon) -> None:
        stopping = [i for i, m in enumerate(stopped.messages) if m.get("STOPPING") == "1"]
        assert len(stopping) == 1
        assert stopped.messages[stopping[0]] == {"STOPPING": "1", "STATUS": "stopping"}
        ready = next(i for i, m in enumerate(stopped.messages) if is_ready(m))
        assert stopping[0] > ready
        assert not [m for m in stopped.messages[stopping[0] :] if is_ready(m)]


class TestStopping:
    def test_sigterm_makes_the_daemon_exit_0_promptly(self, stopped: StoppedDaemon) -> None:
        assert stopped.exit_code == 0, stopped.stderr
        assert stopped.exit_after_s < 10.0

    def test_every_stderr_line_is_a_json_object_with_an_event(self, stopped: StoppedDaemon) -> None:
        lines = [json.loads(line) for line in stopped.stderr.splitlines()]
        assert lines
        assert all(isinstance(line, dict) and line.get("event") for line in lines)
        events = [line["event"] for line in lines]
        assert events[0] == "daemon started"
        assert events[-1] == "daemon stopped cleanly"
        stop = next(line for line in lines if line["event"] == "stop requested")
        assert stop["signal"] == "SIGTERM"
        assert all("level" in line and "timestamp" in line for line in lines)


@dataclass
class Successor:
    """A new daemon on the stopped one's data directory, and its service manager."""

    config: Path
    proc: subprocess.Popen[str]
    manager: ServiceManager


@pytest.fixture(scope="module")
def successor(stopped: StoppedDaemon, daemons: Daemons) -> Iterator[Successor]:
    manager = ServiceManager(stopped.config.parent / "successor.sock")
    proc = None
    try:
        proc = daemons.start(stopped.config, manager)
        yield Successor(stopped.config, proc, manager)
    finally:
        # The tests stop reading after READY. Unread datagrams fill the socket's queue
        # (net.unix.max_dgram_qlen, often 10: five seconds of watchdog pings and statuses),
        # and the daemon's next send then blocks, SIGTERM or not, until the socket is gone:
        # so the manager goes first, and the daemon's sends fail instead of waiting.
        manager.close()
        if proc is not None:
            daemons.stop(proc)


class TestOneDaemonPerDataDir:
    def test_after_sigterm_the_lock_is_released_and_a_new_daemon_starts(
        self, successor: Successor
    ) -> None:
        ready = successor.manager.wait_for(is_ready, "READY=1 from the successor")
        assert ready["MAINPID"] == str(successor.proc.pid)
        assert successor.proc.poll() is None

    def test_a_second_daemon_on_the_same_data_dir_exits_2_naming_the_pid(
        self, successor: Successor
    ) -> None:
        successor.manager.wait_for(is_ready, "READY=1 from the running daemon")

        second = run_cli(successor.config, "run")

        assert second.returncode == 2
        assert f"pid {successor.proc.pid}" in second.stderr
        assert str(successor.config.parent / "data") in second.stderr
        assert successor.proc.poll() is None  # the running one is unaffected


class TestSystemdUnit:
    def test_the_unit_uses_notify_a_watchdog_restarts_and_an_absolute_config(
        self, tmp_path: Path
    ) -> None:
        config = write_config(tmp_path)

        result = run_cli(Path("config.toml"), "systemd-unit", cwd=tmp_path)

        assert result.returncode == 0, result.stderr
        sections: dict[str, dict[str, str]] = {}
        current = ""
        for line in result.stdout.splitlines():
            if line.startswith("[") and line.endswith("]"):
                current = line[1:-1]
                sections[current] = {}
            elif "=" in line:
                key, value = line.split("=", 1)
                sections[current][key] = value
        service = sections["Service"]
        assert service["Type"] == "notify"
        assert int(service["WatchdogSec"]) > 0
        assert service["Restart"] == "on-failure"
        argv = shlex.split(service["ExecStart"])
        assert argv[-3:] == ["run", "--config", str(config.resolve())]
        assert Path(argv[0]).is_absolute()
        assert "WantedBy" in sections["Install"]
