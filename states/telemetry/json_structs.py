"""The typed decoder of a block of JSON lines: which keys it reads, as what, and where they land.

``json_blocks`` decodes a block of lines with one ``msgspec`` decoder into
structs holding only what the columns need, every value's type checked as
it is decoded. The decoder of a ``BlockShape`` is built from one line's
keys (as ``json_shapes`` reads a batch from its first object's keys):

- each target of the category (``json_shapes.CATEGORY``), the timestamp
  and the duration is read from the one candidate key that line holds (or
  its first candidate, if it holds none), as ``str | None`` (status
  ``int | None``, duration ``float | None``, which takes integers too and
  refuses booleans, as the general path does); a target without candidate
  keys is read as always null;
- the text targets of the category are read as literals, the values seen
  so far (``learn_values``, up to ``MAX_LITERALS`` each, then any text): a
  literal decodes to the one string object of that value, whose hash is
  computed once, so grouping lines by category costs half as much;
- every other candidate key of those targets may only be null: a value
  there would change which key the general path reads (``mapping.lookup``);
- the stack keys, the line's other keys, and keys learned later
  (``learn``) hold any JSON value (``JSON_VALUE``, numbers as floats,
  nesting bounded), so the decoder validates every value of a line and
  refuses a number orjson refuses as infinite; any other key is refused.

A row is the struct as a tuple (``msgspec.structs.astuple``): the category
first, then the timestamp, the duration and the stack keys, at fixed
positions. A line holding two candidates of one target, or a mapping that names one
key for two targets, has no shape: its block goes the existing way. Lines
without a component or a timestamp are refused, by the column passes.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Union

import msgspec

from states.telemetry.json_shapes import CATEGORY, Shape

MAX_EXTRAS: Final = 32  # keys learned per shape beyond its first line's
MAX_LITERALS: Final = 256  # values of one text target read as literals; more: any text
UNSEEN: Final = "selfheal:unseen"  # the literal of a target whose values are still unknown
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
    columns: Shape  # what ``json_columns`` groups the rows under
    literals: list[set[str] | None]  # per category field: its values as literals, or None
    decoder: msgspec.json.Decoder[Any] = field(init=False)
    stack_of: Callable[[Row], Row] = field(init=False)
    learnable: int = field(init=False)  # how many more keys ``learn`` may add

    def __post_init__(self) -> None:
        for position, known in enumerate(self.literals):
            if known is not None:
                self.types[position] = _literal(known)
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

    def learn_values(self, values: Mapping[str, object]) -> bool:
        """Read the text values of ``values`` (a line's object) that are new as literals too;
        a target past ``MAX_LITERALS`` values is read as any text. False if nothing is new."""
        changed = False
        for position, known in enumerate(self.literals):
            value = values.get(self.keys[position])
            if known is None or type(value) is not str or value in known:
                continue
            changed = True
            if len(known) < MAX_LITERALS:
                known.add(value)
                self.types[position] = _literal(known)
            else:
                self.literals[position] = None
                self.types[position] = str | None
        if changed:
            self.decoder = _decoder(self.keys, self.types)
        return changed


def shape_of(
    first: Mapping[str, object], names: Mapping[str, tuple[str, ...]]
) -> BlockShape | None:
    """The shape of lines holding the keys of ``first``, or None (their block goes the existing
    way); its text values are the first literals."""
    keys = first.keys()
    chosen: list[str] = []
    types: list[Any] = []
    for target in (*CATEGORY, "timestamp", "duration"):
        candidates = names[target]
        present = [key for key in candidates if key in keys]
        if len(present) > 1:
            return None
        chosen.append((*present, *candidates, f"selfheal:no-{target}")[0])
        types.append(_TYPES[target] if candidates else None)
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
    literals: list[set[str] | None] = [
        set() if target != "status" and types[i] is not None else None
        for i, target in enumerate(CATEGORY)
    ]
    try:
        shape = BlockShape(all_keys, all_types, len(stacks), columns, literals)
    except ValueError:  # a key msgspec cannot name (a quote, a backslash, a control byte)
        return None
    shape.learn_values(first)
    return shape


def _literal(values: set[str]) -> Any:
    return Literal[tuple(sorted(values or {UNSEEN}))] | None


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
