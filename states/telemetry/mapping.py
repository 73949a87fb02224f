"""From a bag of named values (a JSON object, logfmt pairs, regex groups) to a ``Record``.

JSON lines, logfmt and regex formats differ only in how they split a line into
named values; which name holds the timestamp, the component or the duration
is configuration. ``RecordBuilder`` compiles that configuration once (paths
split, units resolved, zone looked up) so the per-line work is dictionary
lookups and a few conversions: the JSON-lines path is the hot path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Final

from states.telemetry import fields, stacktraces
from states.telemetry.fields import FieldError, Rejection
from states.telemetry.records import Record, StackFrame

TARGETS: Final[tuple[str, ...]] = (
    "timestamp",
    "component",
    "operation",
    "duration",
    "status",
    "level",
    "message",
    "version",
    "instance",
    "stack",
)

# The shape every service can write without configuring anything.
DEFAULT_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "timestamp": ("ts", "timestamp", "time", "@timestamp"),
    "component": ("component", "service"),
    "operation": ("operation", "op"),
    "duration": ("duration_ms",),
    "status": ("status",),
    "level": ("level", "severity"),
    "message": ("message", "msg"),
    "version": ("version",),
    "instance": ("instance", "host"),
    "stack": ("stack", "stack_trace", "exc_info"),
}

Path = tuple[str, ...]

# Stack texts whose frames a builder remembers, and the longest it remembers (at most 4 Mi chars).
REMEMBERED_STACKS: Final = 256
REMEMBERED_STACK_CHARS: Final = 16_384

# Canonical levels by their common spellings, for a lookup without a call.
LEVEL_SPELLINGS: Final[dict[str, str]] = {
    **fields.LEVELS,
    **{name.upper(): level for name, level in fields.LEVELS.items()},
}
_LEVELS: Final = LEVEL_SPELLINGS


@dataclass(frozen=True, slots=True)
class BuildRules:
    """Compiled mapping: candidate paths per target plus how values are read."""

    paths: Mapping[str, tuple[Path, ...]]
    timestamp_formats: tuple[str, ...] = ("iso8601", "epoch")
    naive_zone: tzinfo = field(default_factory=lambda: fields.zone_named("UTC"))
    duration_unit_ms: float = 1.0
    default_component: str | None = None
    default_level: str = "info"


def compile_paths(
    mapping: Mapping[str, Sequence[str]], dotted: bool
) -> dict[str, tuple[Path, ...]]:
    """Candidate paths per target; dotted names walk nested objects when ``dotted``."""
    unknown = sorted(set(mapping) - set(TARGETS))
    if unknown:
        raise ValueError(f"unknown target field(s) {unknown}; known: {list(TARGETS)}")
    return {
        target: tuple(tuple(name.split(".")) if dotted else (name,) for name in names)
        for target, names in mapping.items()
    }


def single_names(rules: BuildRules) -> dict[str, tuple[str, ...]] | None:
    """Each target's candidate keys when no path is dotted, else None.

    A hot path can then read a target with one ``dict.get`` per candidate
    instead of calling ``lookup`` (which also walks nested paths).
    """
    names: dict[str, tuple[str, ...]] = {}
    for target in TARGETS:
        paths = rules.paths.get(target, ())
        if any(len(path) != 1 for path in paths):
            return None
        names[target] = tuple(path[0] for path in paths)
    return names


def lookup(values: Mapping[str, object], paths: tuple[Path, ...]) -> object:
    """The first present, non-null value among ``paths``."""
    for path in paths:
        value = values.get(path[0]) if len(path) == 1 else _walk(values, path)
        if value is not None:
            return value
    return None


def _walk(values: Mapping[str, object], path: Path) -> object:
    current: object = values
    for key in path:
        if not isinstance(current, dict):
            return None
        current = current.get(key)
    return current


# A key that no JSON object, logfmt pair or regex group has: what a target without candidates reads.
_ABSENT: Final = object()


class _FlatReading:
    """Every target's value, in ``TARGETS`` order, when no candidate path is dotted.

    The same values as ``lookup`` per target (the first present, non-null
    candidate), read with one ``map(values.get, ...)`` over the first
    candidates and a look at the others only where the first is missing:
    a JSON line that the fast paths leave to the parser then costs one call
    instead of ten.
    """

    __slots__ = ("_fallbacks", "_firsts")

    def __init__(self, names: Mapping[str, tuple[str, ...]]) -> None:
        keys = [names[target] for target in TARGETS]
        self._firsts: tuple[object, ...] = tuple(k[0] if k else _ABSENT for k in keys)
        self._fallbacks = tuple((i, k[1:]) for i, k in enumerate(keys) if len(k) > 1)

    def read(self, values: Mapping[str, object]) -> list[object]:
        """Each target's value (None when no candidate holds one)."""
        get = values.get
        found: list[object] = list(map(get, self._firsts))  # type: ignore[arg-type]
        for i, rest in self._fallbacks:
            if found[i] is None:
                for key in rest:
                    value = get(key)
                    if value is not None:
                        found[i] = value
                        break
        return found


def _flat_reading(rules: BuildRules) -> _FlatReading | None:
    names = single_names(rules)
    return None if names is None else _FlatReading(names)


class RecordBuilder:
    """Builds records from named values according to one compiled mapping."""

    def __init__(self, rules: BuildRules) -> None:
        self._rules = rules
        self._paths = tuple(rules.paths.get(target, ()) for target in TARGETS)
        self._iso_first = rules.timestamp_formats[:1] == ("iso8601",)
        self._flat = _flat_reading(rules)
        self._frames_by_stack: dict[str, tuple[StackFrame, ...]] = {}  # see _frames_of

    @property
    def rules(self) -> BuildRules:
        """The compiled mapping this builder applies."""
        return self._rules

    def build(self, values: Mapping[str, object]) -> Record | Rejection:
        """One record, or the reason the values cannot make one."""
        try:
            return self._build(values)
        except FieldError as error:
            return Rejection(error.reason, str(error))

    def _build(self, values: Mapping[str, object]) -> Record:
        # The hot path of JSON ingestion: common value types are checked
        # inline (each conversion in the order it may raise: the first error
        # names the rejection) and the record is built positionally.
        rules = self._rules
        flat = self._flat  # every target read in one pass of dict.get (see _FlatReading)
        found = flat.read(values) if flat is not None else [lookup(values, p) for p in self._paths]
        moment, component, operation, duration, status, level, message, version, instance, stack = (
            found
        )
        if type(component) is not str or not component:
            component = _component(component, rules.default_component)
        if type(operation) is not str:
            operation = "" if operation is None else _text(operation, "operation")
        if duration is not None:
            duration = fields.coerce_duration_ms(duration, rules.duration_unit_ms)
        if status is not None and (type(status) is not int or not 0 <= status <= 999):
            status = fields.coerce_status(status)
        when = self.timestamp(moment)
        level = self._level_of(level)
        if type(message) is not str:
            message = _message(message)
        if version is not None and type(version) is not str:
            version = _text(version, "version")
        if instance is not None and type(instance) is not str:
            instance = _text(instance, "instance")
        return Record(
            when,
            component,
            operation,
            duration,
            status,
            level,
            message,
            version,
            instance,
            () if stack is None else self._frames_of(stack),
        )

    def _frames_of(self, stack: object) -> tuple[StackFrame, ...]:
        """``stack_frames(stack)``, remembered by the stack's text.

        A failure that repeats logs the same trace each time, and its frames
        (a tuple of frozen frames, shared safely) are a function of the text
        alone; parsing one costs ~9 us. Memory is bounded like the template
        miner's caches: short texts only, and a full cache starts over.
        """
        if type(stack) is not str:
            return stack_frames(stack)
        remembered = self._frames_by_stack
        frames = remembered.get(stack)
        if frames is None:
            frames = stack_frames(stack)
            if len(stack) <= REMEMBERED_STACK_CHARS:
                if len(remembered) >= REMEMBERED_STACKS:
                    remembered.clear()
                remembered[stack] = frames
        return frames

    def _level_of(self, level: object) -> str:
        if level is None:
            return self._rules.default_level
        if type(level) is str and level in _LEVELS:
            return _LEVELS[level]
        return _level(level)

    def timestamp(self, value: object) -> datetime:
        """The record time in UTC; ISO strings take a fast path."""
        if value is None:
            raise FieldError(fields.NO_TIMESTAMP, "no timestamp field")
        rules = self._rules
        if self._iso_first and type(value) is str:
            try:
                return fields.to_utc(datetime.fromisoformat(value), rules.naive_zone)
            except ValueError:
                pass
        return fields.parse_timestamp(value, rules.timestamp_formats, rules.naive_zone)


def stack_frames(stack: object) -> tuple[StackFrame, ...]:
    """Frames from a stack given as one string or as a list of lines."""
    if isinstance(stack, str):
        return stacktraces.parse_stack_text(stack)
    if isinstance(stack, list) and all(isinstance(line, str) for line in stack):
        return stacktraces.parse_frames(stack)
    raise FieldError(fields.BAD_FIELD, f"stack has type {type(stack).__name__}")


def _component(value: object, default: str | None) -> str:
    if value is None or value == "":
        if default is None:
            raise FieldError(fields.NO_COMPONENT, "no component field and no default")
        return default
    return _text(value, "component")


def _level(value: object) -> str:
    if isinstance(value, dict | list):
        raise FieldError(fields.BAD_FIELD, f"level has type {type(value).__name__}")
    return fields.normalize_level(value)


def _text(value: object, name: str) -> str:
    if type(value) is str:
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise FieldError(fields.BAD_FIELD, f"{name} has type {type(value).__name__}")


def _message(value: object) -> str:
    if value is None:
        return ""
    return value if type(value) is str else str(value)
