"""Folding JSON lines a block at a time through one typed decoder, then by columns.

``orjson.loads`` builds a dictionary of every key of every line, and the
batch path then reads a dozen of them back in Python. ``msgspec`` decodes
a chunk of lines (``decode_lines``) into structs that hold only the fields
a window needs, checking each value's type as it goes (``json_structs``):
on the benchmark's lines it costs half the CPU of ``orjson.loads`` alone,
where ``polars.read_ndjson`` with an explicit schema costs 1.8 times as
much and reads the first of duplicated keys where orjson reads the last.
The rows then go through the same column passes as a batch
(``JsonColumns.fold_columns``: windows by second, durations, categories
vetted once), so the outcome is the general path's by the same argument.

The decoder refuses whatever orjson refuses (malformed JSON, invalid
UTF-8 or surrogates, numbers out of range, nesting too deep) and more: a
value of another type than the column's, a value under a key that must be
null, a key the shape does not read. A chunk it refuses is not lost: a
key no line of the shape held is learned (``BlockShape.learn``) and the
chunk decoded again; otherwise the refused line, found from the error
(its index, or its byte offset) or by halving the chunk, goes alone to
the existing path, in its place in the order, and the lines around it are
decoded again. Blank lines are dropped (the general path skips them). A
block with more than ``MAX_REFUSED`` refused lines ends block decoding for
the rest of the poll: a source whose lines the shape does not fit is
folded the existing way, correctly, at its speed.

Shapes are kept from poll to poll (``KeptShapes``, one per source, held by
the daemon): learning a poll's category values rebuilt the decoder 10-15
times a poll, every poll again. What a shape knows (keys, literals, vetted
categories) only decides which lines the decoder takes, never what a line
folds to, so a kept shape folds as a new one would; what it grouped is
dropped when a poll begins, in case the last one did not finish.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Final

import msgspec
import orjson

from states.telemetry.duration_columns import GENERAL
from states.telemetry.json_columns import JsonColumns
from states.telemetry.json_shapes import Category
from states.telemetry.json_structs import BlockShape, Row, rows_of, shape_of
from states.telemetry.line_blocks import joined, longest

CHUNK_LINES: Final = 512  # decoded at once: a refused line costs at most its chunk again
MAX_REFUSED: Final = 16  # refused lines in one block before the poll stops decoding blocks
SHAPE_PROBES: Final = 4  # lines tried for a chunk's shape before the previous one is kept
MAX_SHAPES: Final = 64  # line shapes a source keeps between polls; one more: start afresh
MAX_PARTS: Final = 4096  # vetted categories a kept shape carries into a poll; more: vet afresh
_SAFE_FLOAT_INT: Final = float(2**53)  # integers up to here convert to floats exactly
_MARGIN: Final = 1 - 2**-30  # below the duration limit by far more than any rounding

Lines = Sequence[bytes]
Fallback = Callable[[Lines], None]  # the existing path, for lines in order
GeneralPath = Callable[[bytes], None]

_UNKNOWN_KEY = re.compile(r"Object contains unknown field `(.*)` - at `\$\[(\d+)\]`$", re.S)
_AT_LINE = re.compile(r" - at `\$\[(\d+)\]")
_AT_BYTE = re.compile(r"\(byte (\d+)\)$")


class KeptShapes:
    """One source's block shapes by their first line's keys, kept from poll to poll."""

    def __init__(self) -> None:
        self.shapes: dict[tuple[str, ...], BlockShape | None] = {}
        self.last: BlockShape | None = None  # for a chunk whose first lines are no objects

    def begin_poll(self) -> list[BlockShape]:
        """The shapes a new poll starts with, nothing grouped in them. A shape that may learn
        no more keys, or reads a target past its literals as any text, is dropped (a new
        poll builds it afresh from its lines), and so is a shape's vetting past
        ``MAX_PARTS`` categories."""
        for signature, shape in list(self.shapes.items()):
            if shape is not None and (not shape.learnable or None in shape.literals.values()):
                del self.shapes[signature]
        kept = [shape for shape in self.shapes.values() if shape is not None]
        if not any(shape is self.last for shape in kept):
            self.last = None
        for shape in kept:
            shape.columns.by_window.clear()
            if len(shape.columns.parts) > MAX_PARTS:
                shape.columns.parts.clear()
        return kept

    def forget(self) -> None:
        """Start afresh at the next poll (this one's shapes still fold what they grouped)."""
        self.shapes.clear()
        self.last = None


class JsonBlocks:
    """One poll's blocks of one JSON source, decoded whole and folded by columns."""

    def __init__(
        self,
        names: Mapping[str, tuple[str, ...]],
        columns: JsonColumns,
        max_bytes: int,
        max_duration: float,
        kept: KeptShapes | None = None,
    ) -> None:
        self._names, self._columns, self._max_bytes = names, columns, max_bytes
        self._max_duration = min(max_duration * _MARGIN, _SAFE_FLOAT_INT)
        self._kept = KeptShapes() if kept is None else kept
        for shape in self._kept.begin_poll():
            columns.track(shape.columns)
        self._refused = 0
        self.enabled = True

    def feed(
        self, lines: Lines, rejected: Counter[str], general: GeneralPath, fallback: Fallback
    ) -> None:
        """Fold one block; what the decoder cannot take goes to ``fallback``, in order."""
        if not self.enabled:
            fallback(lines)
            return
        self._refused = 0
        # One look for over-long lines in the whole block: a chunk of a block without one
        # has none either, so its own look (``longest``, a numpy pass a chunk) is skipped.
        long_lines = bool(lines) and longest(lines) > self._max_bytes
        for start in range(0, len(lines), CHUNK_LINES):
            chunk = lines[start : start + CHUNK_LINES]
            self._chunk(chunk, rejected, general, fallback, long_lines=long_lines)
        if self._refused > MAX_REFUSED:
            self.enabled = False
            self._kept.forget()

    def _chunk(
        self,
        lines: Lines,
        rejected: Counter[str],
        general: GeneralPath,
        fallback: Fallback,
        *,
        long_lines: bool,
    ) -> None:
        shape = self._shape(lines)
        if shape is None:
            fallback(lines)
            return
        start = 0
        if long_lines and longest(lines) > self._max_bytes:  # the parser rejects those: too long
            for i, raw in enumerate(lines):
                if len(raw) > self._max_bytes:
                    self._run(shape, lines[start:i], rejected, general, fallback)
                    fallback([raw])
                    start = i + 1
        self._run(shape, lines[start:], rejected, general, fallback)

    def _shape(self, lines: Lines) -> BlockShape | None:
        """The shape of the chunk's first line that is a JSON object, else the last one used."""
        for raw in lines[:SHAPE_PROBES]:
            try:
                first = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if type(first) is dict:
                return self._shape_of(first)
        return self._kept.last

    def _shape_of(self, first: dict[str, object]) -> BlockShape | None:
        kept, signature = self._kept, tuple(first)
        shape = kept.shapes.get(signature, ...)
        if shape is ...:
            if len(kept.shapes) >= MAX_SHAPES:
                kept.forget()
            kept.shapes[signature] = shape = shape_of(first, self._names)
            if shape is not None:
                self._columns.track(shape.columns)
        kept.last = shape or kept.last
        return shape

    def _run(
        self,
        shape: BlockShape,
        lines: Lines,
        rejected: Counter[str],
        general: GeneralPath,
        fallback: Fallback,
    ) -> None:
        """Decode and fold consecutive lines, handing refused ones to ``fallback`` in order."""
        while lines:
            data = joined(lines)
            try:
                records = shape.decoder.decode_lines(data)
            except (msgspec.ValidationError, msgspec.DecodeError) as error:
                lines = self._refusal(shape, lines, error, (rejected, general, fallback))
                continue
            if len(records) != len(lines):  # blank lines, which the general path skips
                kept = [raw for raw in lines if raw.strip()]
                if len(kept) == len(lines):
                    fallback(lines)  # not expected: the decoder made more or fewer records
                    return
                lines = kept
                continue
            self._fold(shape, rows_of(records), lines, rejected, general, fallback)
            return

    def _refusal(
        self,
        shape: BlockShape,
        lines: Lines,
        error: Exception,
        sinks: tuple[Counter[str], GeneralPath, Fallback],
    ) -> Lines:
        """Deal with a refused decode; the lines still to decode."""
        kept = [raw for raw in lines if raw.strip()]
        if len(kept) != len(lines):  # the error's index counts records, not lines
            return kept
        message = str(error)
        unknown = _UNKNOWN_KEY.search(message)
        if unknown is not None and shape.learn(unknown.group(1)):
            return lines
        at = _refused_line(lines, message)
        if at is None:  # halve: the first half now, the second is still to decode
            if len(lines) == 1:
                at = 0
            else:
                self._run(shape, lines[: len(lines) // 2], *sinks)
                return lines[len(lines) // 2 :]
        if _learned_values(shape, lines[at]):
            return lines
        self._run(shape, lines[:at], *sinks)
        sinks[2]([lines[at]])
        self._refused += 1
        return lines[at + 1 :]

    def _fold(
        self,
        shape: BlockShape,
        rows: list[Row],
        lines: Lines,
        rejected: Counter[str],
        general: GeneralPath,
        fallback: Fallback,
    ) -> None:
        flags: dict[int, str] = {}
        # The rows' columns, one tuple per field: a row's getter applied to them reads the
        # whole column (one transposition in C instead of a tuple built per row and getter).
        by_field = tuple(zip(*rows, strict=True))
        if shape.stack_of is not None:  # a line with a stack: the general path parses its frames
            n = len(rows)
            if any(column.count(None) != n for column in shape.stack_of(by_field)):
                nothing = (None,) * max(2, len(shape.stacks))
                stacks = map(shape.stack_of, rows)
                flags.update((i, GENERAL) for i, s in enumerate(stacks) if s != nothing)
        columns = shape.columns
        durations = None if columns.duration is None else list(columns.duration(by_field))
        cats: list[Category] = list(zip(*columns.category(by_field), strict=True))
        stamps = list(columns.timestamp(by_field))
        # Integers arrive as floats: only durations far enough inside the range that the
        # general path's checks of either type agree (and exactly convertible) fold here.
        folded = self._columns.fold_columns(
            columns,
            cats,
            stamps,
            durations,
            flags,
            lines,
            rejected,
            general,
            float_limit=self._max_duration,
            typed=True,
        )
        if not folded:
            fallback(lines)


def _learned_values(shape: BlockShape, raw: bytes) -> bool:
    """Whether the refused line holds category texts the shape reads as literals from now on."""
    try:
        values = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False
    return type(values) is dict and shape.learn_values(values)


def _refused_line(lines: Lines, message: str) -> int | None:
    """The line an error names, by record index or byte offset; None if it names none."""
    at_line = _AT_LINE.search(message)
    if at_line is not None:
        index = int(at_line.group(1))
        return index if index < len(lines) else None
    at_byte = _AT_BYTE.search(message)
    if at_byte is None:
        return None
    starts = list(itertools.accumulate((len(raw) + 1 for raw in lines), initial=0))
    index = bisect.bisect_right(starts, int(at_byte.group(1))) - 1
    return index if 0 <= index < len(lines) else None
