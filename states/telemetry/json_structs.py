"""The typed decoder of a block of JSON lines: which keys it reads, as what, and where they land.

``json_blocks`` decodes a block of lines with one ``msgspec`` decoder into
structs holding only what the columns need, every value's type checked as
it is decoded. The decoder of a ``BlockShape`` is built from one line's
keys (as ``json_shapes`` reads a batch from its first object's keys):

- each target of the category (``json_shapes.CATEGORY``), the timestamp
  and the duration is read from the one candidate key that line holds, as
  ``str | None`` (status ``int | None``, duration ``float | None``, which
  takes integers too and refuses booleans, as the general path does);
  a target none of whose keys it holds is read as always null;
- every other candidate key of those targets may only be null: a value
  there would change which key the general path reads (``mapping.lookup``);
- the stack keys, the line's other keys, and keys learned later
  (``learn``) hold any JSON value (``JSON_VALUE``, numbers as floats,
  nesting bounded), so the decoder validates every value of a line and
  refuses a number orjson refuses as infinite; any other key is refused.

A row is the struct as a tuple (``msgspec.structs.astuple``): the category
first, then the timestamp, the duration and the stack keys, at fixed
positions. A line whose keys make two candidates of one target present, or
a mapping that names one key for two targets, has no shape: its block goes
the existing way.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Union

import msgspec

from states.telemetry.json_shapes import CATEGORY, Shape

MAX_EXTRAS: Final = 32  # keys learned per shape beyond its first line's
TIMESTAMP: Final = len(CATEGORY)  # a row's positions
DURATION: Final = TIMESTAMP + 1
STACKS: Final = DURATION + 1


def _json_value(depth: int) -> Any:
    """Any JSON value nested at most ``depth`` deep; numbers decode as floats (range-checked)."""
    value: Any = Union[str, float, bool, None]  # noqa: UP007  (a runtime type object)
    for _ in range(depth):
        value = Union[str, float, bool, None, list[value], dict[str, value]]  # noqa: UP007
    return value


JSON_VALUE: Final = _json_value(4)
_TYPES: Final[dict[str, Any]] = {
    **dict.fromkeys(CATEGORY, str | None),
    "status": int | None,
    "timestamp": str | None,
    "duration": float | None,
}

Row = tuple[Any, ...]


@dataclass
class BlockShape:
    """One decoder for lines shaped like one line, and where a row's values are."""

    keys: list[str]  # the JSON key of each struct field, in row order
    types: list[Any]
    stacks: int  # how many stack keys follow the duration
    timed: bool  # whether a duration key is read
    columns: Shape  # what ``json_columns`` groups the rows under
    decoder: msgspec.json.Decoder[Any] = field(init=False)
    stack_of: Callable[[Row], Row] = field(init=False)
    learnable: int = field(init=False)  # how many more keys ``learn`` may add

    def __post_init__(self) -> None:
        self.decoder = _decoder(self.keys, self.types)
        self.stack_of = operator.itemgetter(slice(STACKS, STACKS + self.stacks))
        self.learnable = MAX_EXTRAS

    def learn(self, key: str) -> bool:
        """Read ``key`` (a line held it, no line of the shape did) as any value from now on;
        False when the shape already learned ``MAX_EXTRAS`` keys or reads ``key`` already."""
        if key in self.keys or not self.learnable:
            return False
        try:
            self.decoder = _decoder([*self.keys, key], [*self.types, JSON_VALUE])
        except ValueError:  # a key msgspec cannot name (a quote, a backslash, a control byte)
            return False
        self.learnable -= 1
        self.keys.append(key)
        self.types.append(JSON_VALUE)
        return True


def shape_of(keys: Collection[str], names: Mapping[str, tuple[str, ...]]) -> BlockShape | None:
    """The shape of lines holding ``keys``, or None (their block goes the existing way)."""
    chosen: list[str] = []
    types: list[Any] = []
    for target in (*CATEGORY, "timestamp", "duration"):
        candidates = names[target]
        present = [key for key in candidates if key in keys]
        if len(present) > 1 or (not present and target in ("component", "timestamp")):
            return None
        chosen.append(present[0] if present else (candidates or (f"selfheal:no-{target}",))[0])
        types.append(_TYPES[target] if present else None)
    stacks = list(names["stack"])
    nulls = [k for t in (*CATEGORY, "timestamp", "duration") for k in names[t] if k not in chosen]
    extras = [k for k in keys if not any(k in names[t] for t in names if t != "message")]
    all_keys = [*chosen, *stacks, *nulls, *extras]
    if len(set(all_keys)) != len(all_keys):
        return None  # one key named for two targets
    all_types = [*types, *[JSON_VALUE] * len(stacks), *[None] * len(nulls)]
    all_types += [JSON_VALUE] * len(extras)
    columns = Shape(
        targets=CATEGORY,
        category=operator.itemgetter(slice(0, TIMESTAMP)),
        timestamp=operator.itemgetter(TIMESTAMP),
        duration=operator.itemgetter(DURATION) if types[DURATION] is not None else None,
        others=None,
        keys=0,
        absent=frozenset(),
        further=frozenset(),
    )
    try:
        return BlockShape(all_keys, all_types, len(stacks), types[DURATION] is not None, columns)
    except ValueError:  # a key msgspec cannot name (a quote, a backslash, a control byte)
        return None


def _decoder(keys: list[str], types: list[Any]) -> msgspec.json.Decoder[Any]:
    fields = [(f"f{i}", kind, None) for i, kind in enumerate(types)]
    line = msgspec.defstruct(
        "Line",
        fields,
        rename={f"f{i}": key for i, key in enumerate(keys)},
        forbid_unknown_fields=True,
        gc=False,
    )
    return msgspec.json.Decoder(line)


def rows_of(records: list[Any]) -> list[Row]:
    """Each decoded struct as a tuple of its fields, in ``BlockShape.keys`` order."""
    return list(map(msgspec.structs.astuple, records))
