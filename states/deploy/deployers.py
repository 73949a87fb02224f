"""The deployer interface: put a version on a target, take it back, and ask what runs.

Rollout logic (waves, gates, rollback) is the same whatever the platform, so it
talks to this small protocol only. Every implementation must answer
``running_versions`` by asking the targets themselves, never from its own
bookkeeping: exactly-once deployment after a crash depends on that answer.
"""

from __future__ import annotations

from typing import Protocol


class DeployError(Exception):
    """A deploy or rollback could not be carried out; the message says which target and why."""


class Deployer(Protocol):
    """Moves targets between versions (git revisions) of the service."""

    def targets(self) -> list[str]:
        """Names of every target this deployer manages, in a stable order."""
        ...

    def deploy(self, target: str, version: str, *, timeout_s: float) -> None:
        """Make ``target`` run ``version``; returns once the target answers with it.

        Deploying the version a target already runs is a no-op, so a resumed
        rollout can repeat a step whose outcome it did not see.
        """
        ...

    def rollback(self, target: str, version: str, *, timeout_s: float) -> None:
        """Return ``target`` to ``version`` (the one it ran before the rollout)."""
        ...

    def running_versions(self) -> dict[str, str | None]:
        """Ask every target which version it runs; None for a target that does not answer."""
        ...
