"""The code host adapter: a local git repository, driven through argument lists.

Revisions that reach git come from git itself or from telemetry, so every
revision is checked to be a plain hex object name before use and passed after
``--end-of-options``: text from a log line can never become an option such as
``--upload-pack``. Sandboxes are worktrees, so the live checkout's files and
index are never touched.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

SHA = re.compile(r"^[0-9a-f]{7,64}$")
HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@")
SEP = "\x1f"
MAX_REVISION_CHARS = 4096


class GitError(Exception):
    """A git command failed; the message has the command and git's own words."""


@dataclass(frozen=True)
class Commit:
    """One commit and the files it touched."""

    sha: str
    author: str
    email: str
    committed_at: datetime
    subject: str
    files: tuple[str, ...]


def checked_revision(rev: str) -> str:
    """``rev`` if it is a hex object name; anything else is refused."""
    if not SHA.fullmatch(rev):  # match() would let a trailing newline through
        raise GitError(f"refusing revision {rev!r}: expected a hexadecimal commit id")
    return rev


def git(repo: Path, *args: str, timeout_s: float = 60.0, check: bool = True) -> str:
    """Run ``git -C repo args`` and return stdout."""
    argv = ["git", "-C", str(repo), *args]
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, errors="replace", timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise GitError(f"{' '.join(argv)} timed out after {timeout_s:.0f}s") from exc
    if check and done.returncode != 0:
        raise GitError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()[:500]}")
    return done.stdout


def resolve(repo: Path, rev: str) -> str | None:
    """The full commit id of a revision name git knows, or None."""
    if "\x00" in rev or len(rev) > MAX_REVISION_CHARS:
        return None  # no revision name git knows, and no argument the kernel would pass
    out = git(
        repo,
        "rev-parse",
        "--verify",
        "--quiet",
        "--end-of-options",
        f"{rev}^{{commit}}",
        check=False,
    )
    sha = out.strip()
    return sha if SHA.match(sha) else None


def _parse_log(text: str) -> list[Commit]:
    commits: list[Commit] = []
    for block in text.split("\x1e"):
        lines = [ln for ln in block.strip("\n").split("\n") if ln]
        if not lines:
            continue
        sha, author, email, stamp, subject = lines[0].split(SEP, 4)
        when = datetime.fromtimestamp(int(stamp), UTC)
        commits.append(Commit(sha, author, email, when, subject, tuple(lines[1:])))
    return commits


_LOG_FORMAT = f"--format=%x1e%H{SEP}%an{SEP}%ae{SEP}%ct{SEP}%s"


def commits_between(repo: Path, old: str, new: str, limit: int) -> list[Commit]:
    """Commits reachable from ``new`` but not ``old``, newest first."""
    span = f"{checked_revision(old)}..{checked_revision(new)}"
    return _parse_log(
        git(repo, "log", _LOG_FORMAT, "--name-only", f"-n{limit}", "--end-of-options", span)
    )


def commits_until(repo: Path, head: str, since: datetime, limit: int) -> list[Commit]:
    """Commits reachable from ``head`` committed at or after ``since``, newest first."""
    return _parse_log(
        git(
            repo,
            "log",
            _LOG_FORMAT,
            "--name-only",
            f"-n{limit}",
            f"--since={int(since.timestamp())}",
            "--end-of-options",
            checked_revision(head),
        )
    )


def added_lines(repo: Path, sha: str, path: str) -> list[int]:
    """Line numbers (in the commit's version of ``path``) that the commit added or changed."""
    out = git(
        repo, "show", "-U0", "--format=", "--end-of-options", checked_revision(sha), "--", path
    )
    lines: list[int] = []
    for row in out.splitlines():
        match = HUNK.match(row)
        if match:
            start, count = int(match.group(1)), int(match.group(2) or "1")
            lines.extend(range(start, start + count))
    return lines


def blame_commit(repo: Path, rev: str, path: str, line: int) -> str | None:
    """The commit that last changed ``path:line`` at ``rev``."""
    out = git(
        repo,
        "blame",
        "--porcelain",
        "-L",
        f"{line},{line}",
        "--end-of-options",
        checked_revision(rev),
        "--",
        path,
        check=False,
    )
    first = out.split(" ", 1)[0] if out else ""
    return first if SHA.match(first) else None


def add_worktree(repo: Path, path: Path, rev: str) -> None:
    """A detached worktree of ``rev`` at ``path`` (replacing a stale one)."""
    remove_worktree(repo, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    git(repo, "worktree", "add", "--detach", "--force", str(path), checked_revision(rev))


def remove_worktree(repo: Path, path: Path) -> None:
    """Remove the worktree at ``path`` if git knows it or it exists."""
    git(repo, "worktree", "remove", "--force", str(path), check=False)
    git(repo, "worktree", "prune", check=False)


def worktrees_under(repo: Path, root: Path) -> list[Path]:
    """Worktrees git has registered below ``root``."""
    out = git(repo, "worktree", "list", "--porcelain", check=False)
    found = []
    for row in out.splitlines():
        if row.startswith("worktree "):
            path = Path(row.split(" ", 1)[1])
            if root in path.parents:
                found.append(path)
    return found


def tracked_files(repo: Path, rev: str) -> frozenset[str]:
    """Every file path in the tree of ``rev``."""
    out = git(repo, "ls-tree", "-r", "--name-only", "--end-of-options", checked_revision(rev))
    return frozenset(out.splitlines())
