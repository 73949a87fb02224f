"""A block of complete lines kept as the bytes they were read in, split only if asked to.

Reading a file a block (about 1 MiB) at a time, splitting the block into
lines, and joining 512 of them again for ``msgspec``'s ``decode_lines``
costs three passes over the lines (split, longest line, join) before the
first value is decoded. The typed block decoder (``json_blocks``) needs
none of them: it decodes the lines as they lie in the block. So for it the
reader (``tailing.NewLines`` with ``whole=True``) hands over a ``LineBlock``:
the block's bytes and where each line starts and ends, found by one numpy
comparison over the bytes and a search of the 8-byte words holding a
newline. It is a ``Sequence[bytes]`` of exactly the lines ``bytes.split``
gives, so every other path (a refused line, a batch, the
general parser) reads it as it read the list; ``joined`` is the lines with
their newlines, as one view of the block, and ``longest`` the longest line's
length, without making a line.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, overload

import numpy as np

_NEWLINE = 10
_WORD_SHIFT = 3
_WORD = 1 << _WORD_SHIFT  # flags looked at as one 64-bit word
Offsets = np.ndarray[Any, np.dtype[np.intp]]
Flags = np.ndarray[Any, np.dtype[np.bool_]]


class LineBlock(Sequence[bytes]):
    """Lines that lie one after the other in one bytes object, each ended by a newline."""

    __slots__ = ("_data", "_ends", "_starts")

    def __init__(self, data: bytes, starts: Offsets, ends: Offsets) -> None:
        self._data, self._starts, self._ends = data, starts, ends

    @classmethod
    def of(cls, data: bytes, end: int, scratch: Flags | None = None) -> LineBlock:
        """The lines of ``data[:end]``, where ``data[end]`` is a newline: those of
        ``data[:end].split(b"\\n")``.

        ``scratch``: at least ``end + 1`` flags to compare the bytes into (else
        new ones are made). A reader passes the same ones for every block: a
        new megabyte of flags, freed beside the block's own megabyte, has the
        allocator give both back to the system and fault them in again for
        the next block (48,000 page faults and 0.1-0.2 system CPU-s per
        million lines of 200 bytes, against 3,300 and 0.1 with one buffer).
        """
        found = np.frombuffer(data, dtype=np.uint8, count=end + 1)
        if scratch is not None and len(scratch) > end:
            ends = _newlines(np.equal(found, _NEWLINE, out=scratch[: end + 1]))
        else:
            ends = _newlines(found == _NEWLINE)
        starts = np.empty_like(ends)
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
        return cls(data, starts, ends)

    def __len__(self) -> int:
        return len(self._starts)

    @overload
    def __getitem__(self, at: int) -> bytes: ...

    @overload
    def __getitem__(self, at: slice) -> Sequence[bytes]: ...

    def __getitem__(self, at: int | slice) -> bytes | Sequence[bytes]:
        if isinstance(at, slice):
            start, stop, step = at.indices(len(self))
            if step != 1:
                return [self[i] for i in range(start, stop, step)]
            return LineBlock(self._data, self._starts[start:stop], self._ends[start:stop])
        return self._data[self._starts[at] : self._ends[at]]

    def __iter__(self) -> Iterator[bytes]:
        if not len(self):
            return iter(())
        return iter(self._data[self._starts[0] : self._ends[-1]].split(b"\n"))

    def joined(self) -> memoryview:
        """The lines joined by newlines (``b"\\n".join`` of them), as a view of the block."""
        if not len(self):
            return memoryview(b"")
        return memoryview(self._data)[self._starts[0] : self._ends[-1]]

    def longest(self) -> int:
        """The length of the longest line (0 for no line)."""
        return int((self._ends - self._starts).max()) if len(self) else 0


def _newlines(found: Flags) -> Offsets:
    """``np.flatnonzero(found)``, sought among the 8-byte words that hold a newline only.

    ``flatnonzero`` over every byte of a block costs about 35 ns a line of
    200 bytes; the words that hold one are found in a pass over an eighth as
    many items, and the newline in each of them among its 8 flags: the same
    positions, in the same order, in 60% of the time (measured over blocks of
    the benchmark's log).
    """
    whole = len(found) - len(found) % _WORD
    flags = found[:whole]
    words = np.flatnonzero(flags.view(np.uint64) != 0)
    hits = np.flatnonzero(flags.reshape(-1, _WORD).take(words, axis=0))
    ends: Offsets = (words[hits >> _WORD_SHIFT] << _WORD_SHIFT) + (hits & (_WORD - 1))
    if whole == len(found):
        return ends
    return np.concatenate((ends, np.flatnonzero(found[whole:]) + whole))


def joined(lines: Sequence[bytes]) -> bytes | memoryview:
    """``lines`` joined by newlines: a view of a ``LineBlock``'s bytes, else joined anew."""
    return lines.joined() if isinstance(lines, LineBlock) else b"\n".join(lines)


def longest(lines: Sequence[bytes]) -> int:
    """The length of the longest of ``lines`` (at least one)."""
    return lines.longest() if isinstance(lines, LineBlock) else max(map(len, lines))
