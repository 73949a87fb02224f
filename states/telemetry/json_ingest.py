"""The JSON-lines hot path: decode, map and fold each line in one loop, without a ``Record``.

Most services log JSON lines in a plain shape (flat keys, an ISO timestamp,
numeric duration and status, a known level), and a window needs only a few
of those values. For such a line this loop reads the values with one
``dict.get`` per candidate key, checks each has the plain type the general
path accepts without conversion, takes its window from a cache keyed by the
timestamp's second, and adds it to the folder's tally directly.

Anything else is handed, as the raw line, to the general path (the source's
parser, then ``WindowFolder.add_record``): a line that does not decode, a
nested or missing field, a string duration, an unknown level, a stack trace,
a record whose message should be mined. So the fast path only ever takes
lines whose outcome it can prove equal to the general one, and every
rejection reason still comes from the general path.

The timestamp cache: ``2026-03-01T11:50:01.123+00:00`` is cached under its
text without the fraction (``2026-03-01T11:50:01+00:00``). The first line of
a second is parsed in full by the general code, which also checks that the
whole second is within the accepted time range and that its window cannot
change within the second (the window width is a whole number of seconds and
the zone offset too); only then is the second's window cached for the poll.
A timestamp without a fraction is cached under its exact text, in a table of
its own, since it speaks for that instant only. A second at the edge of the
range, a fractional window or an odd format is parsed line by line, as before.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from datetime import datetime, timedelta
from typing import Final

import orjson

from states.telemetry.fields import _LONGEST_DURATION_MS as LONGEST_DURATION_MS
from states.telemetry.fields import FieldError
from states.telemetry.folding import Tally, TimeBounds, WindowFolder
from states.telemetry.json_lines import JsonLinesParser
from states.telemetry.mapping import LEVEL_SPELLINGS, RecordBuilder, single_names

GeneralPath = Callable[[bytes], None]
Getter = Callable[[Hashable], object]

ERROR_LEVELS: Final = frozenset({"error", "critical", "fatal"})
_ONE_SECOND: Final = timedelta(seconds=1)
_DIGITS: Final = "0123456789"
_SECOND_HEAD = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}", re.ASCII)
# A target without candidate keys looks this up: JSON keys are strings, so it is never there.
_NO_KEY: Final[tuple[Hashable, ...]] = (object(),)


class SecondWindows:
    """The window of each second of ISO timestamps seen in one poll, when it is provable."""

    def __init__(self, builder: RecordBuilder, window_s: float, bounds: TimeBounds) -> None:
        self.exact: dict[str, int] = {}  # by the timestamp's full text
        self.by_second: dict[str, int] = {}  # by the text without its fraction
        self._timestamp = builder.timestamp
        self._window_s = window_s
        self._whole_window = float(window_s).is_integer()
        self._bounds = bounds

    def miss(self, text: str, key: str, whole_second: bool) -> int | None:
        """Parse ``text`` generally; cache and return its window if ``key`` pins it, else None.

        ``whole_second``: ``key`` is ``text`` without its fraction, to stand for
        every fraction of that second; otherwise it is ``text`` itself.
        """
        try:
            moment = self._timestamp(text)
        except FieldError:
            return None
        bounds = self._bounds
        if not whole_second:
            if not bounds.oldest <= moment <= bounds.latest:
                return None
            bucket = self.exact[key] = math.floor(moment.timestamp() / self._window_s)
            return bucket
        second = self._second(text, key, moment)
        if second is None or second < bounds.oldest or second + _ONE_SECOND > bounds.latest:
            return None
        bucket = self.by_second[key] = math.floor(second.timestamp() / self._window_s)
        return bucket

    def _second(self, text: str, key: str, moment: datetime) -> datetime | None:
        """The whole second ``key`` names, if every fraction of it lands in one window."""
        if not self._whole_window or _SECOND_HEAD.fullmatch(text[:19]) is None:
            return None
        try:
            second = self._timestamp(key)
        except FieldError:
            return None
        if second.microsecond or not timedelta(0) <= moment - second < _ONE_SECOND:
            return None
        return second


class JsonFastPath:
    """Folds plain JSON lines directly; hands every other line to the general path."""

    def __init__(self, parser: JsonLinesParser, names: dict[str, tuple[str, ...]]) -> None:
        self._parser = parser
        self._builder = parser.builder
        self._names: dict[str, tuple[Hashable, ...]] = {
            target: keys or _NO_KEY for target, keys in names.items()
        }
        rules = self._builder.rules
        self._iso_first = rules.timestamp_formats[:1] == ("iso8601",)
        self._unit_ms = rules.duration_unit_ms
        self._default_level = LEVEL_SPELLINGS.get(rules.default_level)

    @classmethod
    def for_parser(cls, parser: object) -> JsonFastPath | None:
        """The fast path for a JSON-lines parser whose mapping has no dotted path."""
        if not isinstance(parser, JsonLinesParser):
            return None
        names = single_names(parser.builder.rules)
        return None if names is None else cls(parser, names)

    def fold(  # noqa: PLR0912, PLR0915  (one loop on purpose, see inside)
        self,
        lines: Sequence[bytes],
        folder: WindowFolder,
        bounds: TimeBounds,
        rejected: Counter[str],
        general: GeneralPath,
        *,
        mine_severe: bool,
    ) -> None:
        """Fold ``lines``; ``mine_severe`` sends warning and error records to the general path."""
        # One long loop on purpose: every call or attribute lookup here costs
        # about 2% of the whole per-line budget.
        names = self._names
        ts_first, *ts_rest = names["timestamp"]
        comp_first, *comp_rest = names["component"]
        op_first, *op_rest = names["operation"]
        dur_first, *dur_rest = names["duration"]
        status_first, *status_rest = names["status"]
        level_first, *level_rest = names["level"]
        ver_first, *ver_rest = names["version"]
        inst_first, *inst_rest = names["instance"]
        stack_names, stack_keys = names["stack"], frozenset(names["stack"])
        levels, default_level = LEVEL_SPELLINGS, self._default_level
        unit_ms = self._unit_ms
        max_duration = LONGEST_DURATION_MS / unit_ms  # coerce_duration_ms's own bound
        iso_first, timestamp = self._iso_first, self._builder.timestamp
        seconds = SecondWindows(self._builder, folder.window_s, bounds)
        exact, by_second, window_s = seconds.exact, seconds.by_second, folder.window_s
        oldest, latest = bounds.oldest, bounds.latest
        tallies, max_bytes = folder.tallies, self._parser.max_bytes
        loads, decode_error = orjson.loads, orjson.JSONDecodeError
        any_too_long = max(map(len, lines), default=0) > max_bytes
        # Every record, fast or general, counts once in a tally: records are
        # counted from the tallies at the end instead of once per line.
        uncounted = folder.records - sum(tally.count for tally in tallies.values())
        for raw in lines:
            if any_too_long and len(raw) > max_bytes:
                general(raw)
                continue
            try:
                values = loads(raw)
            except decode_error:
                general(raw)
                continue
            if type(values) is not dict:
                general(raw)
                continue
            get = values.get
            component = get(comp_first)
            if component is None and comp_rest:
                component = _first(get, comp_rest)
            if type(component) is not str or not component:
                general(raw)
                continue
            operation = get(op_first)
            if operation is None and op_rest:
                operation = _first(get, op_rest)
            if operation is not None and type(operation) is not str:
                general(raw)
                continue
            duration = get(dur_first)
            if duration is None and dur_rest:
                duration = _first(get, dur_rest)
            if duration is not None:
                if type(duration) is float and 0.0 <= duration <= max_duration:
                    duration = duration * unit_ms
                elif type(duration) is int and 0 <= duration <= max_duration:
                    duration = float(duration) * unit_ms
                else:
                    general(raw)
                    continue
            status = get(status_first)
            if status is None and status_rest:
                status = _first(get, status_rest)
            if status is not None and (type(status) is not int or not 0 <= status <= 999):
                general(raw)
                continue
            level = get(level_first)
            if level is None and level_rest:
                level = _first(get, level_rest)
            if level is None:
                level = default_level
            elif type(level) is str:
                level = levels.get(level)
            else:
                level = None
            if level is None:
                general(raw)
                continue
            version = get(ver_first)
            if version is None and ver_rest:
                version = _first(get, ver_rest)
            instance = get(inst_first)
            if instance is None and inst_rest:
                instance = _first(get, inst_rest)
            if (
                (version is not None and type(version) is not str)
                or (instance is not None and type(instance) is not str)
                or (
                    not values.keys().isdisjoint(stack_keys)
                    and _first(get, stack_names) is not None
                )
            ):
                general(raw)
                continue
            error = level in ERROR_LEVELS or (status is not None and status >= 500)
            if mine_severe and (error or level == "warning"):
                general(raw)
                continue
            moment = get(ts_first)
            if moment is None and ts_rest:
                moment = _first(get, ts_rest)
            bucket = None
            if iso_first and type(moment) is str:
                head, dot, rest = moment.partition(".")
                table, key = exact, moment
                if dot and len(head) == 19:
                    zone = rest.lstrip(_DIGITS)
                    if len(zone) < len(rest):
                        table, key = by_second, head + zone
                bucket = table.get(key)
                if bucket is None:
                    bucket = seconds.miss(moment, key, table is by_second)
            if bucket is None:
                if moment is None:
                    general(raw)
                    continue
                try:
                    when = timestamp(moment)
                except FieldError:
                    general(raw)
                    continue
                if when > latest:
                    rejected["future_timestamp"] += 1
                    continue
                if when < oldest:
                    rejected["too_old"] += 1
                    continue
                bucket = math.floor(when.timestamp() / window_s)
            tally_key = (component, instance or "", bucket, version or "")
            tally = tallies.get(tally_key)
            if tally is None:
                tally = tallies[tally_key] = Tally()
            tally.count += 1
            if error:
                tally.errors += 1
            if duration is not None:
                tally.durations.append(duration)
        folder.records = uncounted + sum(tally.count for tally in tallies.values())


def _first(get: Getter, keys: Sequence[Hashable]) -> object:
    """The first non-null value among ``keys``, as ``mapping.lookup`` reads flat paths."""
    for key in keys:
        value = get(key)
        if value is not None:
            return value
    return None
