"""Ranking suspect commits with named, explainable features.

Every score is a sum of feature contributions that ``diagnosis.json`` shows
one by one, so an operator can see why a commit was blamed. A softmax over the
scores gives each commit's share (how much it stands out from the rest), and
``states.diagnose.calibration`` turns the share into a confidence that is
right as often as it claims on the diagnosis benchmark.

The features, each a value in [0, 1] times its weight:

- ``deployed_at_onset``: the commit arrived with the release that went out at
  the onset (the version range from the last healthy to the unhealthy version).
- ``touches_component_paths``: it changed runtime code under the anomalous
  component's configured paths.
- ``touches_stack_frames``: it changed a file that a stack frame of the
  incident points into.
- ``blamed_frame_line``: ``git blame`` at the running revision names it as
  the last change to a frame's line; 1 for the innermost frame in the
  repository, 1/2 for the next, and so on.
- ``touches_named_functions``: it changed the body of a function that a frame
  or a slow operation names (1), or one that such an operation's function
  calls (3/4: it runs on every slow request too, one step less directly named).
- ``touches_called_functions``: it changed the body of a function outside
  the component's paths that the component's code calls (shared code).
- ``adds_category_cues``: the lines it added look like a cause of the
  incident's category: a sleep, retry, table scan, query per item or list
  searched per item for latency, a growing cache or module-level collection
  for memory, a raise, parse, unchecked index or division by a collection's
  size for errors (``states.diagnose.cues``).
- ``change_size``: how much runtime code it changed, on a log scale that
  saturates at ``SIZE_SATURATION_LINES`` (large changes break things more).
- ``recency``: newer commits first, a tie-breaker, only for commits not known
  to have been deployed at the onset (the look-back window, where a newer
  commit is likelier to have just gone out); the commits of one release went
  out together, and their order within it says nothing.
- ``pattern_prior``: it touched a file of a pattern learned from an earlier
  incident of this component that a fix resolved.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from states.diagnose import calibration
from states.git import Commit

# Set by hand from how direct each piece of evidence is (blame of the line an
# exception passed through above the functions and files telemetry names, above
# structure, content cues and priors), then checked on the training half of the
# diagnosis benchmark (``benchmarks/diagnosis.py``). Weights fitted there instead
# (conditional logit by maximum likelihood, or a grid search for top-1) did
# better on the training half and worse on the held-out half (0.84 and 0.86
# top-1 against 0.87), so these stay. REACHED_SHARE (1/2 before) and recency
# only outside a release were checked on the training halves of three seeds
# (+1 to +5 of 300 each, none worse).
FEATURE_WEIGHTS: dict[str, float] = {
    "deployed_at_onset": 0.35,
    "touches_component_paths": 0.40,
    "touches_stack_frames": 0.30,
    "blamed_frame_line": 0.60,
    "touches_named_functions": 0.40,
    "touches_called_functions": 0.30,
    "adds_category_cues": 0.25,
    "change_size": 0.10,
    "recency": 0.10,
    "pattern_prior": 0.15,
}
TEMPERATURE = 0.12  # the softmax share's temperature; calibration maps the share afterwards
REACHED_SHARE = 0.75  # of touches_named_functions, for a function a named operation only calls
SIZE_SATURATION_LINES = 400

# Files that cannot change what the service does in production.
_NOT_RUNTIME = re.compile(
    r"(?:^|/)(?:tests?|__tests__|spec|specs|docs?|\.github|\.circleci)/"
    r"|(?:^|/)test_[^/]*\.py$|_test\.(?:py|go)$|Tests?\.(?:java|kt|cs)$"
    r"|\.(?:test|spec)\.[jt]sx?$|\.(?:md|rst|adoc)$|(?:^|/)(?:LICENSE|CHANGELOG|AUTHORS)[^/]*$"
    r"|(?:^|/)(?!requirements|constraints)[^/]*\.txt$"  # requirements files do change runtime
    r"|(?:^|/)\.gitlab-ci\.yml$|(?:^|/)\.gitignore$"
)


@dataclass(frozen=True)
class SuspectEvidence:
    """What is known around the onset, independent of any one commit."""

    component_paths: tuple[str, ...] = ()
    stack_files: frozenset[str] = frozenset()
    deployed_commits: frozenset[str] = frozenset()
    pattern_files: frozenset[str] = frozenset()


@dataclass(frozen=True)
class CommitFacts:
    """What git says about one commit beyond its file list.

    ``runtime_lines`` counts lines added and removed outside tests and docs;
    ``named_functions`` are the functions whose body it changed that telemetry
    names; ``blamed_depths`` are the depths (0 innermost) of the frames whose
    line it was the last to change; ``called_functions`` are functions outside
    the component's paths whose body it changed and that the component calls;
    ``reached_functions`` are functions it changed that a function named by a
    slow operation calls; ``category_cues`` says whether its added runtime lines
    look like a cause of the incident's category (``states.diagnose.cues``).
    """

    runtime_lines: int = 0
    named_functions: frozenset[str] = frozenset()
    blamed_depths: tuple[int, ...] = ()
    called_functions: frozenset[str] = frozenset()
    reached_functions: frozenset[str] = frozenset()
    category_cues: bool = False


@dataclass(frozen=True)
class Suspect:
    """One commit with its score, per-feature contributions, share and confidence."""

    commit: Commit
    score: float
    features: dict[str, float] = field(default_factory=dict)
    confidence: float = 0.0
    share: float = 0.0


def under_paths(path: str, prefixes: Sequence[str]) -> bool:
    """Whether ``path`` is one of ``prefixes`` or inside one of them."""
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in prefixes)


def runtime_file(path: str) -> bool:
    """Whether a file can change what the service does (not a test, doc or CI file)."""
    return _NOT_RUNTIME.search(path) is None


def commit_features(
    commit: Commit,
    evidence: SuspectEvidence,
    position: int,
    total: int,
    facts: CommitFacts | None = None,
) -> dict[str, float]:
    """Each feature's contribution for one commit (``position`` 0 is the newest)."""
    facts = facts or CommitFacts()
    files = set(commit.files)
    deployed = commit.sha in evidence.deployed_commits
    runtime = [f for f in files if runtime_file(f)]
    raw = {
        "deployed_at_onset": float(deployed),
        "touches_component_paths": float(
            any(under_paths(f, evidence.component_paths) for f in runtime)
        ),
        "touches_stack_frames": float(bool(files & evidence.stack_files)),
        "blamed_frame_line": max((1.0 / (1 + d) for d in facts.blamed_depths), default=0.0),
        "touches_named_functions": 1.0
        if facts.named_functions
        else REACHED_SHARE * bool(facts.reached_functions),
        "touches_called_functions": float(bool(facts.called_functions)),
        "adds_category_cues": float(facts.category_cues),
        "change_size": min(
            1.0, math.log1p(facts.runtime_lines) / math.log1p(SIZE_SATURATION_LINES)
        ),
        "recency": 0.0 if deployed else newness(position, total),
        "pattern_prior": float(bool(files & evidence.pattern_files)),
    }
    return {name: round(FEATURE_WEIGHTS[name] * value, 4) for name, value in raw.items()}


def newness(position: int, total: int) -> float:
    """1 for the newest of ``total`` commits (``position`` 0), falling linearly."""
    return 1.0 - position / total if total > 1 else 1.0


def rank_suspects(
    commits: Sequence[Commit],
    evidence: SuspectEvidence,
    facts: Mapping[str, CommitFacts] | None = None,
) -> list[Suspect]:
    """Commits (newest first) ranked by total feature score, with share and confidence."""
    facts = facts or {}
    scored = []
    for position, commit in enumerate(commits):
        features = commit_features(commit, evidence, position, len(commits), facts.get(commit.sha))
        scored.append(Suspect(commit, round(sum(features.values()), 4), features))
    if not scored:
        return []
    shares = softmax([s.score for s in scored], TEMPERATURE)
    ranked = [
        Suspect(s.commit, s.score, s.features, calibration.confidence(p), round(p, 4))
        for s, p in zip(scored, shares, strict=True)
    ]
    return sorted(ranked, key=lambda s: -s.score)


def softmax(scores: Sequence[float], temperature: float) -> list[float]:
    """Shares in (0, 1] summing to one; a higher score gets a larger share."""
    top = max(scores)
    weights = [math.exp((s - top) / temperature) for s in scores]
    total = sum(weights)
    return [w / total for w in weights]


def map_frame_file(
    frame_file: str, prefixes: Sequence[str], repo_files: frozenset[str], function: str = ""
) -> str | None:
    """A stack frame's file as a repository path.

    Configured prefixes are stripped first; else a repository path that the
    frame's file ends with (longest wins). A bare Java/Kotlin file name is
    placed by its function's package (``com.acme.cart.CartService.add`` in
    ``CartService.java`` is ``.../com/acme/cart/CartService.java``).
    """
    for prefix in prefixes:
        if frame_file.startswith(prefix):
            candidate = frame_file[len(prefix) :].lstrip("/")
            if candidate in repo_files:
                return candidate
    if frame_file in repo_files:
        return frame_file
    matches = [f for f in repo_files if frame_file.endswith("/" + f)]
    if matches:
        return max(matches, key=len)
    if "/" not in frame_file and "." in function:
        return _by_package(frame_file, function, repo_files)
    return None


def _by_package(file_name: str, function: str, repo_files: frozenset[str]) -> str | None:
    package = [p for p in function.split(".")[:-2] if p and p[0].islower()]  # drop Class.method
    wanted = "/".join([*package, file_name])
    placed = [f for f in repo_files if f == wanted or f.endswith("/" + wanted)]
    if placed:
        return min(placed, key=len)
    named = [f for f in repo_files if f.rsplit("/", 1)[-1] == file_name]
    return named[0] if len(named) == 1 else None
