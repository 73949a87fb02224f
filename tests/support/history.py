"""Writing and reading the demo repository's history the way the shop's team would.

Commands run with the user's and system's git configuration shut out, so a
developer's hooks or signing settings cannot change what a test sees.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

CULPRIT_SUBJECT = "catalog: support case-insensitive SKU lookup"
CHEN = {
    "GIT_AUTHOR_NAME": "Chen Wei",
    "GIT_AUTHOR_EMAIL": "chen.wei@shop.example",
    "GIT_COMMITTER_NAME": "Chen Wei",
    "GIT_COMMITTER_EMAIL": "chen.wei@shop.example",
}


def git(repo: Path, *arguments: str, env: dict[str, str] | None = None, check: bool = True) -> str:
    isolated = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        **(env or {}),
    }
    done = subprocess.run(
        ["git", "-C", str(repo), "-c", "commit.gpgsign=false", *arguments],
        capture_output=True,
        text=True,
        env=isolated,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"git {' '.join(arguments)} failed in {repo}: {done.stderr.strip()}")
    return done.stdout.strip()


def commit_with_subject(repo: Path, subject: str) -> str:
    """The one commit on any branch whose subject is ``subject``."""
    found = [
        line.split(" ", 1)[0]
        for line in git(repo, "log", "--all", "--format=%H %s").splitlines()
        if line.split(" ", 1)[1] == subject
    ]
    assert len(found) == 1, f"expected one commit '{subject}', found {found}"
    return found[0]


def changed_lines(repo: Path, commit: str, path: str) -> set[int]:
    """Line numbers of ``path`` (in ``commit``'s version) that ``commit`` added or changed."""
    lines: set[int] = set()
    for row in git(repo, "show", "-U0", "--format=", commit, "--", path).splitlines():
        if row.startswith("@@"):
            added = row.split("+", 1)[1].split(" ", 1)[0]
            start, _, count = added.partition(",")
            lines.update(range(int(start), int(start) + int(count or "1")))
    return lines


def reintroduce_regression(repo: Path, fixed_version: str) -> str:
    """Merge the agent's fix into main, then commit the culprit's change again; returns the head."""
    git(repo, "merge", "--quiet", "--ff-only", fixed_version)
    git(repo, "revert", "--no-commit", "HEAD")
    git(
        repo,
        "commit",
        "--quiet",
        "--no-verify",
        "-m",
        "catalog: match bundle part SKUs case-insensitively again\n\n"
        "Legacy bundles still list their parts in lower case.",
        env=CHEN,
    )
    return git(repo, "rev-parse", "HEAD")
