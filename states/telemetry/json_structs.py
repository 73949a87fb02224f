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
- the text targets of the category, and the status, are read as literals,
  the values seen so far (``learn_values``, up to ``MAX_LITERALS`` each,
  then any text or integer): a literal decodes to the one object of that
  value (a string's hash computed once, a status neither made nor freed per
  line, compared by identity), so grouping lines by category costs half as
  much;
- the stack keys, the line's other keys, and keys learned later
  (``learn``) hold any JSON value (``JSON_VALUE``, numbers as floats,
  nesting bounded), so the decoder validates every key and value of a line
  it accepts, and refuses a number orjson refuses as infinite;
- any other key is refused, the other candidate keys of a target above all
  (they would change which key the general path reads, ``mapping.lookup``).

The struct's fields follow the line's own key order (msgspec finds each
key at the field it expects next, where other orders make it search: 0.61
against 0.68 times the CPU of ``orjson.loads`` in one measurement, and 0.07
more for seven fields no line holds). A row is the struct as a tuple
(``msgspec.structs.astuple``); ``columns`` reads the category, timestamp
and duration from their positions, ``stack_of`` the stack keys.

A line holding two candidates of one target, or a mapping that names one
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
MAX_LITERALS: Final = 256  # values of one target read as literals; more: any value of its type
_LITERAL_INTS: Final = range(-(2**63), 2**63)  # the integers msgspec takes as literals
UNSEEN: Final = "selfheal:unseen"  # the literal of a target whose values are still unknown


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
    literals: dict[int, set[Any] | None]  # category fields (text, or status): literal values
    refused: frozenset[str]  # keys never learned: other targets' candidates
    columns: Shape  # what ``json_columns`` groups the rows under
    stack_of: Callable[[Row], Row] | None  # a row's stack values (twice the one, if one)
    stacks: list[str]
    numbers: frozenset[int] = frozenset()  # the literal fields holding integers (the status)
    decoder: msgspec.json.Decoder[Any] = field(init=False)
    learnable: int = field(init=False)  # how many more keys ``learn`` may add

    def __post_init__(self) -> None:
        for position, known in self.literals.items():
            if known is not None:
                self.types[position] = _literal(known)
        self.decoder = _decoder(self.keys, self.types)
        self.learnable = MAX_EXTRAS

    def learn(self, key: str) -> bool:
        """Read ``key`` (a line held it, no line of the shape did) as any value from now on;
        False for a candidate key, a key read already, or past ``MAX_EXTRAS`` learned keys."""
        if key in self.keys or key in self.refused or not self.learnable:
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
        """Read the category values of ``values`` (a line's object) that are new as literals
        too (texts; integers for the status); a target past ``MAX_LITERALS`` values, or given
        an integer msgspec cannot take as a literal, is read as any text or integer. False if
        nothing is new."""
        changed = False
        for position, known in self.literals.items():
            value = values.get(self.keys[position])
            kind = int if position in self.numbers else str
            if known is None or type(value) is not kind or value in known:
                continue
            changed = True
            if len(known) < MAX_LITERALS and (kind is str or value in _LITERAL_INTS):
                known.add(value)
                self.types[position] = _literal(known)
            else:
                self.literals[position] = None
                self.types[position] = kind | None
        if changed:
            self.decoder = _decoder(self.keys, self.types)
        return changed


def shape_of(
    first: Mapping[str, object], names: Mapping[str, tuple[str, ...]]
) -> BlockShape | None:
    """The shape of lines holding the keys of ``first``, or None (their block goes the existing
    way); its text values are the first literals."""
    read: dict[str, str] = {}  # target -> key
    for target in (*CATEGORY, "timestamp", "duration"):
        candidates = names[target]
        present = [key for key in candidates if key in first]
        if len(present) > 1:
            return None
        read[target] = (*present, *candidates, f"selfheal:no-{target}")[0]
    stacks = list(names["stack"])
    named = {key for target, keys in names.items() if target != "message" for key in keys}
    wanted = {*read.values(), *stacks}
    if len(wanted) != len(read) + len(stacks):
        return None  # one key named for two targets
    keys = [key for key in first if key in wanted or key not in named]
    keys += [key for key in (*read.values(), *stacks) if key not in first]
    kinds: dict[str, Any] = {key: None for target, key in read.items() if not names[target]}
    kinds.update((key, _TYPES[target]) for target, key in read.items() if names[target])
    types = [kinds.get(key, JSON_VALUE) for key in keys]  # stack and other keys: any value
    position = {key: i for i, key in enumerate(keys)}
    columns = Shape(
        targets=CATEGORY,
        category=operator.itemgetter(*(position[read[t]] for t in CATEGORY)),
        timestamp=operator.itemgetter(position[read["timestamp"]]),
        duration=operator.itemgetter(position[read["duration"]]) if names["duration"] else None,
        others=None,
        keys=0,
        absent=frozenset(),
        further=frozenset(),
    )
    literals: dict[int, set[Any] | None] = {position[read[t]]: set() for t in CATEGORY if names[t]}
    numbers = frozenset({position[read["status"]]} if names["status"] else ())
    at = [position[key] for key in stacks]
    stack_of = operator.itemgetter(*(at if len(at) > 1 else at * 2)) if at else None
    try:
        shape = BlockShape(
            keys, types, literals, frozenset(named), columns, stack_of, stacks, numbers
        )
    except ValueError:  # a key msgspec cannot name (a quote, a backslash, a control byte)
        return None
    shape.learn_values(first)
    return shape


def _literal(values: set[Any]) -> Any:
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
