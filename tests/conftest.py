"""Test-session environment: a fresh machine's git, scratch files in memory, whole modules per worker.

A fresh CI machine has no global git identity or configuration, so the suite
runs without them too; everything the project commits must name its own
identity (the demo's authors, the agent's ``selfheal`` committer).

Scratch directories (``tmp_path`` and ``tmp_path_factory``) live on
``/dev/shm`` when it is there with room to spare. The agent commits its
SQLite state with ``synchronous=FULL`` and writes artifacts with fsync, so on
a disk that others are writing to each commit waits ~10 ms: a flat-RSS leak
scenario spent 28 of its 39 s waiting on fsync. In memory the same real files,
WAL and renames are exercised; what no test can observe (a power cut) is all
that is lost. ``PYTEST_DEBUG_TEMPROOT`` or ``--basetemp`` still choose.

Under pytest-xdist, ``make test`` runs ``--dist loadfile``, which
``tests/support/scheduling.py`` refines: whole modules per worker, the
real-time end-to-end modules together on one, the longest units first.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from xdist.remote import Producer
    from xdist.scheduler import Scheduling

MEMORY_FS = Path("/dev/shm")
MEMORY_FS_MIN_FREE = 2 * 1024**3  # a container's 64 MiB /dev/shm is not enough for the suite


def memory_scratch_root(environ: Mapping[str, str], candidate: Path = MEMORY_FS) -> Path | None:
    """Where scratch directories should go: ``candidate`` if usable and not overridden."""
    if environ.get("PYTEST_DEBUG_TEMPROOT"):
        return None
    if not (candidate.is_dir() and os.access(candidate, os.W_OK | os.X_OK)):
        return None
    if shutil.disk_usage(candidate).free < MEMORY_FS_MIN_FREE:
        return None
    return candidate


def pytest_configure(config: pytest.Config) -> None:
    root = memory_scratch_root(os.environ)
    if root is not None and config.option.basetemp is None:
        os.environ["PYTEST_DEBUG_TEMPROOT"] = str(root)  # inherited by xdist's workers


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist, when it is installed
def pytest_xdist_make_scheduler(config: pytest.Config, log: Producer) -> Scheduling | None:
    """``--dist loadfile`` as ``tests/support/scheduling.py`` refines it; other modes as they are."""
    if config.getvalue("dist") != "loadfile":
        return None
    from tests.support.scheduling import ModuleScheduling  # noqa: PLC0415 (imports xdist)

    return ModuleScheduling(config, log)


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
