"""Cleaning up after a run that died: half-made sandboxes and torn temporary files.

Runs at start-up, under the data directory's lock, and logs what it found
and did, so an operator reading the journal sees the crash and its repair.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import structlog

from states.git import remove_worktree, worktrees_under
from states.settings import Settings
from states.validate.sandbox import reap_children
from storage.artifacts import remove_stale_temporaries

log = structlog.get_logger("selfheal.reaping")


def reap(settings: Settings) -> dict[str, Any]:
    """Remove sandboxes and temporaries a dead run left; returns what was removed."""
    data = settings.agent.data_dir
    children = reap_children(data / "children")
    sandboxes = data / "sandboxes"
    removed_trees: list[str] = []
    repo_path = settings.repository.path
    if (repo_path / ".git").exists():
        for tree in worktrees_under(repo_path, sandboxes):
            remove_worktree(repo_path, tree)
            removed_trees.append(str(tree))
    leftovers = [p for p in sandboxes.iterdir()] if sandboxes.exists() else []
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)
    temporaries = [str(p) for p in remove_stale_temporaries(data / "cycles")]
    found: dict[str, Any] = {
        "child_processes": children,
        "worktrees": removed_trees,
        "sandbox_dirs": [str(p) for p in leftovers],
        "temporaries": temporaries,
    }
    if any(found.values()):
        log.warning("reaped what a previous run left behind", **found)
    return found


def sandbox_root(data_dir: Path) -> Path:
    """Where sandboxes live (never inside the live checkout)."""
    return data_dir / "sandboxes"
