"""Folding plain JSON lines a batch at a time, column by column, in C-level passes.

A line-by-line loop spends longer in its own bytecode (a dozen lookups,
type checks and branches per line) than ``orjson`` spends decoding the
line. Most services write every line with the same keys, so a batch of
``BATCH_LINES`` lines is folded with a few passes over columns, each a
``map`` or a builtin that runs in C:

1. decode every line; a line that does not decode (or is over the parser's
   limit, or is not an object), or an object without a key its batch's
   first object has for a target, sends the whole batch back to the
   line-by-line loop, which counts and skips that line and folds the others
   exactly as before;
2. read the category tuples, timestamps and durations with
   ``operator.itemgetter`` from the keys of the batch's ``Shape``
   (``json_shapes``), and check that no object holds an ``absent`` key;
3. timestamps: windows from ``SecondWindows.windows_of``, one for the whole
   batch when it lies within one minute;
4. durations: types and range checked over the column, converted at once
   (``duration_columns``);
5. group: each duration is appended to the doubles of its category in its
   window (``category_groups``). Each new category is vetted once per
   poll; a category the fast path cannot vouch for (an error, say, whose
   message is to be mined) has its lines taken out and sent to the general
   path.

Lines the columns cannot vouch for (a refused category, an absent key, a
duration of another type, a second at the edge of the time range) go to the
general path one by one, in their order; only a timestamp out of range is
counted here, and only for a line that passed every other check, as in the
line loop.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, NamedTuple, cast

import numpy as np
import orjson

from states.telemetry.category_groups import CategoryGroups
from states.telemetry.duration_columns import GENERAL, checked_durations
from states.telemetry.fields import _LONGEST_DURATION_MS as LONGEST_DURATION_MS
from states.telemetry.fields import FieldError
from states.telemetry.folding import TallyKey, WindowFolder
from states.telemetry.json_shapes import Category, Shape, shape_of
from states.telemetry.mapping import LEVEL_SPELLINGS, RecordBuilder
from states.telemetry.second_windows import SecondWindows

BATCH_LINES: Final = 128  # small enough that a batch's objects are still in the CPU cache

GeneralPath = Callable[[bytes], None]


class _Columns(NamedTuple):
    shape: Shape
    docs: list[dict[str, Any]]
    cats: list[Category]
    stamps: list[object]
    durations: list[object] | None


class JsonColumns:
    """One poll's batches of one source, folded column by column."""

    def __init__(
        self,
        names: Mapping[str, tuple[str, ...]],
        builder: RecordBuilder,
        folder: WindowFolder,
        seconds: SecondWindows,
        *,
        mine_severe: bool,
    ) -> None:
        self._names, self._builder = names, builder
        self._folder, self._seconds, self._bounds = folder, seconds, seconds.bounds
        rules = builder.rules
        self._iso_first = rules.timestamp_formats[:1] == ("iso8601",)
        self._unit_ms = rules.duration_unit_ms
        self._max_duration = LONGEST_DURATION_MS / rules.duration_unit_ms
        self._groups = CategoryGroups(
            LEVEL_SPELLINGS.get(rules.default_level), mine_severe=mine_severe
        )
        self._shapes: dict[tuple[str, ...], Shape | None] = {}
        self._tracked: list[Shape] = []  # shapes of typed blocks (``json_blocks``)

    def fold(self, batch: Sequence[bytes], rejected: Counter[str], general: GeneralPath) -> bool:
        """Fold one batch (no line over the parser's limit); False, having folded nothing,
        when it must go line by line."""
        columns = self._columns(batch)
        if columns is None:
            return False
        shape, docs = columns.shape, columns.docs
        flags: dict[int, str] = {}  # line -> GENERAL, or the reason it is rejected
        if not _same_keys(shape, docs):
            absent = shape.absent
            flags.update(
                (i, GENERAL) for i, d in enumerate(docs) if not d.keys().isdisjoint(absent)
            )
        return self.fold_columns(
            shape, columns.cats, columns.stamps, columns.durations, flags, batch, rejected, general
        )

    def fold_columns(
        self,
        shape: Shape,
        cats: list[Category],
        stamps: list[object],
        durations: list[object] | None,
        flags: dict[int, str],
        batch: Sequence[bytes],
        rejected: Counter[str],
        general: GeneralPath,
        *,
        float_limit: float | None = None,
        typed: bool = False,
    ) -> bool:
        """Fold the columns read from ``batch`` (``flags``: lines already left to the general
        path); False, having folded nothing, when the batch must go line by line.

        ``float_limit`` lowers the largest float duration folded here (larger
        ones go to the general path): for a reader that cannot tell which
        floats were written as integers, which the general path bounds after
        conversion rather than before. ``typed``: every duration is a float or
        None (as the typed decoder reads them), so their types need no check.
        """
        windows = self._windows(stamps, flags)
        limit = float_limit or self._max_duration
        values = checked_durations(durations, shape, flags, self._unit_ms, limit, typed=typed)
        if not self._groups.group(shape, cats, windows, values, flags):
            return False
        for i in sorted(flags):
            if flags[i] == GENERAL:
                general(batch[i])
            else:
                rejected[flags[i]] += 1
        return True

    def track(self, shape: Shape) -> None:
        """Fold the lines another reader grouped under ``shape`` at ``finish`` too."""
        self._tracked.append(shape)

    def finish(self) -> None:
        """Hand the poll's grouped lines to the folder as tallies."""
        for shape in (*self._shapes.values(), *self._tracked):
            if shape is None:
                continue
            for window, by_category in shape.by_window.items():
                for cat, values in by_category.items():
                    component, instance, version, operation, error = cast(
                        tuple[Any, ...], shape.parts[cat]
                    )
                    count = len(values)
                    key: TallyKey = (component, instance, window, version, operation)
                    self._folder.add_tally(key, count, count if error else 0, _ascending(values))
            shape.by_window.clear()

    def _columns(self, batch: Sequence[bytes]) -> _Columns | None:
        """Decode a batch and read its columns, or None when it must go line by line."""
        try:
            docs = list(map(orjson.loads, batch))
        except orjson.JSONDecodeError:
            return None
        first = docs[0]
        if type(first) is not dict:
            return None
        shape = self._shape(first)
        if shape is None:
            return None
        try:  # KeyError: an object without a key; TypeError: not an object
            cats = list(map(shape.category, docs))
            stamps = list(map(shape.timestamp, docs))
            durations = None if shape.duration is None else list(map(shape.duration, docs))
        except (KeyError, TypeError):
            return None
        return _Columns(shape, docs, cats, stamps, durations)

    def _shape(self, first: dict[str, Any]) -> Shape | None:
        signature = tuple(first)
        if signature not in self._shapes:
            self._shapes[signature] = shape_of(first, self._names)
        return self._shapes[signature]

    # --- windows ------------------------------------------------------------------------------

    def _windows(self, stamps: list[object], flags: dict[int, str]) -> int | list[int]:
        """The batch's one window, or each line's; a line flagged here gets window 0."""
        seconds = self._seconds
        found: int | list[int | None] | None = None
        if self._iso_first and type(stamps[0]) is str:
            found = seconds.windows_of(cast(list[str], stamps))
        if type(found) is int:
            return found
        if found is None:
            iso = self._iso_first
            found = [seconds.window_of(s) if iso and type(s) is str else None for s in stamps]
        windows = cast(list[int | None], found)
        if None in windows:
            for i, window in enumerate(windows):
                if window is None:
                    windows[i] = self._parsed_window(stamps[i], i, flags)
        return cast(list[int], windows)

    def _parsed_window(self, value: object, i: int, flags: dict[int, str]) -> int:
        """The window of a timestamp parsed in full, or 0 with the line flagged."""
        bounds = self._bounds
        if value is None:  # the general path looks for the timestamp under other keys
            flags[i] = GENERAL
            return 0
        try:
            when = self._builder.timestamp(value)
        except FieldError:
            flags[i] = GENERAL
            return 0
        if when > bounds.latest or when < bounds.oldest:
            flags.setdefault(i, "future_timestamp" if when > bounds.latest else "too_old")
            return 0
        return math.floor(when.timestamp() / self._folder.window_s)


def _ascending(durations: array[float]) -> list[float]:
    """One category's durations in one window, those of lines without one left out, a
    negative zero made zero (as ``fields.coerce_duration_ms`` makes it), in ascending order."""
    values = np.frombuffer(durations, dtype=np.float64) + 0.0
    values.sort()  # NaNs last
    ascending = cast(list[float], values.tolist())
    if ascending and math.isnan(ascending[-1]):
        del ascending[int(np.isnan(values).argmax()) :]
    return ascending


def _same_keys(shape: Shape, docs: list[dict[str, Any]]) -> bool:
    """Whether every object has exactly the keys of the shape's first object (see ``Shape``)."""
    if set(map(len, docs)) != {shape.keys}:
        return False
    if shape.others is None:
        return True
    try:
        deque(map(shape.others, docs), maxlen=0)
    except KeyError:
        return False
    return True
