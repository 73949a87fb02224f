"""Test-session environment: behave as on a fresh machine.

A fresh CI machine has no global git identity or configuration, so the suite
runs without them too; everything the project commits must name its own
identity (the demo's authors, the agent's ``selfheal`` committer).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True, scope="session")
def _no_global_git_configuration(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    empty: Path = tmp_path_factory.mktemp("gitconfig") / "empty"
    empty.write_text("")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GIT_CONFIG_GLOBAL", str(empty))
        patch.setenv("GIT_CONFIG_NOSYSTEM", "1")
        for name in (
            "GIT_AUTHOR_NAME",
            "GIT_AUTHOR_EMAIL",
            "GIT_COMMITTER_NAME",
            "GIT_COMMITTER_EMAIL",
        ):
            patch.delenv(name, raising=False)
        yield
