"""Cleaning up after a run that died: half-made sandboxes and torn temporary files.

Runs at start-up, under the data directory's lock, and logs what it found
and did, so an operator reading the journal sees the crash and its repair.
It also names every deploy or rollback whose intent was recorded but whose
effect was never confirmed: such a target may or may not have changed. The
reaper does not touch it; the rollout, resuming, asks the target what it runs
and then confirms the change or makes it, so the target changes at most once.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import structlog

from states.git import remove_worktree, worktrees_under
from states.settings import Settings
from states.validate.sandbox import reap_children
from storage import deployment_store
from storage.artifacts import remove_stale_temporaries
from storage.db import Database

log = structlog.get_logger("selfheal.reaping")


def unconfirmed_intents(db: Database) -> list[dict[str, Any]]:
    """Deploys and rollbacks of open cycles that were intended but never confirmed."""
    return [
        {
            "cycle_id": row.cycle_id,
            "action": row.action,
            "wave": row.wave,
            "target": row.target,
            "from_version": row.from_version,
            "to_version": row.to_version,
            "intent_at": row.intent_at.isoformat(),
        }
        for row in db.query(deployment_store.unconfirmed_deploy_actions)
    ]


def reap(settings: Settings, db: Database) -> dict[str, Any]:
    """Remove sandboxes and temporaries a dead run left, name unconfirmed deploys; returns both."""
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
        "unconfirmed_deploys": unconfirmed_intents(db),
    }
    if any(found.values()):
        log.warning("reaped what a previous run left behind", **found)
    for intent in found["unconfirmed_deploys"]:
        log.warning(
            "deploy intent found unconfirmed; the rollout will ask the target and finish it",
            **intent,
        )
    return found


def sandbox_root(data_dir: Path) -> Path:
    """Where sandboxes live (never inside the live checkout)."""
    return data_dir / "sandboxes"
