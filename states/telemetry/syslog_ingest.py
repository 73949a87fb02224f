"""The syslog hot path: fold RFC 3164 lines with an ISO timestamp without building a ``Record``.

Syslog is a text format: a line may be followed by the lines of a stack
trace, so the general path sends every line through ``MultilineParser``,
then the parser's two regular expressions, then ``WindowFolder.add_record``.
A line that starts with ``<`` (a priority) can never continue a trace
(``stacktraces.is_continuation``), so in a block whose lines all start
with one, every line but the last is a whole record: the one pending from
the block before is complete, and the last waits, in the joiner, for the
lines after it. Those whole records are parsed by one regular expression
for the common shape (``<PRI>2026-03-01T11:50:01.123+00:00 host app[pid]:
message``), which matches exactly the lines the general RFC 3164 one would
read with this shape (and no RFC 5424 line), with the same groups; the
window comes from ``SecondWindows``, the level from the priority (once per
value) and the message goes to the source's miner. Anything else (another
shape, invalid UTF-8, a priority over 191, a nil app name, a second that is
not provable, a new template) goes through the general path, line by line,
in order.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from itertools import repeat
from typing import Final

from states.telemetry import fields
from states.telemetry.fields import FieldError, Rejection
from states.telemetry.folding import Tally, TimeBounds, WindowFolder
from states.telemetry.formats import MultilineParser
from states.telemetry.records import ERROR_LEVELS, Record
from states.telemetry.second_windows import SecondWindows
from states.telemetry.syslog import NIL, SyslogParser, severity_level
from states.telemetry.window_templates import SourceTemplates

FoldResult = Callable[[Record | Rejection], None]
Severity = tuple[str, str, int]  # level, level noted for a new template, errors to count

_ISO_3164: Final = re.compile(
    r"<(\d{1,3})>(\d{4}-\d{2}-\d{2}T\S+) (\S+) ([^:\[\s]+)(?:\[[^\]]*\])?: ?(.*)"
)
_PRIORITY: Final = repeat(b"<")
_DIGITS: Final = "0123456789"
_HEAD: Final = 19  # "2026-03-01T11:50:01"


class SyslogPoll:
    """One poll of one syslog file: lines fed block by block through the joiner or the hot path."""

    def __init__(
        self,
        parser: SyslogParser,
        joined: MultilineParser,
        folder: WindowFolder,
        bounds: TimeBounds,
        mining: SourceTemplates | None,
        fold_result: FoldResult,
    ) -> None:
        self._parser, self._joined, self._folder = parser, joined, folder
        self._bounds, self._mining, self._fold_result = bounds, mining, fold_result
        zone = parser.rules.naive_zone
        self._timestamp: Callable[[object], datetime] = lambda text: fields.parse_timestamp(
            text, ("iso8601",), zone
        )
        self._seconds = SecondWindows(self._timestamp, folder.window_s, bounds)
        self._levels: dict[str, Severity] = {}  # by priority text, once valid

    def feed(self, lines: Sequence[bytes]) -> None:
        """Fold one block of lines; the last one waits in the joiner for what follows it."""
        if not lines:
            return
        if sum(map(bytes.startswith, lines, _PRIORITY)) < len(lines):
            self._through_joiner(lines)
            return
        for parsed in self._joined.flush():  # the next line starts a record: it is complete
            self._fold_result(parsed)
        self._fold_whole(lines[:-1])
        self._through_joiner(lines[-1:])

    def _through_joiner(self, lines: Sequence[bytes]) -> None:
        joined, fold_result = self._joined, self._fold_result
        for raw in lines:
            for parsed in joined.feed(raw):
                fold_result(parsed)

    def _general(self, head: bytes) -> None:
        """A whole one-line record through the parser, as the joiner would hand it over."""
        self._fold_result(self._parser.parse(head))

    def _fold_whole(self, lines: Sequence[bytes]) -> None:  # noqa: PLR0912, PLR0915  (one loop)
        """Fold lines that are each a whole record (one loop: a call per line costs ~3%)."""
        max_bytes, fullmatch = self._parser.max_bytes, _ISO_3164.fullmatch
        window_of, tallies, folder = self._seconds.window_of, self._folder.tallies, self._folder
        by_zone = self._seconds.by_zone  # the second's window, inline: a call costs ~3%
        default_component = self._parser.rules.component
        levels, mining, general = self._levels, self._mining, self._general
        latest, oldest = self._bounds.latest, self._bounds.oldest
        folded = 0
        for raw in lines:
            head = raw.rstrip(b"\r\n")
            if len(head) > max_bytes:
                general(head)
                continue
            try:
                match = fullmatch(head.decode("utf-8"))
            except UnicodeDecodeError:
                match = None
            if match is None:
                general(head)
                continue
            pri, stamp, host, app, message = match.groups()
            severity = levels.get(pri) or self._severity(pri)
            if severity is None or (app == NIL and default_component is None):
                general(head)
                continue
            head_, dot, rest = stamp.partition(".")
            zone = rest.lstrip(_DIGITS)
            table = (
                by_zone.get(zone) if dot and len(head_) == _HEAD and len(zone) < len(rest) else None
            )
            bucket = None if table is None else table.get(head_)
            if bucket is None:
                bucket = window_of(stamp)
            if bucket is None:
                try:
                    when = self._timestamp(stamp)
                except FieldError:
                    general(head)
                    continue
                if when > latest or when < oldest:
                    self._fold_result(self._record(when, app, host, severity[0], message))
                    continue
                bucket = math.floor(when.timestamp() / folder.window_s)
            hit = (
                None if mining is None or not message else mining.hit_message(message, severity[1])
            )
            if hit is not None and hit.is_new:  # rare: the folder keeps it in its window's extras
                record = self._record(self._timestamp(stamp), app, host, severity[0], message)
                folder.add_record(record, hit)
                continue
            component = app if app != NIL else (default_component or "")
            key = (component, "" if host == NIL else host, bucket, "", "")
            tally = tallies.get(key)
            if tally is None:
                tally = tallies[key] = Tally()
            tally.count += 1
            tally.errors += severity[2]
            if hit is not None:
                counts = tally.templates
                if counts is None:
                    counts = tally.templates = {}
                counts[hit.key] = counts.get(hit.key, 0) + 1
            folded += 1
        folder.records += folded

    def _severity(self, pri: str) -> Severity | None:
        """A priority's level, the level a new template notes, and 1 for an error (else 0)."""
        try:
            level = severity_level(pri)
        except FieldError:
            return None  # not remembered: the general path rejects the line
        error = level in ERROR_LEVELS
        severity = self._levels[pri] = (level, "error" if error else level, int(error))
        return severity

    def _record(self, when: datetime, app: str, host: str, level: str, message: str) -> Record:
        component = self._parser.rules.component if app == NIL else app
        return Record(
            timestamp=when,
            component=component or "",
            level=level,
            message=message,
            instance=None if host == NIL else host,
        )
