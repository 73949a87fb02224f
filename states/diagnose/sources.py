"""Reading the service's source at a revision: files, their functions, what the component calls.

Diagnosis reads the same few files many times (a frame's file for its lines,
a changed file for its functions, the component's files for the names they
call), so ``SourceReader`` keeps each file and its function spans for the
length of one diagnosis.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from states.diagnose.commits import runtime_file, under_paths
from states.diagnose.functions import (
    FunctionSpan,
    called_names,
    function_spans,
    names_operation,
    source_file,
)
from states.git import file_text

MAX_COMPONENT_FILES = 200  # files of the component read for the names its code calls
MAX_CALL_DEPTH = 3  # calls followed from a slow operation's function


class SourceReader:
    """Files and their function spans at a revision, each read once per diagnosis."""

    def __init__(self, repo: Path) -> None:
        self._repo = repo
        self._texts: dict[tuple[str, str], str | None] = {}
        self._lines: dict[tuple[str, str], list[str]] = {}
        self._spans: dict[tuple[str, str], list[FunctionSpan]] = {}

    def text(self, sha: str, path: str) -> str | None:
        key = (sha, path)
        if key not in self._texts:
            self._texts[key] = file_text(self._repo, sha, path)
        return self._texts[key]

    def line(self, sha: str, path: str, number: int) -> str | None:
        key = (sha, path)
        if key not in self._lines:
            self._lines[key] = (self.text(sha, path) or "").splitlines()
        rows = self._lines[key]
        return rows[number - 1] if 0 < number <= len(rows) else None

    def spans(self, sha: str, path: str) -> list[FunctionSpan]:
        key = (sha, path)
        if key not in self._spans:
            text = self.text(sha, path)
            self._spans[key] = function_spans(path, text) if text is not None else []
        return self._spans[key]


@dataclass(frozen=True)
class ComponentCode:
    """What the component's code calls: anything, and from the functions operations name.

    ``words`` are the lower-case identifiers it mentions: a function of another
    file counts as called only if the code also names that file's module
    (``db.query(`` for ``common/db.py``), so ``seen.add(`` is no call of ``Cart.add``.
    """

    called: frozenset[str] = frozenset()
    called_by_operations: frozenset[str] = frozenset()
    words: frozenset[str] = frozenset()

    def calls(self, path: str, function: str, names: frozenset[str]) -> bool:
        """Whether ``function`` of the file at ``path`` is among ``names`` and its module named."""
        module = path.rsplit("/", 1)[-1].split(".", 1)[0].lower()
        return function.rsplit(".", 1)[-1] in names and module in self.words


def component_code(
    reader: SourceReader,
    revision: str,
    files: frozenset[str],
    component_paths: Sequence[str],
    operations: Sequence[str],
) -> ComponentCode:
    """Names called by the component's runtime code at ``revision`` (a bounded number of files).

    ``called_by_operations`` follows calls from the functions the operations
    name through the component's own functions, ``MAX_CALL_DEPTH`` calls deep,
    so shared code a slow operation reaches through its store is included.
    """
    own = sorted(
        f for f in files if under_paths(f, component_paths) and runtime_file(f) and source_file(f)
    )
    called: set[str] = set()
    words: set[str] = set()
    calls_of: dict[str, set[str]] = {}  # a component function's short name -> names it calls
    entries: set[str] = set()
    for path in own[:MAX_COMPONENT_FILES]:
        text = reader.text(revision, path) or ""
        called |= called_names(text)
        words |= set(re.findall(r"[a-z_$][\w$]*", text.lower()))
        rows = text.splitlines()
        for span in reader.spans(revision, path):
            short = span.name.rsplit(".", 1)[-1]
            body = rows[span.start : span.end]  # 1-based span: the lines after the signature
            calls_of.setdefault(short, set()).update(called_names("\n".join(body)))
            if any(names_operation(span.name, op) for op in operations):
                entries.add(short)
    reached: set[str] = set()
    frontier = entries
    for _ in range(MAX_CALL_DEPTH):
        frontier = {n for f in frontier for n in calls_of.get(f, ())} - reached - entries
        reached |= frontier
    return ComponentCode(frozenset(called), frozenset(reached), frozenset(words))
