"""Builds the demo's git repository: the shop's history replayed commit by commit.

The repository is made from the service template shipped in
``agent/demo/service`` and the story told in ``history``: each change's added
files and edits become one commit with its author and date, isolated from the
user's git configuration.

The template is the healthy state. History before it is replayed by undoing the
later edits of each file, so the template stays the single source of the code.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from agent.demo.history import CULPRIT_FILE, CULPRIT_INDEX, HISTORY, RELEASE, Change, Edit

COMPONENT_SOURCES: dict[str, list[str]] = {
    "catalog": ["shop/catalog.py", "shop/inventory.py"],
    "cart": ["shop/cart.py"],
    "auth": ["shop/auth.py"],
    "server": ["shop/server.py"],
}
"""Which source files implement each component named in the request log."""

_GITIGNORE = "__pycache__/\n*.pyc\n.pytest_cache/\n*.jsonl\n"
_SKIPPED = ("__pycache__", ".pyc")  # and hidden entries: caches of tools run in the template


@dataclass(frozen=True)
class DemoRepository:
    """The demo repository once built; ``healthy_sha`` is the release running first."""

    path: Path
    healthy_sha: str
    component_sources: dict[str, list[str]] = field(
        default_factory=lambda: {name: list(paths) for name, paths in COMPONENT_SOURCES.items()}
    )


@dataclass(frozen=True)
class RegressionCommits:
    """The next release: its commits in order, the culprit among them, and its head."""

    culprit_sha: str
    head_sha: str
    culprit_file: str
    commits: tuple[str, ...]


class WorkspaceError(RuntimeError):
    """The demo repository could not be built; the message says which step failed."""


def build_demo_repository(path: Path, *, now: datetime | None = None) -> DemoRepository:
    """Create the shop's repository with its history in ``path`` (absent or empty).

    Commit dates are set relative to ``now`` (default: the current time), the
    last one a few days before it.
    """
    if path.exists() and any(path.iterdir()):
        raise WorkspaceError(f"{path} is not empty; choose a new directory for the demo")
    path.mkdir(parents=True, exist_ok=True)
    _git(path, "init", "--quiet", "--initial-branch=main")
    template = _template_files()
    moment = now or datetime.now(UTC)
    for index, change in enumerate(HISTORY):
        _write_added_files(path, change, template, HISTORY[index + 1 :])
        _apply_edits(path, change.edits)
        _commit(path, change, moment)
    missing = sorted(set(template) - {name for change in HISTORY for name in change.adds})
    if missing:
        raise WorkspaceError(f"template files not added by any commit of HISTORY: {missing}")
    return DemoRepository(path=path, healthy_sha=_git(path, "rev-parse", "HEAD"))


def commit_regression(repo: DemoRepository, *, now: datetime | None = None) -> RegressionCommits:
    """Add the next release on top of the healthy head: an auth fix, the culprit, a cart tweak."""
    moment = now or datetime.now(UTC)
    shas = []
    for change in RELEASE:
        _apply_edits(repo.path, change.edits)
        _commit(repo.path, change, moment)
        shas.append(_git(repo.path, "rev-parse", "HEAD"))
    return RegressionCommits(
        culprit_sha=shas[CULPRIT_INDEX],
        head_sha=shas[-1],
        culprit_file=CULPRIT_FILE,
        commits=tuple(shas),
    )


def _template_files() -> dict[str, str]:
    """Every template file by repository path, plus the generated ``.gitignore``."""
    root = resources.files("agent.demo").joinpath("service")
    files = {name: entry.read_text(encoding="utf-8") for name, entry in _walk(root, "")}
    files[".gitignore"] = _GITIGNORE
    return files


def _walk(directory: Traversable, prefix: str) -> Iterator[tuple[str, Traversable]]:
    for entry in sorted(directory.iterdir(), key=lambda entry: entry.name):
        if entry.name.startswith(".") or entry.name.endswith(_SKIPPED):
            continue
        if entry.is_dir():
            yield from _walk(entry, f"{prefix}{entry.name}/")
        else:
            yield f"{prefix}{entry.name}", entry


def _write_added_files(
    root: Path, change: Change, template: dict[str, str], later: Sequence[Change]
) -> None:
    """Write each added file as it was then: the template with later edits undone."""
    for name in change.adds:
        if name not in template:
            raise WorkspaceError(f"HISTORY adds {name!r}, which the service template lacks")
        text = template[name]
        for edit in reversed([edit for step in later for edit in step.edits if edit.path == name]):
            text = _replace_once(text, edit.new, edit.old, name)
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")


def _apply_edits(root: Path, edits: Sequence[Edit]) -> None:
    for edit in edits:
        target = root / edit.path
        text = target.read_text(encoding="utf-8")
        target.write_text(_replace_once(text, edit.old, edit.new, edit.path), encoding="utf-8")


def _replace_once(text: str, old: str, new: str, name: str) -> str:
    count = text.count(old)
    if count != 1:
        raise WorkspaceError(f"{name}: expected {old!r} exactly once, found it {count} times")
    return text.replace(old, new)


def _commit(root: Path, change: Change, now: datetime) -> None:
    paths = list(change.adds) + sorted({edit.path for edit in change.edits})
    _git(root, "add", "--", *paths)
    when = (now - change.age).replace(microsecond=0).isoformat()
    identity = {
        "GIT_AUTHOR_NAME": change.author.name,
        "GIT_AUTHOR_EMAIL": change.author.email,
        "GIT_AUTHOR_DATE": when,
        "GIT_COMMITTER_NAME": change.author.name,
        "GIT_COMMITTER_EMAIL": change.author.email,
        "GIT_COMMITTER_DATE": when,
    }
    _git(root, "commit", "--quiet", "--no-verify", "-m", change.message, extra_env=identity)


def _git(root: Path, *arguments: str, extra_env: dict[str, str] | None = None) -> str:
    """Run git in ``root`` isolated from the user's and system's configuration."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        **(extra_env or {}),
    }
    command = ["git", "-C", str(root), "-c", "commit.gpgsign=false", *arguments]
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        step = " ".join(arguments[:2])
        raise WorkspaceError(f"git {step} failed in {root}: {result.stderr.strip()}")
    return result.stdout.strip()
