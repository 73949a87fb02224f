"""Grouping a column of lines' durations by window and category, vetting each category once.

Each duration (a float: ``duration_columns`` gives nothing else) is
appended to the doubles of its category in its window (an ``array``, see
``Shape.by_window``) with one ``map(array.append, ...)`` over the column;
a category seen for the first time in a poll is vetted then
(``json_shapes.vet``), and a category the fast path cannot vouch for (an
error, say, whose message is to be mined) has its lines taken back out and
flagged for the general path. A line flagged before grouping (its
timestamp or duration needs the general path, or its timestamp is out of
range) is grouped under no category; an out-of-range timestamp stays a
rejection only when the rest of the line is fast-path material, as in the
line-by-line loop.
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Final, cast

from states.telemetry.duration_columns import GENERAL, NO_DURATION, UNTIMED
from states.telemetry.json_shapes import Category, Part, Shape, vet

_FLAGGED: Final[Category] = ()  # the category of a flagged line while grouping: no real one


class CategoryGroups:
    """Appends lines' durations to their shape's per-window category arrays
    (``Shape.by_window``)."""

    def __init__(self, default_level: str | None, *, mine_severe: bool) -> None:
        self._default_level, self._mine_severe = default_level, mine_severe

    def group(
        self,
        shape: Shape,
        cats: list[Category],
        windows: int | list[int],
        values: Iterable[float],
        flags: dict[int, str],
    ) -> bool:
        """Append each line's duration to its category's doubles in its window; flag refused
        lines.

        False, having changed nothing, when a category holds a list or an object
        (which cannot be a dictionary key): the batch goes line by line.
        """
        if type(windows) is int and not flags:
            return self._append_or_undo(shape, windows, cats, values, flags)
        try:
            hash(tuple(cats))
        except TypeError:
            return False
        if flags:
            self._settle_rejections(shape, cats, flags)
            cats = list(cats)
            for i in flags:
                cats[i] = _FLAGGED
        if type(windows) is int:
            self._append(shape, windows, cats, values, flags)
            return True
        durations = [NO_DURATION] * len(cats) if values is UNTIMED else list(values)
        by_window: dict[int, list[int]] = {}
        for i, window in enumerate(cast(list[int], windows)):
            by_window.setdefault(window, []).append(i)
        for window, rows in by_window.items():
            picked_cats = [cats[i] for i in rows]
            picked = [durations[i] for i in rows]
            self._append(shape, window, picked_cats, picked, flags, rows)
        return True

    def _append_or_undo(
        self,
        shape: Shape,
        window: int,
        cats: list[Category],
        values: Iterable[float],
        flags: dict[int, str],
    ) -> bool:
        """``_append``, or nothing at all when a category cannot be hashed (then False).

        Hashing every category beforehand would cost as much as the appending;
        an unhashable one is rare, so the appends before it are taken back
        (the only TypeError: every value is a float).
        """
        lists = shape.by_window[window]
        known = len(lists)
        try:
            self._append(shape, window, cats, values, flags)
        except TypeError:
            for cat in cats:
                try:
                    hash(cat)
                except TypeError:
                    break
                lists[cat].pop()
            for cat in list(lists)[known:]:
                del lists[cat]
            return False
        return True

    def _append(
        self,
        shape: Shape,
        window: int,
        cats: Sequence[Category],
        values: Iterable[float],
        flags: dict[int, str],
        rows: Sequence[int] | None = None,
    ) -> None:
        lists = shape.by_window[window]
        known = len(lists)
        deque(map(array.append, map(lists.__getitem__, cats), values), maxlen=0)
        lists.pop(_FLAGGED, None)
        if len(lists) == known:
            return
        for cat in list(lists)[known:]:
            if self._part(shape, cat) is None:
                for j in _positions(cats, cat, lists.pop(cat), values):
                    flags[j if rows is None else rows[j]] = GENERAL

    def _settle_rejections(self, shape: Shape, cats: list[Category], flags: dict[int, str]) -> None:
        """A timestamp out of range rejects a line only if the rest of it is fast-path material."""
        for i, reason in flags.items():
            if reason != GENERAL and self._part(shape, cats[i]) is None:
                flags[i] = GENERAL

    def _part(self, shape: Shape, cat: Category) -> Part:
        """The category's window part, vetted once per shape (None: the general path's)."""
        part = shape.parts.get(cat, ...)
        if part is ...:
            part = shape.parts[cat] = vet(
                shape, cat, self._default_level, mine_severe=self._mine_severe
            )
        return part


def _positions(
    items: Sequence[Category], item: Category, taken: array[float], values: object
) -> list[int]:
    """The indices of the occurrences of ``item`` in ``items``, whose ``values`` (a list, or
    another iterable) were ``taken`` in their order (``index`` scans in C, and no further
    than the last one).

    From a list of values, each occurrence is sought among the rows holding
    its value: the next row of ``item`` holds the next value taken, so the
    first row at or after it with that value and ``item`` is that row (an
    equal value of a row of another category is skipped). Comparing one
    float a row costs about a third of comparing category tuples (8 against
    20-30 µs for a chunk of the benchmark's log with its 2-3 failed lines). A
    NaN (a line without a duration) equals nothing, so then the categories
    are compared.
    """
    found: list[int] = []
    start = 0
    if type(values) is not list or any(map(math.isnan, taken)):
        for _ in taken:
            start = items.index(item, start)
            found.append(start)
            start += 1
        return found
    for value in taken:
        start = values.index(value, start)
        while items[start] != item:
            start = values.index(value, start + 1)
        found.append(start)
        start += 1
    return found
