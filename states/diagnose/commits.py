"""Ranking suspect commits with named, explainable features.

Every score is a sum of feature contributions that ``diagnosis.json`` shows
one by one, so an operator can see why a commit was blamed. Confidence is a
softmax over the scores: how much the top suspect stands out from the rest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from states.git import Commit

FEATURE_WEIGHTS: dict[str, float] = {
    "deployed_at_onset": 0.35,
    "touches_component_paths": 0.40,
    "touches_stack_frames": 0.30,
    "recency": 0.10,
    "pattern_prior": 0.15,
}
TEMPERATURE = 0.12


@dataclass(frozen=True)
class SuspectEvidence:
    """What is known around the onset, independent of any one commit."""

    component_paths: tuple[str, ...] = ()
    stack_files: frozenset[str] = frozenset()
    deployed_commits: frozenset[str] = frozenset()
    pattern_files: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Suspect:
    """One commit with its score, per-feature contributions and confidence."""

    commit: Commit
    score: float
    features: dict[str, float] = field(default_factory=dict)
    confidence: float = 0.0


def under_paths(path: str, prefixes: Sequence[str]) -> bool:
    """Whether ``path`` is one of ``prefixes`` or inside one of them."""
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in prefixes)


def commit_features(
    commit: Commit, evidence: SuspectEvidence, position: int, total: int
) -> dict[str, float]:
    """Each feature's contribution for one commit (``position`` 0 is the newest)."""
    files = set(commit.files)
    raw = {
        "deployed_at_onset": float(commit.sha in evidence.deployed_commits),
        "touches_component_paths": float(
            any(under_paths(f, evidence.component_paths) for f in files)
        ),
        "touches_stack_frames": float(bool(files & evidence.stack_files)),
        "recency": 1.0 - position / total if total > 1 else 1.0,
        "pattern_prior": float(bool(files & evidence.pattern_files)),
    }
    return {name: round(FEATURE_WEIGHTS[name] * value, 4) for name, value in raw.items()}


def rank_suspects(commits: Sequence[Commit], evidence: SuspectEvidence) -> list[Suspect]:
    """Commits (newest first) ranked by total feature score, with softmax confidence."""
    scored = []
    for position, commit in enumerate(commits):
        features = commit_features(commit, evidence, position, len(commits))
        scored.append(Suspect(commit, round(sum(features.values()), 4), features))
    if not scored:
        return []
    top = max(s.score for s in scored)
    weights = [math.exp((s.score - top) / TEMPERATURE) for s in scored]
    total = sum(weights)
    ranked = [
        Suspect(s.commit, s.score, s.features, round(w / total, 4))
        for s, w in zip(scored, weights, strict=True)
    ]
    return sorted(ranked, key=lambda s: -s.score)


def map_frame_file(
    frame_file: str, prefixes: Sequence[str], repo_files: frozenset[str]
) -> str | None:
    """A stack frame's file as a repository path: strip configured prefixes, else match by suffix."""
    for prefix in prefixes:
        if frame_file.startswith(prefix):
            candidate = frame_file[len(prefix) :].lstrip("/")
            if candidate in repo_files:
                return candidate
    if frame_file in repo_files:
        return frame_file
    matches = [f for f in repo_files if frame_file.endswith("/" + f)]
    return max(matches, key=len) if matches else None
