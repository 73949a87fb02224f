"""Building a candidate patch and refusing unsafe ones.

A revert is produced in a scratch worktree of the running version, never in
the live checkout. Before a patch goes anywhere it is checked: every path it
touches must be inside the repository, outside ``.git``, and the patch must
be smaller than the configured limit.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from states.git import GitError, add_worktree, checked_revision, git, remove_worktree

DIFF_PATH = re.compile(r"^(?:\+\+\+|---) (?:[ab]/)?(.+?)\s*$")
DIFF_GIT = re.compile(r"^diff --git a/(.+?) b/(.+?)$")


class UnsafePatch(Exception):
    """The patch touches what it must not, or is too large; the message says which."""


def patch_files(diff: str) -> list[str]:
    """Every path a unified diff names (old and new side), in order of appearance."""
    found: list[str] = []
    for line in diff.splitlines():
        match = DIFF_GIT.match(line)
        names = list(match.groups()) if match else []
        path_match = DIFF_PATH.match(line)
        if path_match and path_match.group(1) != "/dev/null":
            names.append(path_match.group(1))
        found.extend(n for n in names if n not in found)
    return found


def check_patch(diff: str, max_bytes: int) -> list[str]:
    """The files of a safe patch; raises UnsafePatch otherwise."""
    size = len(diff.encode())
    if size > max_bytes:
        raise UnsafePatch(f"patch is {size} bytes, over the limit of {max_bytes}")
    files = patch_files(diff)
    for name in files:
        parts = PurePosixPath(name).parts
        if name.startswith("/") or ".." in parts:
            raise UnsafePatch(f"patch touches {name!r}, outside the repository")
        if parts and parts[0] == ".git":
            raise UnsafePatch(f"patch touches {name!r}, inside .git")
    return files


def revert_diff(repo: Path, base: str, commit: str, scratch: Path) -> str:
    """The diff that reverts ``commit`` on top of ``base``; raises GitError on conflict."""
    add_worktree(repo, scratch, base)
    try:
        git(scratch, "revert", "--no-commit", "--no-edit", checked_revision(commit))
        return git(scratch, "diff", "--cached", "--no-color", "--no-ext-diff")
    finally:
        git(scratch, "revert", "--abort", check=False)
        remove_worktree(repo, scratch)


def version_diff(repo: Path, base: str, target: str) -> str:
    """The diff from ``base`` to ``target`` (what redeploying ``target`` changes)."""
    return git(
        repo,
        "diff",
        "--no-color",
        "--no-ext-diff",
        checked_revision(base),
        checked_revision(target),
    )


__all__ = ["GitError", "UnsafePatch", "check_patch", "patch_files", "revert_diff", "version_diff"]
