"""Phase 3's verdict beat: rank the suspect commits and write diagnosis.json.

It reads what the earlier beats checkpointed (the component chosen by
``rank-components``, the onset's versions, frames and the operations that got
slow or started failing, the commits around it), diagnoses that component's
code (``states.diagnose.culprits``) and lists the candidates the fix phase
will try, each with the component, category, confidence and feature
contributions it rests on.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from states.artifacts import (
    Candidate,
    ComponentEntry,
    DiagnosisArtifact,
    OperationEntry,
    SuspectEntry,
)
from states.context import BeatContext, BeatResult
from states.diagnose.component_beat import BEAT_ID as RANKING_BEAT
from states.diagnose.culprits import CodeEvidence, LocatedSuspect, diagnose_commits
from states.diagnose.frames import Frame
from states.git import Commit, resolve
from states.learn.signatures import signature_of
from states.registry import beat
from storage import repository as repo
from storage.tables import CycleRow


def _commit_of(d: dict[str, Any]) -> Commit:
    return Commit(
        d["sha"],
        d["author"],
        d["email"],
        datetime.fromisoformat(d["at"]),
        d["subject"],
        tuple(d["files"]),
    )


@beat("diagnose.rank_suspects")
def rank(ctx: BeatContext) -> BeatResult:
    """Rank suspects, pick file and line, list candidates, write diagnosis.json."""
    cycle_id = ctx.require_cycle()
    onset_info, changes = ctx.outputs["find-onset"], ctx.outputs["collect-changes"]
    ranking = ctx.outputs.get(RANKING_BEAT, {})
    cycle = ctx.db.query(lambda s: repo.cycle(s, cycle_id))
    component = str(onset_info["component"])
    category = str(ranking.get("category") or cycle.category)
    head = changes["unhealthy"] or resolve(ctx.settings.repository.path, "HEAD")
    evidence = _code_evidence(ctx, cycle, component, category, head)
    located = diagnose_commits(
        ctx.settings.repository.path, evidence, ctx.settings.diagnose.max_blamed_frames
    )
    entries = [_suspect_entry(s) for s in located]
    diagnosis = _diagnosis(ctx, cycle, ranking, entries, category)
    diagnosis.evidence += [_operation_line(o) for o in diagnosis.operations]
    diagnosis.evidence += _explain(located[0] if located else None, changes, component)
    ctx.artifacts.write_model(cycle_id, "diagnosis", diagnosis)
    sig_files = [diagnosis.file] if diagnosis.file else []
    return BeatResult(
        output={
            "suspect": diagnosis.suspect_commit,
            "component": component,
            "confidence": diagnosis.confidence,
            "candidates": len(diagnosis.candidates),
        },
        cycle_updates={
            "cause_found": diagnosis.conclusive and bool(diagnosis.candidates),
            "confidence": diagnosis.confidence,
            "candidates_total": len(diagnosis.candidates),
            "candidate_index": 0,
            "signature": signature_of(cycle.component, cycle.category, cycle.metric, sig_files),
            "summary": {
                "suspect_commit": diagnosis.suspect_commit,
                "root_component": component,
                "file": diagnosis.file,
                "line": diagnosis.line,
                "running_version": changes["unhealthy"] or head,
                "healthy_version": changes["healthy"],
                "signature_files": sig_files,
            },
        },
    )


def _code_evidence(
    ctx: BeatContext, cycle: CycleRow, component: str, category: str, head: str | None
) -> CodeEvidence:
    """What the earlier beats found, as code-level diagnosis takes it."""
    onset_info, changes = ctx.outputs["find-onset"], ctx.outputs["collect-changes"]
    # Patterns are keyed by where the symptom shows (the cycle's component).
    learned = ctx.db.query(
        lambda s: [p for p in repo.patterns(s) if p.component == cycle.component and p.successes]
    )
    return CodeEvidence(
        commits=tuple(_commit_of(c) for c in changes["commits"]),
        running_revision=head,
        component_paths=tuple(ctx.settings.component(component).paths),
        deployed_commits=frozenset(changes["deployed_commits"]),
        frames=tuple(Frame(str(f), int(n), str(fn)) for f, n, fn in onset_info["frames"]),
        operations=tuple(str(o["operation"]) for o in onset_info.get("operations", [])),
        pattern_files=frozenset(f for p in learned for f in p.files),
        path_prefixes=tuple(ctx.settings.repository.path_prefixes),
        category=category,
    )


def _diagnosis(
    ctx: BeatContext,
    cycle: CycleRow,
    ranking: dict[str, Any],
    entries: list[SuspectEntry],
    category: str,
) -> DiagnosisArtifact:
    """The artifact: the ranked components, the top suspect and the candidates to try."""
    onset_info, changes = ctx.outputs["find-onset"], ctx.outputs["collect-changes"]
    component = str(onset_info["component"])
    top = entries[0] if entries else None
    confidence = top.confidence if top else 0.0
    return DiagnosisArtifact(
        cycle_id=cycle.id,
        component=cycle.component,
        root_component=component,
        components=[ComponentEntry.model_validate(r) for r in ranking.get("ranked", [])],
        call_graph=ranking.get("graph", ""),
        category=cycle.category,
        metric=cycle.metric,
        onset=datetime.fromisoformat(onset_info["onset"]),
        healthy_version=changes["healthy"],
        unhealthy_version=changes["unhealthy"],
        suspect_commit=top.commit if top else None,
        file=top.file if top else None,
        line=top.line if top else None,
        confidence=confidence,
        conclusive=top is not None and confidence >= ctx.settings.diagnose.min_confidence,
        suspects=entries,
        candidates=_candidates(entries, changes, component, category),
        change_events=changes["events"],
        evidence=list(ranking.get("explanation", [])),
        operations=[OperationEntry.model_validate(o) for o in onset_info.get("operations", [])],
    )


def _suspect_entry(located: LocatedSuspect) -> SuspectEntry:
    suspect = located.suspect
    return SuspectEntry(
        commit=suspect.commit.sha,
        author=suspect.commit.author,
        committed_at=suspect.commit.committed_at,
        subject=suspect.commit.subject,
        files=list(suspect.commit.files),
        score=suspect.score,
        confidence=suspect.confidence,
        features=suspect.features,
        file=located.file,
        line=located.line,
        functions=_functions(located),
    )


def _functions(located: LocatedSuspect) -> dict[str, list[str]]:
    """The functions behind the suspect's function features, by how each was found."""
    facts = located.facts
    found = {
        "named": facts.named_functions,
        "reached": facts.reached_functions,
        "called": facts.called_functions,
    }
    return {how: sorted(functions) for how, functions in found.items() if functions}


def _candidates(
    entries: list[SuspectEntry], changes: dict[str, Any], component: str, category: str
) -> list[Candidate]:
    """Revert the top three suspects that have any evidence, then redeploy the healthy version."""
    candidates = [
        Candidate(
            strategy="revert_commit",
            component=component,
            category=category,
            commit=e.commit,
            file=e.file,
            line=e.line,
            confidence=e.confidence,
            features=e.features,
            reason=f"suspect score {e.score}, confidence {e.confidence}",
        )
        for e in entries[:3]
        if e.score > 0
    ]
    if changes["healthy"] and changes["unhealthy"] and changes["healthy"] != changes["unhealthy"]:
        candidates.append(
            Candidate(
                strategy="redeploy_version",
                component=component,
                category=category,
                version=changes["healthy"],
                reason="last healthy version",
            )
        )
    return candidates


def _explain(top: LocatedSuspect | None, changes: dict[str, Any], component: str) -> list[str]:
    if top is None:
        return [f"no commit found ({changes['basis']}); escalating instead of guessing"]
    suspect = top.suspect
    lines = [f"{len(changes['commits'])} commit(s) considered from the {changes['basis']}"]
    behind = _functions(top)
    shown = {
        "touches_named_functions": [f for how in ("named", "reached") for f in behind.get(how, [])],
        "touches_called_functions": behind.get("called", []),
    }
    lines += [
        f"{name} contributed {value}" + (f" ({', '.join(shown[name])})" if shown.get(name) else "")
        for name, value in suspect.features.items()
        if value
    ]
    lines.append(f"softmax share {suspect.share}, calibrated confidence {suspect.confidence}")
    lines.append(
        f"{suspect.commit.sha[:12]} '{suspect.commit.subject}' touches "
        f"{', '.join(suspect.commit.files)} (component {component})"
    )
    if top.file is not None:
        lines.append(f"{top.file}:{top.line} chosen by {top.located_by}")
    return lines


def _operation_line(entry: OperationEntry) -> str:
    """One moved operation with its figures before and after the onset."""
    parts = []
    if "slower" in entry.changes:
        parts.append(
            f"mean {entry.before_mean_ms} ms -> {entry.after_mean_ms} ms (x{entry.slowdown})"
        )
    if "failing" in entry.changes:
        parts.append(
            f"errors {entry.before_error_rate:.1%} -> {entry.after_error_rate:.1%} "
            f"(x{entry.error_ratio})"
        )
    basis = (
        "against its own windows before"
        if entry.baseline == "own"
        else "new or rare before, so against the whole component"
    )
    return (
        f"operation {entry.operation} {' and '.join(entry.changes)} at the onset: "
        f"{', '.join(parts)}; {entry.before_count} records before, {entry.after_count} after, "
        f"{basis}"
    )
