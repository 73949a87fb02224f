"""Ranking suspect commits by named features, and mapping stack frames to repository paths."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from states.diagnose import calibration
from states.diagnose.commits import (
    FEATURE_WEIGHTS,
    CommitFacts,
    SuspectEvidence,
    commit_features,
    map_frame_file,
    rank_suspects,
    under_paths,
)
from states.git import Commit

WHEN = datetime(2026, 3, 1, tzinfo=UTC)
NOTHING = SuspectEvidence()


def commit(sha: str, *files: str) -> Commit:
    return Commit(sha, "Dev", "dev@example.org", WHEN, f"change {sha}", files)


# --- each feature on and off ---------------------------------------------------------------------


def test_with_no_evidence_only_recency_contributes() -> None:
    features = commit_features(commit("a1", "shop/catalog.py"), NOTHING, position=0, total=4)
    assert features == {name: 0.0 for name in FEATURE_WEIGHTS} | {
        "recency": FEATURE_WEIGHTS["recency"]
    }


def test_a_commit_deployed_at_onset_gets_that_weight() -> None:
    evidence = SuspectEvidence(deployed_commits=frozenset({"a1"}))
    assert commit_features(commit("a1"), evidence, 0, 1)["deployed_at_onset"] == 0.35
    assert commit_features(commit("b2"), evidence, 0, 1)["deployed_at_onset"] == 0.0


def test_a_commit_under_the_components_paths_gets_that_weight() -> None:
    evidence = SuspectEvidence(component_paths=("shop/catalog",))
    inside = commit("a1", "README.md", "shop/catalog/search.py")
    beside = commit("b2", "shop/catalog_old.py")
    assert commit_features(inside, evidence, 0, 1)["touches_component_paths"] == 0.40
    assert commit_features(beside, evidence, 0, 1)["touches_component_paths"] == 0.0


def test_a_commit_touching_a_stack_frames_file_gets_that_weight() -> None:
    evidence = SuspectEvidence(stack_files=frozenset({"shop/inventory.py"}))
    assert (
        commit_features(commit("a1", "shop/inventory.py"), evidence, 0, 1)["touches_stack_frames"]
        == 0.30
    )
    assert (
        commit_features(commit("b2", "shop/auth.py"), evidence, 0, 1)["touches_stack_frames"] == 0.0
    )


def test_a_test_or_doc_file_under_the_components_paths_is_no_runtime_change() -> None:
    evidence = SuspectEvidence(component_paths=("shop",))
    only_tests = commit("a1", "shop/tests/test_catalog.py", "shop/README.md")
    assert commit_features(only_tests, evidence, 0, 1)["touches_component_paths"] == 0.0


def test_facts_from_git_feed_their_features() -> None:
    facts = CommitFacts(
        runtime_lines=400,
        named_functions=frozenset({"shop/catalog.py:search"}),
        blamed_depths=(1, 0),
        called_functions=frozenset({"shop/db.py:query"}),
        category_cues=True,
    )
    features = commit_features(commit("a1", "shop/catalog.py"), NOTHING, 0, 1, facts)
    for name in (
        "blamed_frame_line",  # the innermost frame (depth 0) counts in full
        "touches_named_functions",
        "touches_called_functions",
        "adds_category_cues",
        "change_size",  # saturated at SIZE_SATURATION_LINES
    ):
        assert features[name] == FEATURE_WEIGHTS[name], name


def test_a_function_an_operation_only_reaches_counts_three_quarters() -> None:
    facts = CommitFacts(reached_functions=frozenset({"shop/db.py:query"}))
    features = commit_features(commit("a1", "shop/db.py"), NOTHING, 0, 1, facts)
    assert features["touches_named_functions"] == pytest.approx(
        0.75 * FEATURE_WEIGHTS["touches_named_functions"]
    )


def test_a_commit_touching_a_learned_patterns_files_gets_the_prior() -> None:
    evidence = SuspectEvidence(pattern_files=frozenset({"shop/catalog.py"}))
    assert commit_features(commit("a1", "shop/catalog.py"), evidence, 0, 1)["pattern_prior"] == 0.15
    assert commit_features(commit("b2", "shop/cart.py"), evidence, 0, 1)["pattern_prior"] == 0.0


@pytest.mark.parametrize(
    ("position", "total", "recency"), [(0, 4, 0.1), (1, 4, 0.075), (3, 4, 0.025), (0, 1, 0.1)]
)
def test_recency_falls_linearly_from_the_newest(position: int, total: int, recency: float) -> None:
    assert commit_features(commit("a1"), NOTHING, position, total)["recency"] == recency


def test_commits_of_the_release_deployed_at_onset_are_not_ordered_by_recency() -> None:
    release = SuspectEvidence(deployed_commits=frozenset({"a1", "b2"}))
    assert commit_features(commit("a1"), release, 0, 2)["recency"] == 0.0
    assert commit_features(commit("c3"), release, 0, 2)["recency"] == FEATURE_WEIGHTS["recency"]


def test_under_paths_matches_the_path_itself_or_inside_it_only() -> None:
    assert under_paths("shop/a.py", ["shop/"])
    assert under_paths("shop/catalog.py", ["shop/catalog.py"])
    assert under_paths("shop/a.py", ["shop"])
    assert not under_paths("shopping/a.py", ["shop"])
    assert not under_paths("shop/a.py", [])


# --- ranking and confidence ------------------------------------------------------------------------


def test_suspects_are_ranked_by_total_score() -> None:
    evidence = SuspectEvidence(
        component_paths=("shop/catalog.py",),
        stack_files=frozenset({"shop/catalog.py"}),
        deployed_commits=frozenset({"old"}),
    )
    commits = [commit("newest", "docs/a.md"), commit("mid", "shop/catalog.py"), commit("old")]

    ranked = rank_suspects(commits, evidence)

    assert [s.commit.sha for s in ranked] == ["mid", "old", "newest"]
    top = ranked[0]
    assert top.score == pytest.approx(0.40 + 0.30 + 0.10 * (1 - 1 / 3), abs=1e-4)
    assert top.score == pytest.approx(sum(top.features.values()), abs=1e-4)


def test_shares_sum_to_one_and_favour_the_standout() -> None:
    evidence = SuspectEvidence(
        component_paths=("shop",), stack_files=frozenset({"shop/catalog.py"})
    )
    commits = [commit(f"c{i}", "docs/x.md") for i in range(4)]
    commits.insert(2, commit("culprit", "shop/catalog.py"))

    ranked = rank_suspects(commits, evidence)

    assert sum(s.share for s in ranked) == pytest.approx(1.0, abs=1e-3)
    assert ranked[0].commit.sha == "culprit"
    assert ranked[0].share > 0.9 and ranked[0].confidence > 0.9
    assert all(s.share < 0.05 and s.confidence < 0.05 for s in ranked[1:])


def test_confidence_is_the_calibrated_share() -> None:
    ranked = rank_suspects([commit("a", "shop/a.py"), commit("b")], SuspectEvidence(("shop",)))
    assert [s.confidence for s in ranked] == [calibration.confidence(s.share) for s in ranked]


def test_indistinguishable_suspects_share_confidence_and_keep_newest_first() -> None:
    ranked = rank_suspects([commit("a"), commit("b")], NOTHING)

    # Only recency differs (0.10 vs 0.05): a close call, not a verdict.
    assert [s.commit.sha for s in ranked] == ["a", "b"]
    assert 0.5 < ranked[0].share < 0.7
    assert ranked[0].share + ranked[1].share == pytest.approx(1.0, abs=1e-3)
    assert ranked[0].confidence < 0.8


def test_a_single_commit_takes_the_whole_share() -> None:
    [only] = rank_suspects([commit("a")], NOTHING)
    assert only.share == 1.0
    assert only.confidence > 0.99


def test_no_commits_rank_nothing() -> None:
    assert rank_suspects([], NOTHING) == []


# --- mapping frames to files -------------------------------------------------------------------------

REPO_FILES = frozenset({"shop/catalog.py", "catalog.py", "shop/util/catalog.py", "bench/run.py"})


def test_a_configured_prefix_is_stripped() -> None:
    assert map_frame_file("/app/shop/catalog.py", ["/app"], REPO_FILES) == "shop/catalog.py"
    assert map_frame_file("/app/shop/catalog.py", ["/app/"], REPO_FILES) == "shop/catalog.py"


def test_the_first_prefix_that_yields_a_repository_file_wins() -> None:
    prefixes = ["/srv/", "/srv/releases/42/"]
    assert map_frame_file("/srv/releases/42/bench/run.py", prefixes, REPO_FILES) == "bench/run.py"


def test_a_frame_already_relative_to_the_repository_is_kept() -> None:
    assert map_frame_file("bench/run.py", [], REPO_FILES) == "bench/run.py"


def test_without_a_prefix_the_longest_suffix_match_wins() -> None:
    assert map_frame_file("/opt/svc/shop/catalog.py", [], REPO_FILES) == "shop/catalog.py"
    assert map_frame_file("/opt/svc/shop/util/catalog.py", [], REPO_FILES) == "shop/util/catalog.py"


def test_a_suffix_must_match_whole_path_components() -> None:
    assert map_frame_file("/opt/svc/myshop/catalog.py", [], REPO_FILES) == "catalog.py"
    assert map_frame_file("/opt/svc/notcatalog.py", [], REPO_FILES) is None


def test_a_bare_java_file_name_is_placed_by_its_functions_package() -> None:
    files = frozenset(
        {
            "svc/a/src/main/java/com/acme/cart/Cart.java",
            "svc/b/src/main/java/com/acme/shop/Cart.java",
        }
    )
    placed = map_frame_file("Cart.java", [], files, "com.acme.cart.Cart.addLine")
    assert placed == "svc/a/src/main/java/com/acme/cart/Cart.java"
    assert map_frame_file("Cart.java", [], files, "org.other.Cart.addLine") is None
    assert map_frame_file("HashMap.java", [], files, "java.util.HashMap.get") is None


def test_a_frame_outside_the_repository_maps_to_nothing() -> None:
    frame = "/usr/lib/python3.11/json/decoder.py"
    assert map_frame_file(frame, ["/app"], REPO_FILES) is None
