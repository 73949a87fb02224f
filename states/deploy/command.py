"""The ``command`` deployer: your own deploy tooling, driven by argument-list templates.

``{target}`` and ``{version}`` are substituted inside each configured argument;
nothing is ever passed through a shell, and the version must be a commit id,
so no telemetry text can reach the command line.
"""

from __future__ import annotations

import subprocess

from states.deploy.deployers import DeployError
from states.deploy.settings import CommandDeployerSettings
from states.git import GitError, checked_revision

TAIL = 500


def render(template: list[str], *, target: str, version: str) -> list[str]:
    """Substitute the two placeholders in every argument, literally."""
    return [arg.replace("{target}", target).replace("{version}", version) for arg in template]


class CommandDeployer:
    """Runs configured commands to deploy, roll back and ask versions."""

    def __init__(self, settings: CommandDeployerSettings) -> None:
        self._settings = settings

    def targets(self) -> list[str]:
        return list(self._settings.targets)

    def _run(self, argv: list[str], timeout_s: float, what: str) -> str:
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise DeployError(f"{what}: {argv[0]} timed out after {timeout_s:.0f}s") from exc
        except OSError as exc:
            raise DeployError(f"{what}: cannot run {argv[0]!r}: {exc}") from exc
        if done.returncode != 0:
            raise DeployError(
                f"{what}: {argv[0]} exited {done.returncode}: {done.stderr.strip()[-TAIL:]}"
            )
        return done.stdout

    def _apply(
        self, template: list[str], target: str, version: str, timeout_s: float, what: str
    ) -> None:
        if target not in self._settings.targets:
            raise DeployError(f"unknown target {target!r}")
        try:
            checked_revision(version)
        except GitError as exc:
            raise DeployError(str(exc)) from exc
        if self.running_versions().get(target) == version:
            return
        self._run(render(template, target=target, version=version), timeout_s, f"{what} {target}")

    def deploy(self, target: str, version: str, *, timeout_s: float) -> None:
        self._apply(self._settings.deploy, target, version, timeout_s, "deploy")

    def rollback(self, target: str, version: str, *, timeout_s: float) -> None:
        self._apply(
            self._settings.rollback or self._settings.deploy, target, version, timeout_s, "rollback"
        )

    def running_versions(self) -> dict[str, str | None]:
        versions: dict[str, str | None] = {}
        for target in self._settings.targets:
            argv = render(self._settings.version, target=target, version="")
            try:
                out = self._run(argv, self._settings.timeout_s, f"version of {target}").strip()
            except DeployError:
                out = ""
            versions[target] = out.splitlines()[-1].strip() if out else None
        return versions
