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

DIFF_PATH = re.compile(r"^(?:\+\+\+|---) (.+?)\s*$")
DIFF_GIT = re.compile(r'^diff --git ("(?:[^"\\]|\\.)*"|a/.+?) ("(?:[^"\\]|\\.)*"|b/.+?)$')
RENAME = re.compile(r"^(?:rename|copy) (?:from|to) (.+?)\s*$")
_C_ESCAPE = re.compile(rb"\\([0-7]{1,3}|.)", re.DOTALL)
_C_ESCAPED = {c.encode(): e.encode() for c, e in zip("abtnvfr", "\a\b\t\n\v\f\r", strict=True)}


class UnsafePatch(Exception):
    """The patch touches what it must not, or is too large; the message says which."""


def git_path(name: str, *, sided: bool) -> str:
    """A path as git reads it from a diff: C-style quotes undone, then ``a/`` or ``b/`` dropped."""
    if len(name) > 1 and name[0] == name[-1] == '"':
        name = _C_ESCAPE.sub(_unescape, name[1:-1].encode()).decode("utf-8", "replace")
    return name[2:] if sided and name[:2] in ("a/", "b/") else name


def _unescape(match: re.Match[bytes]) -> bytes:
    code = match.group(1)
    return bytes([int(code, 8) & 0xFF]) if code[0] in b"01234567" else _C_ESCAPED.get(code, code)


def patch_files(diff: str) -> list[str]:
    """Every path a unified diff names (old and new side, renames, copies), in order of appearance."""
    found: list[str] = []
    for line in diff.split("\n"):  # git's lines; splitlines() would also split at \x85 or \u2028
        names: list[str] = []
        if match := DIFF_GIT.match(line):
            names = [git_path(name, sided=True) for name in match.groups()]
        elif (match := DIFF_PATH.match(line)) and match.group(1) != "/dev/null":
            names = [git_path(match.group(1), sided=True)]
        elif match := RENAME.match(line):
            names = [git_path(match.group(1), sided=False)]
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
        if any(part.lower() == ".git" for part in parts):  # as git refuses: at any depth, any case
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
