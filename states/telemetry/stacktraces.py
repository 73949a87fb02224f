"""Multi-line records: join stack-trace continuation lines and read their frames.

A stack trace in a plain log file is one event spread over many lines; read
line by line it would become dozens of bogus records. ``StackTraceJoiner``
attaches the continuation lines of Python, Java and JavaScript traces to the
line they follow, and ``parse_frames`` turns them into ``StackFrame``s, which
diagnosis maps to files and lines of the repository.

Frames keep the order the runtime printed them in: outermost first for
Python ("most recent call last"), innermost first for Java and JavaScript.
Lines without a source location (``Native Method``, ``... 12 more``) are
continuation lines but yield no frame.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from states.telemetry.records import StackFrame

MAX_CONTINUATION_LINES: Final = 1000
MAX_LINE_DIGITS: Final = 9  # longer is no line number, and int() refuses thousands of digits

_PYTHON_FRAME = re.compile(r'\s*File "(?P<file>[^"]+)", line (?P<line>\d+)(?:, in (?P<func>.+))?')
_JAVA_FRAME = re.compile(
    r"\s*at (?:[\w.$@-]+/+)?(?P<func>[\w$.<>-]+)\((?:[\w.$-]+/)?(?P<file>[^():]+):(?P<line>\d+)\)"
)
_JS_FRAME = re.compile(
    r"\s*at (?:(?P<func>.+?) \()?(?:file://)?(?P<file>[^()\s]+?):(?P<line>\d+)(?::\d+)?\)?\s*$"
)

# Lines that can only be the continuation of a trace.
_CONTINUATION = re.compile(
    rb"(?:"
    rb"Traceback \(most recent call last\):"
    rb"|[ \t]+File \""
    rb"|[ \t]+at "
    rb"|[ \t]+\.\.\. \d+ (?:more|common frames omitted)"
    rb"|Caused by: "
    rb"|[ \t]*Suppressed: "
    rb"|During handling of the above exception"
    rb"|The above exception was the direct cause"
    rb")"
)
# An exception header line ("java.lang.IllegalStateException: boom",
# "TypeError: x is undefined", "KeyError: 'id'") continues a trace only
# when it directly follows a log line or trace lines.
_EXCEPTION_HEADER = re.compile(
    rb"(?:[A-Za-z_$][\w$]*\.)*[A-Za-z_$][\w$]*(?:Error|Exception|Throwable|Interrupt|Exit)\b"
    rb"(?::.*)?\s*"
)
_PYTHON_SOURCE_LINE = re.compile(rb"[ \t]{4,}\S")


def parse_frame(line: str) -> StackFrame | None:
    """The frame one trace line names, or None if it names no source location."""
    for pattern in (_PYTHON_FRAME, _JAVA_FRAME, _JS_FRAME):
        match = pattern.match(line)
        if match is not None and len(match.group("line")) <= MAX_LINE_DIGITS:
            function = (match.group("func") or "<anonymous>").strip().removeprefix("async ")
            return StackFrame(match.group("file"), int(match.group("line")), function)
    return None


def parse_frames(lines: Iterable[str]) -> tuple[StackFrame, ...]:
    """Every frame in a trace's lines, in the order they were written."""
    frames: list[StackFrame] = []
    for line in lines:
        frame = parse_frame(line)
        if frame is not None:
            frames.append(frame)
    return tuple(frames)


def parse_stack_text(text: str) -> tuple[StackFrame, ...]:
    """Frames of a trace held in one string (a JSON ``stack`` field)."""
    return parse_frames(text.splitlines())


def is_continuation(line: bytes, in_trace: bool) -> bool:
    """Whether ``line`` belongs to the record before it rather than starting one."""
    if _CONTINUATION.match(line):
        return True
    if _EXCEPTION_HEADER.fullmatch(line.rstrip(b"\r\n")):
        return True
    # Python prints the source of each frame indented under its File line.
    return in_trace and _PYTHON_SOURCE_LINE.match(line) is not None


@dataclass(frozen=True, slots=True)
class JoinedLines:
    """One logical record: its first line and the trace lines that followed it."""

    head: bytes
    continuation: tuple[bytes, ...] = ()
    dropped: int = 0

    def frames(self) -> tuple[StackFrame, ...]:
        """The frames named by the continuation lines."""
        return parse_frames(line.decode("utf-8", "replace") for line in self.continuation)


class StackTraceJoiner:
    """Groups lines into records; feed lines in file order, flush at end of input.

    A record is complete only when the next record's first line arrives, so
    callers flush when the source goes quiet. Continuation lines beyond
    ``max_lines`` are counted in ``dropped`` instead of kept, bounding memory.
    Continuation lines with no head before them become heads themselves.
    """

    def __init__(self, max_lines: int = MAX_CONTINUATION_LINES) -> None:
        self._max_lines = max_lines
        self._head: bytes | None = None
        self._lines: list[bytes] = []
        self._dropped = 0

    def feed(self, line: bytes) -> list[JoinedLines]:
        """Add one line; returns the records this line completed (zero or one)."""
        if not line.strip():
            return []
        if self._head is not None and is_continuation(line, bool(self._lines)):
            self._append(line.rstrip(b"\r\n"))
            return []
        completed = self.flush()
        self._head = line.rstrip(b"\r\n")
        return completed

    def flush(self) -> list[JoinedLines]:
        """Hand back the record being assembled, if any."""
        if self._head is None:
            return []
        joined = JoinedLines(self._head, tuple(self._lines), self._dropped)
        self._head, self._lines, self._dropped = None, [], 0
        return [joined]

    def _append(self, line: bytes) -> None:
        if len(self._lines) < self._max_lines:
            self._lines.append(line)
        else:
            self._dropped += 1
