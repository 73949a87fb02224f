"""Which keys a batch of JSON objects is read from, and which category values the fast path takes.

``json_columns`` folds a batch of decoded objects column by column. It reads
each target (component, timestamp, duration, ...) from one key for the
whole batch: the first candidate key the batch's first object holds. That
is what the general path (``mapping.lookup``: the first candidate that is
present and not null) would read in every object of the batch provided

- no object holds an earlier candidate (those keys are ``absent``: no
  object may hold them, nor any stack key, as the line loop requires), and
- a null value under the chosen key is left to the general path when a
  later candidate exists (the target is in ``further``).

The category of a line is the tuple of its component, instance, version,
operation, level and status values. ``vet`` decides, once per distinct
category, whether the general path would fold a line of that category the
way the fast path does (the line loop's checks, in ``json_ingest``), and
returns the part of the window key it gives, or None for "leave these lines
to the general path". Categories are compared by equality, where
``1 == True``: a boolean status would pass as the number, so statuses 0 and
1 are left to the general path.
"""

from __future__ import annotations

import operator
from array import array
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, cast

from states.telemetry.mapping import LEVEL_SPELLINGS
from states.telemetry.records import ERROR_LEVELS

CATEGORY: Final = ("component", "instance", "version", "operation", "level", "status")

Category = tuple[Any, ...]
# component, instance, version, operation, error; or None: the general path decides
Part = tuple[str, str, str, str, bool] | None
Getter = Callable[[Any], Any]


@dataclass
class Shape:
    """Where a batch's targets are read from, taken from its first object's keys.

    ``keys`` is the number of keys of that first object and ``others`` reads
    its keys that are no target's (a message, say): an object with as many
    keys, all of these among them, has exactly the first object's keys, so
    it holds no ``absent`` key without a key-by-key check.
    """

    targets: tuple[str, ...]  # the category targets read, in CATEGORY order
    category: Getter
    timestamp: Getter
    duration: Getter | None
    others: Getter | None
    keys: int
    absent: frozenset[str]  # candidate keys no object may hold
    further: frozenset[str]  # targets with later candidates: null means "look further"
    parts: dict[Category, Part] = field(default_factory=dict)  # each category, vetted once
    # durations of the lines folded so far (NaN: none), by window, then category, as doubles
    # side by side in memory: a poll's float objects end up scattered over megabytes, so each
    # later pass over a window's durations would miss the cache value by value
    by_window: defaultdict[int, defaultdict[Category, array[float]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(_doubles))
    )


def _doubles() -> array[float]:
    return array("d")


def shape_of(first: Mapping[str, Any], names: Mapping[str, tuple[str, ...]]) -> Shape | None:
    """The shape of batches whose first object is ``first``, or None (no fast path)."""
    absent: set[str] = set(names["stack"])
    if not absent.isdisjoint(first):
        return None
    chosen: dict[str, str] = {}
    further: set[str] = set()
    for target in (*CATEGORY, "timestamp", "duration"):
        candidates = names[target]
        present = [key for key in candidates if key in first]
        if not present:
            absent.update(candidates)
            continue
        chosen[target] = key = present[0]
        absent.update(candidates[: candidates.index(key)])
        if key != candidates[-1]:
            further.add(target)
    if "component" not in chosen or "timestamp" not in chosen:
        return None
    targets = tuple(t for t in CATEGORY if t in chosen)
    others = [key for key in first if key not in chosen.values()]
    return Shape(
        targets,
        _tuple_getter([chosen[t] for t in targets]),
        operator.itemgetter(chosen["timestamp"]),
        operator.itemgetter(chosen["duration"]) if "duration" in chosen else None,
        _tuple_getter(others) if others else None,
        len(first),
        frozenset(absent),
        frozenset(further),
    )


def _tuple_getter(keys: list[str]) -> Getter:
    # itemgetter of one key returns the bare value: read it twice to get a tuple
    return operator.itemgetter(*keys) if len(keys) > 1 else operator.itemgetter(keys[0], keys[0])


def vet(shape: Shape, cat: Category, default_level: str | None, *, mine_severe: bool) -> Part:
    """The window part of a category, if the general path would fold its lines the same way."""
    values = dict(zip(shape.targets, cat, strict=False))
    component = values.get("component")
    texts = [_text(values.get(t), t in shape.further) for t in ("instance", "version", "operation")]
    level, status = _level(values.get("level"), shape, default_level), values.get("status")
    status_ok = (
        "status" not in shape.further
        if status is None
        else type(status) is int and 2 <= status <= 999  # 0 and 1: see the module
    )
    if type(component) is not str or not component or None in texts or not status_ok:
        return None
    error = level in ERROR_LEVELS or (status is not None and status >= 500)
    if level is None or (mine_severe and (error or level == "warning")):
        return None
    instance, version, operation = cast(list[str], texts)
    return (component, instance, version, operation, error)


def _level(value: object, shape: Shape, default_level: str | None) -> str | None:
    if value is None:
        return None if "level" in shape.further else default_level
    return LEVEL_SPELLINGS.get(value) if type(value) is str else None


def _text(value: object, look_further: bool) -> str | None:
    """An optional text target's value ("" for none), or None to leave it to the general path."""
    if value is None:
        return None if look_further else ""
    return value if type(value) is str else None
