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
from collections.abc import Sequence
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


@dataclass(frozen=True)
class FileChange:
    """What one commit did to one file, read from its zero-context diff.

    ``lines`` are the line numbers, in the commit's version of the file, that it
    added or changed; ``touched`` adds the place of each pure deletion (the line
    before it), so a commit that only removed lines from a function still
    touched that function. ``text`` holds the added lines themselves.
    """

    path: str
    added: int
    removed: int
    lines: tuple[int, ...]
    touched: tuple[int, ...]
    text: tuple[str, ...] = ()


_DIFF_HUNK = re.compile(r"^@@ -\d+(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


def commit_changes(repo: Path, sha: str) -> list[FileChange]:
    """Every file a commit changed against its first parent, with its changed lines."""
    out = git(
        repo,
        "-c",
        "core.quotePath=false",
        "show",
        "-U0",
        "--format=",
        "--no-color",
        "--no-ext-diff",
        "--first-parent",
        "--src-prefix=a/",
        "--dst-prefix=b/",
        "--end-of-options",
        checked_revision(sha),
    )
    return _parse_zero_context_diff(out)


def _parse_zero_context_diff(text: str) -> list[FileChange]:
    changes: list[FileChange] = []
    for section in re.split(r"^diff --git ", text, flags=re.MULTILINE)[1:]:
        change = _file_change(section)
        if change is not None:
            changes.append(change)
    return changes


def _file_change(section: str) -> FileChange | None:
    """One file's part of a zero-context diff (after its ``diff --git `` header)."""
    header, _, body = section.partition("\n")
    old = new = None
    added = removed = 0
    lines: list[int] = []
    touched: list[int] = []
    text: list[str] = []
    in_hunk = False
    for row in body.splitlines():
        if (match := _DIFF_HUNK.match(row)) is not None:
            in_hunk = True
            start, count = int(match.group(2)), int(match.group(3) or "1")
            lines.extend(range(start, start + count))
            touched.extend(range(start, start + count) if count else [max(start, 1)])
        elif in_hunk and row.startswith("+"):
            added += 1
            text.append(row[1:])
        elif in_hunk:
            removed += row.startswith("-")
        elif row.startswith("--- a/"):
            old = row[6:].removesuffix("\t")  # git ends names with spaces with a tab
        elif row.startswith("+++ b/"):
            new = row[6:].removesuffix("\t")
    # Binary files and mode changes have no ---/+++ lines: the header names them.
    path = new or old or (header.rsplit(" b/", 1)[1] if " b/" in header else None)
    if path is None:
        return None
    return FileChange(path, added, removed, tuple(lines), tuple(touched), tuple(text))


def file_text(repo: Path, rev: str, path: str) -> str | None:
    """The content of ``path`` in ``rev``, or None if it has no such file."""
    try:
        return git(repo, "cat-file", "blob", f"{checked_revision(rev)}:{path}")
    except GitError:
        return None


@dataclass(frozen=True)
class BlamedLine:
    """The commit that last changed a line, and where the line was in that commit."""

    commit: str
    original_line: int


_BLAME_HEADER = re.compile(r"^([0-9a-f]{40,64}) (\d+) (\d+)(?: \d+)?$")


def blame_lines(repo: Path, rev: str, path: str, lines: Sequence[int]) -> dict[int, BlamedLine]:
    """For each of ``lines`` of ``path`` at ``rev``, the commit that last changed it.

    Lines past the end of the file (a frame from another build) are left out.
    """
    wanted = sorted({n for n in lines if n > 0})
    if not wanted:
        return {}
    ranges = [arg for n in wanted for arg in ("-L", f"{n},{n}")]
    # git blame (2.39) refuses --end-of-options; a checked hex revision cannot be an option.
    args = ["blame", "--porcelain", *ranges, checked_revision(rev), "--", path]
    try:
        return _parse_blame(git(repo, *args))
    except GitError:
        if len(wanted) == 1:
            return {}
    found: dict[int, BlamedLine] = {}
    for n in wanted:  # one range failed (past the end): blame the others one by one
        found.update(blame_lines(repo, rev, path, [n]))
    return found


def _parse_blame(text: str) -> dict[int, BlamedLine]:
    found: dict[int, BlamedLine] = {}
    for row in text.splitlines():
        match = _BLAME_HEADER.match(row)
        if match is not None:
            found[int(match.group(3))] = BlamedLine(match.group(1), int(match.group(2)))
    return found
