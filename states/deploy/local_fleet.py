"""The ``local-fleet`` deployer: instances of a service on this machine, one port each.

The demo, and anyone trying selfheal without a platform, needs a real fleet to
roll fixes out to. A target runs one process started from a release directory
exported from the git repository (``<fleet_dir>/releases/<version>/``, made
once and reused, so versions should name immutable revisions: commits, tags). Its
state file records which process was started, so a later run can stop it
(``fleet_instances`` starts, records and stops instances); which version a
target runs is always asked over HTTP, never read from that file.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from states.deploy.deployers import DeployError
from states.deploy.fleet_instances import (
    TargetState,
    read_state,
    record_instance,
    start_instance,
    state_path,
    stop_process,
)

PLACEHOLDERS = frozenset({"python", "port", "log", "instance", "version"})
_PLACEHOLDER = re.compile(r"\{(" + "|".join(sorted(PLACEHOLDERS)) + r")\}")
_ANY_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_PATH_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")
_STDERR_TAIL_CHARS = 2000
_POLL_S = 0.05
MAX_VERSION_BODY = 64 * 1024  # a version answer is a name, not a download


class LocalFleetSettings(BaseModel):
    """Where the fleet lives, which targets it has, and how one instance is started."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    repository: Path = Field(description="Git repository whose revisions are deployed.")
    fleet_dir: Path = Field(
        description="Holds releases/, targets/ (state files), logs/ (request logs) and output/."
    )
    targets: dict[str, int] = Field(
        min_length=1, description="Target name -> the 127.0.0.1 port its instance listens on."
    )
    argv: list[str] = Field(
        min_length=1,
        description="Command of one instance, one list element per argument; {python}, {port}, "
        "{log}, {instance} and {version} are substituted inside each element, never by a shell.",
    )
    env: dict[str, str] = Field(
        default_factory=dict, description="Extra environment of every instance."
    )
    version_path: str = Field(
        default="/version", description="HTTP path answering the running version."
    )
    start_timeout_s: float = Field(
        default=20.0, gt=0, description="Longest wait for a started instance to answer its version."
    )
    stop_timeout_s: float = Field(
        default=5.0, gt=0, description="Wait after SIGTERM before SIGKILL."
    )
    probe_timeout_s: float = Field(
        default=1.0, gt=0, description="HTTP timeout when asking a target its version."
    )

    @field_validator("targets")
    @classmethod
    def _targets_are_distinct_ports(cls, targets: dict[str, int]) -> dict[str, int]:
        for name, port in targets.items():
            if not _PATH_SAFE.match(name):
                raise ValueError(f"target name {name!r}: use letters, digits, '_', '.', '-'")
            if not 0 < port < 65536:
                raise ValueError(f"target {name!r}: port {port} is not between 1 and 65535")
        if len(set(targets.values())) != len(targets):
            raise ValueError("every target needs its own port")
        return targets

    @field_validator("argv")
    @classmethod
    def _argv_names_known_placeholders(cls, argv: list[str]) -> list[str]:
        for element in argv:
            unknown = set(_ANY_PLACEHOLDER.findall(element)) - PLACEHOLDERS
            if unknown:
                raise ValueError(
                    f"argv element {element!r} uses unknown placeholder(s) {sorted(unknown)}; "
                    f"known: {sorted(PLACEHOLDERS)}"
                )
        return argv

    @field_validator("version_path")
    @classmethod
    def _version_path_is_absolute(cls, path: str) -> str:
        if not path.startswith("/"):
            raise ValueError("version_path must start with '/'")
        return path


def render_argv(template: list[str], values: dict[str, str]) -> list[str]:
    """Substitute ``{name}`` placeholders inside each element, in one pass (values stay literal)."""
    return [_PLACEHOLDER.sub(lambda match: values[match.group(1)], element) for element in template]


class LocalFleet:
    """A :class:`~states.deploy.deployers.Deployer` for processes on 127.0.0.1."""

    def __init__(self, settings: LocalFleetSettings) -> None:
        self._settings = settings
        # Absolute, because instances run in their release directory and get {log} from here.
        self._fleet_dir = settings.fleet_dir.absolute()

    @property
    def settings(self) -> LocalFleetSettings:
        return self._settings

    def targets(self) -> list[str]:
        return list(self._settings.targets)

    def deploy(self, target: str, version: str, *, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        port = self._port(target)
        _check_version(target, version)
        if self._ask_version(port) == version:
            return
        release = self._release(target, version)
        self._stop(target)
        process = self._start(target, version, release)
        wait_until = min(deadline, time.monotonic() + self._settings.start_timeout_s)
        try:
            self._await_version(target, version, process, wait_until)
        except DeployError:
            self._stop(target)
            raise

    def rollback(self, target: str, version: str, *, timeout_s: float) -> None:
        self.deploy(target, version, timeout_s=timeout_s)

    def running_versions(self) -> dict[str, str | None]:
        return {name: self._ask_version(port) for name, port in self._settings.targets.items()}

    def log_path(self, target: str) -> Path:
        """The request log an instance of ``target`` writes (``{log}``), kept across versions."""
        return self._fleet_dir / "logs" / f"{target}.jsonl"

    def output_path(self, target: str) -> Path:
        """Stdout and stderr of the instance last started on ``target``."""
        return self._fleet_dir / "output" / f"{target}.log"

    def state(self, target: str) -> TargetState | None:
        """What was last started on ``target`` and not stopped since, if anything."""
        return read_state(state_path(self._fleet_dir, target))

    def _port(self, target: str) -> int:
        try:
            return self._settings.targets[target]
        except KeyError:
            raise DeployError(f"{target}: not a target of this fleet ({self.targets()})") from None

    def _ask_version(self, port: int) -> str | None:
        return ask_version(port, self._settings.version_path, self._settings.probe_timeout_s)

    def _release(self, target: str, version: str) -> Path:
        releases = self._fleet_dir / "releases"
        final = releases / version
        if final.is_dir():
            return final
        releases.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(self._settings.repository), "archive", "--format=tar", version],
            capture_output=True,
            check=False,
        )
        if archive.returncode != 0:
            reason = archive.stderr.decode(errors="replace").strip()
            raise DeployError(f"{target}: cannot export version {version!r}: {reason}")
        _extract_atomically(archive.stdout, final)
        return final

    def _start(self, target: str, version: str, release: Path) -> subprocess.Popen[bytes]:
        values = {
            "python": sys.executable,
            "port": str(self._settings.targets[target]),
            "log": str(self.log_path(target)),
            "instance": target,
            "version": version,
        }
        argv = render_argv(self._settings.argv, values)
        for directory in (self.log_path(target).parent, self.output_path(target).parent):
            directory.mkdir(parents=True, exist_ok=True)
        process = start_instance(
            target,
            argv,
            cwd=release,
            env=self._environment(version),
            output=self.output_path(target),
        )
        record_instance(
            self._fleet_dir,
            target,
            process.pid,
            port=self._settings.targets[target],
            version=version,
        )
        return process

    def _environment(self, version: str) -> dict[str, str]:
        inherited = {name: os.environ[name] for name in _INHERITED_ENV if name in os.environ}
        return {**inherited, **self._settings.env, "SERVICE_VERSION": version}

    def _await_version(
        self, target: str, version: str, process: subprocess.Popen[bytes], wait_until: float
    ) -> None:
        port = self._settings.targets[target]
        while self._ask_version(port) != version:
            status = process.poll()
            if status is not None:
                raise DeployError(
                    f"{target}: the instance exited with status {status} before answering "
                    f"version {version}; its output ends with:\n{self._output_tail(target)}"
                )
            if time.monotonic() >= wait_until:
                raise DeployError(
                    f"{target}: no answer {version!r} on port {port} within the start timeout; "
                    f"its output ends with:\n{self._output_tail(target)}"
                )
            time.sleep(_POLL_S)

    def _output_tail(self, target: str) -> str:
        try:
            text = self.output_path(target).read_text(errors="replace")
        except OSError:
            return "(no output)"
        return text[-_STDERR_TAIL_CHARS:].strip() or "(no output)"

    def _stop(self, target: str) -> None:
        path = state_path(self._fleet_dir, target)
        state = read_state(path)
        if state is None:
            return
        try:
            stop_process(state, self._settings.stop_timeout_s)
        except DeployError as error:
            raise DeployError(f"{target}: cannot stop the running instance: {error}") from None
        path.unlink(missing_ok=True)


def ask_version(port: int, path: str, timeout_s: float) -> str | None:
    """The version the service on ``127.0.0.1:port`` answers at ``path``; None if it does not."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        raw = response.read(MAX_VERSION_BODY + 1)
    except (OSError, ValueError, http.client.HTTPException):  # ValueError: a garbled chunk size
        return None
    finally:
        connection.close()
    if response.status != 200 or len(raw) > MAX_VERSION_BODY or response.length:
        return None  # not OK, too long, or shorter than its Content-Length
    return _version_from_body(raw.decode(errors="replace"))


def _version_from_body(body: str) -> str | None:
    """Accept ``{"version": "..."}`` or the bare version as text, if it is a deployable name."""
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        parsed = None
    version = parsed.get("version") if isinstance(parsed, dict) else body.strip()
    return version if isinstance(version, str) and _PATH_SAFE.fullmatch(version) else None


def _check_version(target: str, version: str) -> None:
    if not _PATH_SAFE.match(version):
        raise DeployError(
            f"{target}: version {version!r}: use a revision name of letters, digits, '_', '.', '-'"
        )


def _extract_atomically(tar_bytes: bytes, final: Path) -> None:
    """Unpack into a sibling temporary directory, then rename it into place."""
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as archive:
            archive.extractall(staging, filter="data")
        try:
            staging.rename(final)
        except OSError:
            if not final.is_dir():  # not a concurrent deploy that won the race
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
