"""The JSON-lines hot path: fold plain lines without building a ``Record``.

Most services log JSON lines in a plain shape (flat keys, an ISO timestamp,
numeric duration and status, a known level), and a window needs only a few
of those values. A poll's blocks are first decoded whole by a typed decoder
(``json_blocks``); the lines it refuses come here, in order, and are taken
``json_columns.BATCH_LINES`` at a time: a batch whose lines share their keys
is folded column by column (``json_columns``); any other batch goes through
the loop here, which reads each line's values with one ``dict.get`` per
candidate key, checks each has the plain type the general path accepts
without conversion, takes its window from ``SecondWindows`` and adds it to
the folder's tally directly.

Anything else is handed, as the raw line, to the general path (the source's
parser, then ``WindowFolder.add_record``): a line that does not decode, a
nested or missing field, a string duration, an unknown level, a stack trace,
a record whose message should be mined. So the fast paths only ever take
lines whose outcome they can prove equal to the general one, and every
rejection reason but a timestamp out of range still comes from the general path.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from typing import Final

import orjson

from states.telemetry.fields import _LONGEST_DURATION_MS as LONGEST_DURATION_MS
from states.telemetry.fields import FieldError
from states.telemetry.folding import Tally, TimeBounds, WindowFolder
from states.telemetry.json_blocks import JsonBlocks, KeptShapes
from states.telemetry.json_columns import BATCH_LINES, JsonColumns
from states.telemetry.json_lines import JsonLinesParser
from states.telemetry.mapping import LEVEL_SPELLINGS, RecordBuilder, single_names
from states.telemetry.records import ERROR_LEVELS
from states.telemetry.second_windows import SecondWindows

GeneralPath = Callable[[bytes], None]
Getter = Callable[[Hashable], object]

# A target without candidate keys looks this up: JSON keys are strings, so it is never there.
_NO_KEY: Final[tuple[Hashable, ...]] = (object(),)


class JsonFastPath:
    """Folds plain JSON lines directly; hands every other line to the general path."""

    def __init__(self, parser: JsonLinesParser, names: dict[str, tuple[str, ...]]) -> None:
        self._parser = parser
        self._builder = parser.builder
        self._candidates = names
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

    def start(
        self,
        folder: WindowFolder,
        bounds: TimeBounds,
        rejected: Counter[str],
        general: GeneralPath,
        *,
        mine_severe: bool,
        kept: KeptShapes | None = None,
    ) -> JsonPoll:
        """Fold one poll's lines into ``folder``; ``mine_severe`` sends warning and error
        records to the general path (to mine their messages); ``kept``: the source's block
        shapes from its earlier polls (None: new ones)."""
        return JsonPoll(self, folder, bounds, rejected, general, mine_severe=mine_severe, kept=kept)

    @property
    def builder(self) -> RecordBuilder:
        """The source's field mapping."""
        return self._builder

    @property
    def candidates(self) -> dict[str, tuple[str, ...]]:
        """Each target's candidate keys, in order."""
        return self._candidates

    @property
    def max_bytes(self) -> int:
        """Lines longer than this are the general path's (rejected as too long)."""
        return self._parser.max_bytes

    def fold_lines(  # noqa: PLR0912, PLR0915  (one loop on purpose, see inside)
        self,
        lines: Sequence[bytes],
        folder: WindowFolder,
        seconds: SecondWindows,
        rejected: Counter[str],
        general: GeneralPath,
        *,
        mine_severe: bool,
    ) -> None:
        """Fold ``lines`` one by one: for batches the columns cannot take whole."""
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
        longest = LONGEST_DURATION_MS
        max_duration = longest / unit_ms  # coerce_duration_ms's own bound for floats
        iso_first, timestamp = self._iso_first, self._builder.timestamp
        window_s, window_of = folder.window_s, seconds.window_of
        oldest, latest = seconds.bounds.oldest, seconds.bounds.latest
        tallies, max_bytes = folder.tallies, self._parser.max_bytes
        loads, decode_error = orjson.loads, orjson.JSONDecodeError
        any_too_long = max(map(len, lines), default=0) > max_bytes
        folded = 0
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
                    duration = duration * unit_ms + 0.0  # a negative zero is zero
                elif type(duration) is int and 0.0 <= float(duration) * unit_ms <= longest:
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
            bucket = window_of(moment) if iso_first and type(moment) is str else None
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
            tally_key = (component, instance or "", bucket, version or "", operation or "")
            tally = tallies.get(tally_key)
            if tally is None:
                tally = tallies[tally_key] = Tally()
            tally.count += 1
            if error:
                tally.errors += 1
            if duration is not None:
                tally.durations.append(duration)
            folded += 1
        folder.records += folded


class JsonPoll:
    """One poll of one JSON source: lines fed block by block, batch by batch."""

    def __init__(
        self,
        fast: JsonFastPath,
        folder: WindowFolder,
        bounds: TimeBounds,
        rejected: Counter[str],
        general: GeneralPath,
        *,
        mine_severe: bool,
        kept: KeptShapes | None = None,
    ) -> None:
        self._fast, self._folder, self._rejected, self._general = fast, folder, rejected, general
        self._mine_severe = mine_severe
        self._seconds = SecondWindows(fast.builder.timestamp, folder.window_s, bounds)
        self._columns = JsonColumns(
            fast.candidates, fast.builder, folder, self._seconds, mine_severe=mine_severe
        )
        rules = fast.builder.rules
        self._blocks = JsonBlocks(
            fast.candidates,
            self._columns,
            fast.max_bytes,
            LONGEST_DURATION_MS / rules.duration_unit_ms,
            kept,
        )

    def feed(self, lines: Sequence[bytes]) -> None:
        """Fold a block of lines: decoded whole where the typed decoder takes them, the rest
        (in order) by batches."""
        self._blocks.feed(lines, self._rejected, self._general, self.feed_batches)

    def feed_batches(self, lines: Sequence[bytes]) -> None:
        """Fold these lines: batches of one shape by columns, the others line by line."""
        max_bytes = self._fast.max_bytes
        any_too_long = max(map(len, lines), default=0) > max_bytes
        columns, rejected, general = self._columns, self._rejected, self._general
        for start in range(0, len(lines), BATCH_LINES):
            batch = lines[start : start + BATCH_LINES]
            too_long = any_too_long and max(map(len, batch)) > max_bytes
            if too_long or not columns.fold(batch, rejected, general):
                self._fast.fold_lines(
                    batch,
                    self._folder,
                    self._seconds,
                    rejected,
                    general,
                    mine_severe=self._mine_severe,
                )

    def finish(self) -> None:
        """Hand what the columns grouped to the folder."""
        self._columns.finish()


def _first(get: Getter, keys: Sequence[Hashable]) -> object:
    """The first non-null value among ``keys``, as ``mapping.lookup`` reads flat paths."""
    for key in keys:
        value = get(key)
        if value is not None:
            return value
    return None
