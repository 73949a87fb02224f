"""From the evidence the diagnosis beats gather to ranked commits with a file and a line.

``diagnose_commits`` is the whole code-level diagnosis as one function of its
inputs and the repository: the rank beat calls it with what earlier beats
persisted, and ``benchmarks/diagnosis.py`` calls it with generated incidents,
so the benchmark measures exactly what the agent does. It reads git (diffs,
file contents at a commit, blame at the running revision) and nothing else.

Stack frames are mapped to repository files, and the frame's line is blamed
at the running revision (``states.diagnose.frames``): the commit that last
changed the line an exception passed through is direct evidence. Functions a
commit changed are found by reading each changed file at the commit's own
revision (``states.diagnose.sources``), so a frame's or a slow operation's
function can be matched to the commit that changed its body.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

from states.diagnose.commits import (
    CommitFacts,
    Suspect,
    SuspectEvidence,
    rank_suspects,
    runtime_file,
    under_paths,
)
from states.diagnose.cues import matches_category
from states.diagnose.frames import Frame, MappedFrame, blame_frames, mapped_frames
from states.diagnose.functions import (
    FunctionSpan,
    functions_at,
    names_frame_function,
    names_operation,
    source_file,
)
from states.diagnose.sources import ComponentCode, SourceReader, component_code
from states.git import (
    BlamedLine,
    Commit,
    FileChange,
    commit_changes,
    commits_between,
    commits_until,
    resolve,
    tracked_files,
)

MAX_BLAMED_FRAMES = 10


@dataclass(frozen=True)
class CodeEvidence:
    """Everything code-level diagnosis needs, as the beats gather it.

    ``commits`` are newest first; ``running_revision`` is the commit the
    unhealthy instances run (frames' lines refer to it); ``operations`` are
    the slow or failing operations' names; ``category`` is the anomaly's
    (``latency``, ``errors``, ``memory``).
    """

    commits: tuple[Commit, ...]
    running_revision: str | None
    component_paths: tuple[str, ...] = ()
    deployed_commits: frozenset[str] = frozenset()
    frames: tuple[Frame, ...] = ()
    operations: tuple[str, ...] = ()
    pattern_files: frozenset[str] = frozenset()
    path_prefixes: tuple[str, ...] = ()
    category: str = ""


@dataclass(frozen=True)
class LocatedSuspect:
    """A ranked commit, the file and line (in the commit's version) to look at, and why.

    ``facts`` are what its features were computed from (the functions behind
    them, for the explanation).
    """

    suspect: Suspect
    file: str | None
    line: int | None
    located_by: str
    facts: CommitFacts = field(default_factory=CommitFacts)


def commit_range(
    repo: Path,
    healthy: str | None,
    unhealthy: str | None,
    onset: datetime,
    max_commits: int,
    lookback_s: float,
) -> tuple[list[Commit], str] | None:
    """The commits that may have caused the onset, and on what basis; None without any commit.

    With both versions known: what the unhealthy version added. Otherwise the
    commits of the running revision (else ``HEAD``) from ``lookback_s`` before onset.
    """
    if healthy and unhealthy and healthy != unhealthy:
        return commits_between(repo, healthy, unhealthy, max_commits), "version range"
    head = unhealthy or resolve(repo, "HEAD")
    if head is None:
        return None
    since = onset - timedelta(seconds=lookback_s)
    return commits_until(repo, head, since, max_commits), "time window before onset"


def diagnose_commits(
    repo: Path, evidence: CodeEvidence, max_blamed_frames: int = MAX_BLAMED_FRAMES
) -> list[LocatedSuspect]:
    """Rank the evidence's commits and point at a file and line in each."""
    running = evidence.running_revision
    files = tracked_files(repo, running) if running else frozenset()
    reader = SourceReader(repo)
    line_text = (lambda path, line: reader.line(running, path, line)) if running else None
    frames = mapped_frames(evidence.frames, evidence.path_prefixes, files, line_text)
    blamed = blame_frames(repo, running, frames[:max_blamed_frames]) if running else {}
    code = (
        component_code(reader, running, files, evidence.component_paths, evidence.operations)
        if running
        else ComponentCode()
    )
    changes = {c.sha: commit_changes(repo, c.sha) for c in evidence.commits}
    context = _FactContext(
        frames, blamed, evidence.operations, evidence.component_paths, code, evidence.category
    )
    facts = {sha: commit_facts(sha, diff, context, reader) for sha, diff in changes.items()}
    suspects = rank_suspects(
        evidence.commits,
        SuspectEvidence(
            component_paths=evidence.component_paths,
            stack_files=frozenset(f.path for f in frames),
            deployed_commits=evidence.deployed_commits,
            pattern_files=evidence.pattern_files,
        ),
        facts,
    )
    return [
        replace(
            locate(s, changes[s.commit.sha], frames, blamed, facts[s.commit.sha], evidence, reader),
            facts=facts[s.commit.sha],
        )
        for s in suspects
    ]


@dataclass(frozen=True)
class _FactContext:
    """What every commit's facts are measured against."""

    frames: Sequence[MappedFrame]
    blamed: Mapping[tuple[str, int], BlamedLine]
    operations: Sequence[str]
    component_paths: Sequence[str]
    code: ComponentCode
    category: str


def commit_facts(
    sha: str, changes: Sequence[FileChange], context: _FactContext, reader: SourceReader
) -> CommitFacts:
    """Size, functions changed that telemetry names or the component calls, frames blamed."""
    runtime = [c for c in changes if runtime_file(c.path)]
    named: set[str] = set()
    reached: set[str] = set()
    called: set[str] = set()
    for change in runtime:
        if not change.touched or not source_file(change.path):
            continue
        in_frames = [f for f in context.frames if f.path == change.path]
        outside = not under_paths(change.path, context.component_paths)
        code = context.code
        for function in functions_at(reader.spans(sha, change.path), change.touched):
            where = f"{change.path}:{function}"
            if any(names_frame_function(function, f.function) for f in in_frames) or any(
                names_operation(function, op) for op in context.operations
            ):
                named.add(where)
            elif code.calls(change.path, function, code.called_by_operations) or (
                not outside and function.rsplit(".", 1)[-1] in code.called_by_operations
            ):
                reached.add(where)
            if outside and code.calls(change.path, function, code.called):
                called.add(where)
    depths = tuple(
        f.depth
        for f in context.frames
        if (hit := context.blamed.get((f.path, f.line))) is not None and hit.commit == sha
    )
    return CommitFacts(
        runtime_lines=sum(c.added + c.removed for c in runtime),
        named_functions=frozenset(named),
        blamed_depths=depths,
        called_functions=frozenset(called),
        reached_functions=frozenset(reached),
        category_cues=matches_category((t for c in runtime for t in c.text), context.category),
    )


def locate(
    suspect: Suspect,
    changes: Sequence[FileChange],
    frames: Sequence[MappedFrame],
    blamed: Mapping[tuple[str, int], BlamedLine],
    facts: CommitFacts,
    evidence: CodeEvidence,
    reader: SourceReader,
) -> LocatedSuspect:
    """The file and line of a suspect, from the strongest evidence that points into it."""
    sha = suspect.commit.sha
    for frame in frames:  # innermost first
        hit = blamed.get((frame.path, frame.line))
        if hit is not None and hit.commit == sha:
            return LocatedSuspect(suspect, frame.path, hit.original_line, "blamed frame line")
    by_path = {c.path: c for c in changes if c.lines}
    for frame in frames:
        change = by_path.get(frame.path)
        if change is not None:
            spans = [
                s
                for s in reader.spans(sha, frame.path)
                if names_frame_function(s.name, frame.function)
            ]
            line = _first_inside(change.lines, spans) or min(
                change.lines, key=lambda n: abs(n - frame.line)
            )
            return LocatedSuspect(suspect, frame.path, line, "changed lines in a frame's file")
    pointed = (
        ("changed a named function", facts.named_functions),
        ("changed a function a named one calls", facts.reached_functions),
    )
    for located_by, functions in pointed:
        found = _first_changed_in(sha, functions, by_path, reader)
        if found is not None:
            return LocatedSuspect(suspect, found[0], found[1], located_by)
    return _largest_change(suspect, list(by_path.values()), evidence.component_paths, reader)


def _first_changed_in(
    sha: str,
    functions: frozenset[str],
    by_path: Mapping[str, FileChange],
    reader: SourceReader,
) -> tuple[str, int] | None:
    """The first line ``sha`` changed inside one of ``functions`` (``path:function``)."""
    for named in sorted(functions):
        path, function = named.split(":", 1)
        change = by_path.get(path)
        spans = [s for s in reader.spans(sha, path) if s.name == function]
        first = _first_inside(change.lines, spans) if change else None
        if first is not None:
            return path, first
    return None


def _first_inside(lines: Sequence[int], spans: Sequence[FunctionSpan]) -> int | None:
    inside = [n for n in lines if any(s.start <= n <= s.end for s in spans)]
    return min(inside) if inside else None


def _largest_change(
    suspect: Suspect,
    changes: Sequence[FileChange],
    component_paths: Sequence[str],
    reader: SourceReader,
) -> LocatedSuspect:
    """Without pointing evidence: the component's most changed runtime file, else any.

    The line is the first changed line inside a function (behaviour, not an import),
    else the first changed line.
    """
    tiers = (
        ([c for c in changes if runtime_file(c.path) and under_paths(c.path, component_paths)]),
        [c for c in changes if runtime_file(c.path)],
        list(changes),
    )
    for tier in tiers:
        if tier:
            change = max(tier, key=lambda c: c.added + c.removed)
            spans = (
                reader.spans(suspect.commit.sha, change.path) if source_file(change.path) else []
            )
            line = _first_inside(change.lines, spans) or change.lines[0]
            return LocatedSuspect(suspect, change.path, line, "largest change")
    return LocatedSuspect(suspect, None, None, "no changed lines")
