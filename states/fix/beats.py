"""Phase 4 beat: turn the next candidate into a patch with a description and tests.

A learned pattern for the same signature reorders the candidates so that its
strategy is tried first; the patch records whether that happened.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from states.artifacts import Candidate, DiagnosisArtifact, PatchArtifact
from states.context import BeatContext, BeatResult, PermanentError
from states.fix.patches import GitError, UnsafePatch, check_patch, revert_diff, version_diff
from states.git import git
from states.registry import beat
from storage import repository as repo
from storage.tables import CycleRow, PatternRow


def read_diagnosis(ctx: BeatContext, cycle_id: str) -> DiagnosisArtifact:
    """The cycle's diagnosis as written by phase 3."""
    path = ctx.artifacts.cycle_dir(cycle_id) / "diagnosis.json"
    return DiagnosisArtifact.model_validate_json(path.read_bytes())


def order_candidates(
    candidates: list[Candidate], pattern: PatternRow | None
) -> tuple[list[Candidate], bool]:
    """Candidates with the pattern's strategy (on the pattern's files) first; stable otherwise."""
    if pattern is None or pattern.successes == 0:
        return candidates, False

    def matches(c: Candidate) -> bool:
        if c.strategy != pattern.strategy:
            return False
        return c.strategy != "revert_commit" or not pattern.files or c.file in pattern.files

    preferred = [c for c in candidates if matches(c)]
    rest = [c for c in candidates if not matches(c)]
    return preferred + rest, bool(preferred)


def tests_for(worktree_files: list[str], component: str, command: list[str]) -> list[str]:
    """The tests that must pass: the configured command, naming the component's own test files."""
    own = [
        f for f in worktree_files if Path(f).name.startswith("test") and component in Path(f).stem
    ]
    return [" ".join(command), *own]


def _describe(
    candidate: Candidate, diagnosis: DiagnosisArtifact, files: list[str]
) -> tuple[str, str]:
    if candidate.strategy == "revert_commit":
        suspect = next((s for s in diagnosis.suspects if s.commit == candidate.commit), None)
        subject = suspect.subject if suspect else ""
        title = f"Revert {str(candidate.commit)[:12]} ({subject})"
        why = "; ".join(diagnosis.evidence)
        what = f"Reverts {candidate.commit} touching {', '.join(files)}."
        where = (
            f" The regression is pinned to {candidate.file}:{candidate.line}."
            if candidate.file
            else ""
        )
    else:
        title = f"Redeploy last healthy version {str(candidate.version)[:12]}"
        what = f"Operational action: return every target to {candidate.version}."
        why, where = "the version that ran before onset was healthy", ""
    body = (
        f"What: {what}{where}\n"
        f"Why: {diagnosis.component} {diagnosis.metric} regressed ({diagnosis.category}) from "
        f"{diagnosis.onset.isoformat()}; {why}.\n"
        f"Evidence: diagnosis confidence {diagnosis.confidence:.2f}; see diagnosis.json."
    )
    return title, body


@beat("fix.make_patch")
def make_patch(ctx: BeatContext) -> BeatResult:
    """Build the patch for the current candidate; unusable candidates are skipped with a reason."""
    cycle_id = ctx.require_cycle()
    cycle: CycleRow = ctx.db.query(lambda s: repo.cycle(s, cycle_id))
    diagnosis = read_diagnosis(ctx, cycle_id)
    pattern = ctx.db.query(lambda s: repo.pattern(s, cycle.signature)) if cycle.signature else None
    ordered, pattern_used = order_candidates(diagnosis.candidates, pattern)
    base = str(cycle.summary.get("running_version") or diagnosis.unhealthy_version)
    skipped: list[str] = []
    for index in range(cycle.candidate_index, len(ordered)):
        candidate = ordered[index]
        try:
            diff, target = _diff_for(ctx, cycle_id, base, candidate, index)
            files = check_patch(diff, ctx.settings.validate_.max_patch_bytes)
        except (GitError, UnsafePatch) as exc:
            skipped.append(f"candidate {index} ({candidate.strategy}): {exc}")
            continue
        return _write(
            ctx,
            cycle,
            diagnosis,
            candidate,
            index,
            base,
            target,
            diff,
            files,
            pattern,
            pattern_used and index == 0,
            skipped,
        )
    return BeatResult(
        output={"skipped": skipped},
        cycle_updates={"candidate_ready": False, "candidate_index": len(ordered)},
    )


def _diff_for(
    ctx: BeatContext, cycle_id: str, base: str, candidate: Candidate, index: int
) -> tuple[str, str | None]:
    repo_path = ctx.settings.repository.path
    if candidate.strategy == "revert_commit" and candidate.commit:
        scratch = ctx.data_dir / "sandboxes" / f"{cycle_id}-fix-{index}"
        return revert_diff(repo_path, base, candidate.commit, scratch), None
    if candidate.strategy == "redeploy_version" and candidate.version:
        return version_diff(repo_path, base, candidate.version), candidate.version
    raise PermanentError(f"candidate {index} has no commit or version to act on")


def _write(
    ctx: BeatContext,
    cycle: CycleRow,
    diagnosis: DiagnosisArtifact,
    candidate: Candidate,
    index: int,
    base: str,
    target: str | None,
    diff: str,
    files: list[str],
    pattern: PatternRow | None,
    pattern_used: bool,
    skipped: list[str],
) -> BeatResult:
    title, description = _describe(candidate, diagnosis, files)
    tree = git(ctx.settings.repository.path, "ls-tree", "-r", "--name-only", base).splitlines()
    artifact = PatchArtifact(
        cycle_id=cycle.id,
        candidate_index=index,
        strategy=candidate.strategy,
        commit=candidate.commit,
        base_version=base,
        target_version=target,
        files=files,
        diff_bytes=len(diff.encode()),
        title=title,
        description=description,
        tests=tests_for(
            tree, diagnosis.root_component or cycle.component, ctx.settings.validate_.test_command
        ),
        pattern_signature=pattern.signature if pattern else None,
        pattern_used=pattern_used,
    )
    ctx.artifacts.write_bytes(cycle.id, "fix.patch", "fix.patch", diff.encode())
    ctx.artifacts.write_model(cycle.id, "patch", artifact)
    updates: dict[str, Any] = {
        "candidate_ready": True,
        "candidate_index": index,
        "pattern_signature": pattern.signature if pattern else None,
        "pattern_confidence": pattern.confidence if pattern else 0.0,
        "summary": {
            "strategy": candidate.strategy,
            "patch_title": title,
            "pattern_used": pattern_used,
        },
    }
    return BeatResult(
        output={
            "candidate": index,
            "strategy": candidate.strategy,
            "files": files,
            "skipped": skipped,
        },
        cycle_updates=updates,
    )
