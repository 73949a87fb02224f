"""Refusing unsafe patches, and building a revert without touching the live checkout (real git)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from states.fix.patches import UnsafePatch, check_patch, patch_files, revert_diff
from states.git import GitError

NORMAL = """\
diff --git a/shop/catalog.py b/shop/catalog.py
index 3b18e51..a9f3c2d 100644
--- a/shop/catalog.py
+++ b/shop/catalog.py
@@ -1,2 +1,2 @@
 def search(items):
-    return sorted(items)
+    return items
"""


def diff_for(path: str, new_path: str | None = None) -> str:
    new_path = new_path or path
    return (
        f"diff --git a/{path} b/{new_path}\n--- a/{path}\n+++ b/{new_path}\n@@ -1 +1 @@\n-x\n+y\n"
    )


# --- check_patch ------------------------------------------------------------------------------------


def test_a_normal_diff_is_accepted_and_its_files_listed() -> None:
    assert check_patch(NORMAL, max_bytes=10_000) == ["shop/catalog.py"]


def test_a_new_file_diff_names_only_the_new_path() -> None:
    created = (
        "diff --git a/docs/new.md b/docs/new.md\nnew file mode 100644\n"
        "--- /dev/null\n+++ b/docs/new.md\n@@ -0,0 +1 @@\n+hello\n"
    )
    assert check_patch(created, 10_000) == ["docs/new.md"]


def test_a_rename_lists_both_sides() -> None:
    assert patch_files(diff_for("old/name.py", "new/name.py")) == ["old/name.py", "new/name.py"]


@pytest.mark.parametrize(
    "path",
    ["../outside.py", "shop/../../etc/passwd", "shop/../x.py"],
    ids=["parent", "deep", "mid"],
)
def test_a_path_climbing_out_of_the_repository_is_refused(path: str) -> None:
    with pytest.raises(UnsafePatch, match="outside the repository"):
        check_patch(diff_for(path), 10_000)


def test_an_absolute_path_is_refused() -> None:
    absolute = "--- /etc/passwd\n+++ /etc/passwd\n@@ -1 +1 @@\n-root\n+owned\n"
    with pytest.raises(UnsafePatch, match="'/etc/passwd', outside the repository"):
        check_patch(absolute, 10_000)


def test_a_path_inside_git_metadata_is_refused() -> None:
    with pytest.raises(UnsafePatch, match=r"'\.git/hooks/pre-commit', inside \.git"):
        check_patch(diff_for(".git/hooks/pre-commit"), 10_000)


def test_a_file_merely_named_like_git_is_allowed() -> None:
    assert check_patch(diff_for(".gitignore"), 10_000) == [".gitignore"]


def test_an_oversize_patch_is_refused_with_its_size_and_the_limit() -> None:
    size = len(NORMAL.encode())
    assert check_patch(NORMAL, max_bytes=size) == ["shop/catalog.py"]
    with pytest.raises(UnsafePatch, match=f"patch is {size} bytes, over the limit of {size - 1}"):
        check_patch(NORMAL, max_bytes=size - 1)


def test_size_is_counted_in_bytes_not_characters() -> None:
    accented = diff_for("docs/café.md") + "+" + "é" * 100 + "\n"
    with pytest.raises(UnsafePatch, match="over the limit"):
        check_patch(accented, max_bytes=len(accented) + 50)


# --- revert_diff on a real repository ---------------------------------------------------------------


def run_git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=Dev", "-c", "user.email=dev@example.org", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def commit_file(repo: Path, name: str, text: str, message: str) -> str:
    path = repo / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    run_git(repo, "add", name)
    run_git(repo, "commit", "-q", "-m", message)
    return run_git(repo, "rev-parse", "HEAD").strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    live = tmp_path / "live"
    live.mkdir()
    run_git(live, "init", "-q", "-b", "main")
    commit_file(live, "shop/catalog.py", "def search(items):\n    return sorted(items)\n", "first")
    commit_file(live, "README.md", "shop\n", "docs")
    return live


def snapshot(repo: Path) -> dict[str, str]:
    """Everything about the live checkout a revert must leave alone."""
    return {
        "head": run_git(repo, "rev-parse", "HEAD"),
        "branches": run_git(repo, "branch", "--list", "--verbose", "--no-abbrev"),
        "status": run_git(repo, "status", "--porcelain=v1", "--untracked-files=all"),
        "index": run_git(repo, "diff", "--cached"),
        "worktree": run_git(repo, "diff"),
        "worktrees": run_git(repo, "worktree", "list", "--porcelain"),
        "catalog": (repo / "shop/catalog.py").read_text(),
        "stash": run_git(repo, "stash", "list"),
    }


def test_a_revert_diff_undoes_the_commit_and_leaves_the_live_checkout_untouched(
    repo: Path, tmp_path: Path
) -> None:
    bad = commit_file(repo, "shop/catalog.py", "def search(items):\n    return items\n", "slow")
    head = commit_file(repo, "README.md", "shop, faster\n", "later")
    # An operator's unfinished work: a staged change, an unstaged one, an untracked file.
    (repo / "README.md").write_text("staged\n")
    run_git(repo, "add", "README.md")
    (repo / "README.md").write_text("staged, then edited\n")
    (repo / "notes.txt").write_text("mine\n")
    before = snapshot(repo)
    scratch = tmp_path / "sandboxes" / "revert"

    diff = revert_diff(repo, head, bad, scratch)

    assert check_patch(diff, 10_000) == ["shop/catalog.py"]
    assert "-    return items\n+    return sorted(items)\n" in diff
    assert snapshot(repo) == before
    assert not scratch.exists()

    # The diff really reverts: applied to a clean checkout of the base it restores the old code.
    clean = tmp_path / "clean"
    run_git(repo, "worktree", "add", "-q", "--detach", str(clean), head)
    (clean / "fix.patch").write_text(diff)
    run_git(clean, "apply", "fix.patch")
    assert (
        clean / "shop/catalog.py"
    ).read_text() == "def search(items):\n    return sorted(items)\n"
    assert (clean / "README.md").read_text() == "shop, faster\n"


def test_a_conflicting_revert_raises_and_still_cleans_up(repo: Path, tmp_path: Path) -> None:
    bad = commit_file(repo, "shop/catalog.py", "def search(items):\n    return items\n", "slow")
    head = commit_file(
        repo, "shop/catalog.py", "def search(items):\n    return list(items)\n", "rework"
    )
    before = snapshot(repo)
    scratch = tmp_path / "sandboxes" / "revert"

    with pytest.raises(GitError, match="revert"):
        revert_diff(repo, head, bad, scratch)

    assert snapshot(repo) == before
    assert not scratch.exists()


def test_a_revert_of_a_non_hex_revision_is_refused(repo: Path, tmp_path: Path) -> None:
    head = run_git(repo, "rev-parse", "HEAD").strip()
    with pytest.raises(GitError, match="refusing revision '--upload-pack=evil'"):
        revert_diff(repo, head, "--upload-pack=evil", tmp_path / "scratch")
    assert not (tmp_path / "scratch").exists()
