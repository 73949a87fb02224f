"""Reading only what is new in a log file, across restarts, rotation and truncation.

A cursor remembers the file's identity (device, inode and its first bytes) and
the offset after the last complete line. ``has_new_bytes`` answers from
``stat`` alone, so an idle poll reads no file. When the path now names another
file (rotation), the rest of the old file is read first if it is still next to
it under another name; when the file shrank (copy-truncate), reading restarts
at zero. A line still being written (no newline yet) is left for the next poll.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

import numpy as np

from states.telemetry.line_blocks import LineBlock, longest

HEAD_BYTES = 64
BLOCK = 1 << 20


@dataclass(frozen=True)
class FileCursor:
    """Where reading of one path stopped, and which file that was."""

    path: str
    device: int = 0
    inode: int = 0
    offset: int = 0
    head: str = ""


@dataclass
class ReadResult:
    """Complete lines read in this poll and the cursor after them."""

    cursor: FileCursor
    lines: list[bytes] = field(default_factory=list)
    bytes_read: int = 0
    too_long: int = 0
    rotated: bool = False
    truncated: bool = False


def _head(path: Path) -> str:
    with path.open("rb") as handle:
        return handle.read(HEAD_BYTES).hex()


def has_new_bytes(path: Path, cursor: FileCursor | None) -> bool:
    """Whether ``path`` may hold unread data; uses ``stat`` only."""
    try:
        st = path.stat()
    except OSError:
        return False
    if cursor is None:
        return st.st_size > 0
    return (st.st_dev, st.st_ino) != (cursor.device, cursor.inode) or st.st_size != cursor.offset


def _find_rotated(path: Path, cursor: FileCursor) -> Path | None:
    """The file the cursor was reading, if rotation left it beside ``path`` under a new name."""
    try:
        siblings = list(path.parent.iterdir())
    except OSError:
        return None
    for candidate in siblings:
        try:
            st = candidate.stat()
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (cursor.device, cursor.inode) and candidate != path:
            return candidate
    return None


def _line_blocks(
    path: Path, offset: int, max_bytes: int, max_line: int, result: ReadResult, whole: bool
) -> Generator[Sequence[bytes], None, int]:
    """Complete lines from ``offset``, a block at a time; returns the offset after the last one.

    At most ``max_bytes`` are read (but see ``_skip_long_line``). Reading a
    block at a time keeps memory small and warm: a block's lines are folded
    and freed before the next block is read into the memory they used. The
    incomplete line a block ends with is read again at the start of the next
    block (a seek back over it) rather than joined to it, which would copy the
    whole block once more. ``whole``: each block's lines as a ``LineBlock``,
    else as a list.
    """
    with path.open("rb") as handle:
        handle.seek(offset)
        consumed, left = offset, max_bytes
        pending: list[bytes] = []  # blocks of a line not yet complete
        flags = np.empty(min(BLOCK, max_bytes), dtype=np.bool_) if whole else None  # see ``of``
        while left > 0 and (block := handle.read(min(BLOCK, left))):
            left -= len(block)
            if b"\n" not in block:
                pending.append(block)
                continue
            data = b"".join((*pending, block)) if pending else block
            if whole:
                last = data.rfind(b"\n")
                lines: Sequence[bytes] = LineBlock.of(data, last, flags)
                rest = data[last + 1 :]
            else:
                split = data.split(b"\n")
                rest = split.pop()  # what follows the last newline: empty, or a line being written
                lines = split
            pending = []
            if rest:  # read again with the next block, and counted once
                handle.seek(-len(rest), 1)
                left += len(rest)
            consumed += len(data) - len(rest)
            result.bytes_read += len(data) - len(rest)
            yield _within_limit(lines, max_line, result)
        seen = sum(map(len, pending))
        if consumed == offset and seen >= max_line:
            return _skip_long_line(handle, offset, seen, result)
        return consumed  # a line still being written stays for the next poll


def _within_limit(lines: Sequence[bytes], max_line: int, result: ReadResult) -> Sequence[bytes]:
    """The lines no longer than ``max_line``; the others are counted as too long."""
    if longest(lines) <= max_line:
        return lines
    kept = [line for line in lines if len(line) <= max_line]
    result.too_long += len(lines) - len(kept)
    return kept


def _skip_long_line(handle: BinaryIO, offset: int, seen: int, result: ReadResult) -> int:
    """Skip an over-long line once its newline exists; until then, leave it unconsumed."""
    position = offset + seen
    while block := handle.read(BLOCK):
        newline = block.find(b"\n")
        if newline >= 0:
            result.too_long += 1
            result.bytes_read += position + newline + 1 - offset
            return position + newline + 1
        position += len(block)
    return offset


class NewLines:
    """The complete lines added to a file since its cursor, a block (about 1 MiB) at a time.

    Iterating yields lists of lines (``whole``: ``line_blocks.LineBlock``
    objects, the same lines as they lie in the block read, unless one is too
    long); ``result`` (the cursor after the last complete line, the bytes
    read, the lines too long) is final once the iteration has ended.
    ``lines`` of the result stays empty.
    """

    def __init__(
        self,
        path: Path,
        cursor: FileCursor | None,
        *,
        max_bytes: int,
        max_line: int,
        whole: bool = False,
    ) -> None:
        self.path = path
        self.result = ReadResult(cursor=cursor or FileCursor(path=str(path)))
        self._max_bytes = max_bytes
        self._max_line = max_line
        self._whole = whole

    def __iter__(self) -> Iterator[Sequence[bytes]]:
        path, result, cursor = self.path, self.result, self.result.cursor
        limits = (self._max_bytes, self._max_line, result, self._whole)
        st = path.stat()
        same_file = (st.st_dev, st.st_ino) == (cursor.device, cursor.inode)
        if same_file and cursor.offset and not _head(path).startswith(cursor.head):
            same_file = False  # the inode was reused by a new file (a short head may have grown)
        offset = cursor.offset
        if not same_file:
            if cursor.inode:
                result.rotated = True
                old = _find_rotated(path, cursor)
                if old is not None:
                    yield from _line_blocks(old, cursor.offset, *limits)
            offset = 0
        elif st.st_size < cursor.offset:
            result.truncated = True
            offset = 0
        new_offset = yield from _line_blocks(path, offset, *limits)
        head = _head(path) if st.st_size else ""
        result.cursor = replace(
            cursor, device=st.st_dev, inode=st.st_ino, offset=new_offset, head=head
        )


def read_new_lines(
    path: Path, cursor: FileCursor | None, *, max_bytes: int, max_line: int
) -> ReadResult:
    """Read the complete lines added to ``path`` since ``cursor``, all at once."""
    reading = NewLines(path, cursor, max_bytes=max_bytes, max_line=max_line)
    lines = [line for block in reading for line in block]
    reading.result.lines = lines
    return reading.result
