"""Reading only what is new in a log file, across restarts, rotation and truncation.

A cursor remembers the file's identity (device, inode and its first bytes) and
the offset after the last complete line. ``has_new_bytes`` answers from
``stat`` alone, so an idle poll reads no file. When the path now names another
file (rotation), the rest of the old file is read first if it is still next to
it under another name; when the file shrank (copy-truncate), reading restarts
at zero. A line still being written (no newline yet) is left for the next poll.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

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


def _read_lines(path: Path, offset: int, max_bytes: int, max_line: int, result: ReadResult) -> int:
    """Append complete lines from ``offset``; returns the offset after the last one consumed."""
    with path.open("rb") as handle:
        handle.seek(offset)
        data = handle.read(max_bytes)
        end = data.rfind(b"\n")
        if end < 0:
            if len(data) < max_line:
                return offset  # a line still being written
            return _skip_long_line(handle, offset, len(data), result)
        chunk = data[: end + 1]
        result.bytes_read += len(chunk)
        for line in chunk.split(b"\n")[:-1]:
            if len(line) > max_line:
                result.too_long += 1
            else:
                result.lines.append(line)
        return offset + len(chunk)


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


def read_new_lines(
    path: Path, cursor: FileCursor | None, *, max_bytes: int, max_line: int
) -> ReadResult:
    """Read the complete lines added to ``path`` since ``cursor``."""
    st = path.stat()
    cursor = cursor or FileCursor(path=str(path))
    result = ReadResult(cursor=cursor)
    same_file = (st.st_dev, st.st_ino) == (cursor.device, cursor.inode)
    if same_file and cursor.offset and not _head(path).startswith(cursor.head):
        same_file = False  # the inode was reused by a new file (a short head may have grown)
    offset = cursor.offset
    if not same_file:
        if cursor.inode:
            result.rotated = True
            old = _find_rotated(path, cursor)
            if old is not None:
                _read_lines(old, cursor.offset, max_bytes, max_line, result)
        offset = 0
    elif st.st_size < cursor.offset:
        result.truncated = True
        offset = 0
    new_offset = _read_lines(path, offset, max_bytes, max_line, result)
    head = _head(path) if st.st_size else ""
    result.cursor = replace(cursor, device=st.st_dev, inode=st.st_ino, offset=new_offset, head=head)
    return result
