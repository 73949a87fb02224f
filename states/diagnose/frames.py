"""Stack frames as repository locations: mapped to files, ordered by depth, blamed.

A window keeps the frames of its error records, merged: up to twenty distinct
``(file, line, function)`` entries from however many traces. Diagnosis maps
each to a repository path (``states.diagnose.commits.map_frame_file``), works
out how deep each is from the call structure, and asks ``git blame`` at the
running revision which commit last changed each frame's line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from states.diagnose.commits import map_frame_file
from states.git import BlamedLine, blame_lines

OUTERMOST_FIRST = (".py", ".pyi")  # Python prints the innermost frame last; Java and JS first


@dataclass(frozen=True)
class Frame:
    """One stack frame as a record carried it: the runtime's file name, line and function."""

    file: str
    line: int
    function: str


@dataclass(frozen=True)
class MappedFrame:
    """A frame inside the repository; ``depth`` 0 is the innermost such frame."""

    path: str
    line: int
    function: str
    depth: int


def mapped_frames(
    frames: Iterable[Frame],
    prefixes: Sequence[str],
    files: frozenset[str],
    line_text: Callable[[str, int], str | None] | None = None,
) -> list[MappedFrame]:
    """Frames inside the repository, innermost first, each once.

    A window merges the frames of many traces, so print order alone cannot say
    which frame raised. When ``line_text`` can read a frame's line, the call
    structure decides: a frame whose line calls another frame's function is
    outside it, and the innermost frames are those whose line calls none.
    Print order (Python outermost first, Java and JavaScript innermost first)
    orders frames of equal depth and stands in when lines cannot be read.
    """
    inner_first: list[tuple[str, int, str]] = []
    outer_first: list[tuple[str, int, str]] = []
    for frame in frames:
        path = map_frame_file(frame.file, prefixes, files, frame.function)
        if path is not None:
            group = outer_first if path.endswith(OUTERMOST_FIRST) else inner_first
            group.append((path, frame.line, frame.function))
    ordered = list(dict.fromkeys([*reversed(outer_first), *inner_first]))
    if line_text is None:
        return [MappedFrame(p, n, fn, depth) for depth, (p, n, fn) in enumerate(ordered)]
    depths = _call_depths(ordered, line_text)
    ordered.sort(key=lambda f: depths[f])
    return [MappedFrame(p, n, fn, depths[(p, n, fn)]) for p, n, fn in ordered]


def _call_depths(
    frames: Sequence[tuple[str, int, str]], line_text: Callable[[str, int], str | None]
) -> dict[tuple[str, int, str], int]:
    """How many calls separate each frame from an innermost one (frames' lines calling others)."""
    texts = {f: line_text(f[0], f[1]) or "" for f in frames}
    callees = {f: [g for g in frames if g != f and _calls(texts[f], g[2])] for f in frames}
    depth = {f: 0 for f in frames if not callees[f]}
    for _ in frames:  # relax; chains are short and cycles stop growing
        for f in frames:
            known = [depth[g] for g in callees[f] if g in depth]
            if f not in depth and known:
                depth[f] = 1 + min(known)
    return {f: depth.get(f, len(frames)) for f in frames}


def _calls(line: str, function: str) -> bool:
    name = function.rsplit(".", 1)[-1]
    # A call, or a reference handed to a wrapper: ``find(...)``, ``timed(find, request)``.
    return bool(name) and re.search(rf"(?<![\w$]){re.escape(name)}\s*[(,)]", line) is not None


def blame_frames(
    repo: Path, revision: str, frames: Sequence[MappedFrame]
) -> dict[tuple[str, int], BlamedLine]:
    """The commit that last changed each frame's line at ``revision``, by (path, line)."""
    found: dict[tuple[str, int], BlamedLine] = {}
    for path in dict.fromkeys(f.path for f in frames):
        lines = [f.line for f in frames if f.path == path]
        for line, blamed in blame_lines(repo, revision, path, lines).items():
            found[(path, line)] = blamed
    return found
