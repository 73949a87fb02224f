"""A column of JSON durations, checked and converted to milliseconds in passes over the column.

The general path checks each line's duration on its own
(``fields.coerce_duration_ms``: a number, not a boolean, within range once
converted). A column of a batch or a block is checked with ``min`` and
``max`` over it instead, and converted with one ``map``; only a column
holding something else (a text like ``"230ms"``, a boolean, a value out of
range) is read value by value, and each line whose value the columns cannot
vouch for is flagged for the general path, which then decides as it always
has.

A line without a duration (or whose duration the general path decides) is
given ``NO_DURATION``, a NaN, which no duration taken here can be (JSON
has no NaN, and neither orjson nor msgspec makes one): the grouped
durations are then plain doubles (``category_groups``).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable
from itertools import repeat
from typing import Final, cast

from states.telemetry.fields import _LONGEST_DURATION_MS as LONGEST_DURATION_MS
from states.telemetry.json_shapes import Shape

GENERAL: Final = "general"  # a line the general path must parse
NO_DURATION: Final = math.nan  # the value of a line without a duration (see the module)
UNTIMED: Final = repeat(NO_DURATION)  # the durations of a shape read without any
_FLOAT, _INT = float, int


def checked_durations(
    durations: list[object] | None,
    shape: Shape,
    flags: dict[int, str],
    unit_ms: float,
    float_limit: float,
    *,
    typed: bool,
) -> Iterable[float]:
    """Durations in milliseconds (``NO_DURATION`` for a line without one), checked as
    ``fields.coerce_duration_ms`` checks them; a line whose value only the general path can
    judge is flagged ``GENERAL`` in ``flags``.

    ``float_limit``: the largest float taken here (in the source's unit).
    ``typed``: every value is a float or None (as the typed decoder reads
    them), so their types need no pass of their own.
    """
    if durations is None:
        return UNTIMED
    types = {_FLOAT} if typed else set(map(type, durations))
    if types == {_FLOAT}:
        floats = cast(list[float], durations)
        try:
            within = _within(floats, float_limit)
        except TypeError:  # typed: a null among them
            within = False
        if within:
            return floats if unit_ms == 1.0 else list(map(operator.mul, floats, repeat(unit_ms)))
    elif types <= {_INT, _FLOAT} and (unit_ms == 1.0 or types == {_INT}):
        millis = list(map(float, cast(list[float], durations)))
        if unit_ms != 1.0:
            millis = list(map(operator.mul, millis, repeat(unit_ms)))
        if _within(millis, LONGEST_DURATION_MS):
            return millis
    return _one_by_one(durations, shape, flags, unit_ms, float_limit)


def _one_by_one(
    durations: list[object], shape: Shape, flags: dict[int, str], unit_ms: float, longest: float
) -> list[float]:
    values: list[float] = []
    for i, value in enumerate(durations):
        millis = NO_DURATION
        if type(value) is float and 0.0 <= value <= longest:
            millis = value * unit_ms
        elif type(value) is int and 0.0 <= float(value) * unit_ms <= LONGEST_DURATION_MS:
            millis = float(value) * unit_ms
        elif value is not None or "duration" in shape.further:
            flags[i] = GENERAL
        values.append(millis)
    return values


def _within(values: list[float], limit: float) -> bool:
    """Whether every value lies in [0, ``limit``]; TypeError if one is None."""
    return min(values) >= 0.0 and max(values) <= limit
