"""The window of an ISO timestamp, parsed once per second of a poll instead of once per line.

A busy log writes hundreds of lines per second, and each line's window
needs only its second: ``2026-03-01T11:50:01.123+00:00`` lies in the window
of ``2026-03-01T11:50:01+00:00`` when the window width is a whole number of
seconds and the zone offset too. So the first line of a second is parsed in
full by the source's own timestamp code, which also checks that the whole
second lies within the accepted time range (oldest record .. now plus the
tolerance) and that every fraction of it falls in one window; only then is
that second's window remembered for the poll, under the first 19 characters
(``head``) in a table per zone suffix. A timestamp without a fraction is
remembered under its exact text, in a table of its own, since it speaks for
that instant only. A second at the edge of the range, a fractional window or
an odd format is not remembered: the caller parses that line in full.

``window_of`` serves one timestamp (the line-by-line loops); ``windows_of``
a whole column of them (a batch), which first checks with a few string
operations over the joined column that every text has the same shape as
the first (same length, a dot after the head, ASCII digits, the same zone),
so that one dictionary lookup per text remains, or none when the column
lies within one minute of one window.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from operator import itemgetter
from typing import Final

from states.telemetry.fields import FieldError
from states.telemetry.folding import TimeBounds

Timestamp = Callable[[object], datetime]

_ONE_SECOND: Final = timedelta(seconds=1)
_DIGITS: Final = "0123456789"
_HEAD_CHARS: Final = 19  # "2026-03-01T11:50:01"
_MINUTE_CHARS: Final = 17  # "2026-03-01T11:50:"
_SEPARATOR: Final = "|"  # between the texts joined for ``_all_shaped``; any character would do
_SEPARATOR_BYTE: Final = _SEPARATOR.encode()
_head_of = itemgetter(slice(0, _HEAD_CHARS))
_SECOND_HEAD = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}", re.ASCII)


class SecondWindows:
    """The window of each second of ISO timestamps seen in one poll, when it is provable."""

    def __init__(self, timestamp: Timestamp, window_s: float, bounds: TimeBounds) -> None:
        self.exact: dict[str, int] = {}  # by the timestamp's full text
        self.by_zone: dict[str, dict[str, int]] = {}  # zone suffix -> head -> window
        self._timestamp = timestamp
        self._window_s = window_s
        self._whole_window = float(window_s).is_integer()
        self.bounds = bounds

    def window_of(self, text: str) -> int | None:
        """The window of one ISO text, or None when only a full parse can tell."""
        head, dot, rest = text.partition(".")
        if dot and len(head) == _HEAD_CHARS:
            zone = rest.lstrip(_DIGITS)
            if len(zone) < len(rest):
                table = self.by_zone.get(zone)
                bucket = None if table is None else table.get(head)
                return self._second_miss(text, head, zone) if bucket is None else bucket
        bucket = self.exact.get(text)
        return self._exact_miss(text) if bucket is None else bucket

    def windows_of(self, texts: Sequence[str]) -> int | list[int | None] | None:
        """The windows of a column of ISO texts shaped like the first, or None if they are not
        (or are not all strings); one int when every text provably lies in that one window.

        In a list, None marks a text whose second is not provable (see the
        module): the caller parses that one in full. Each second not seen yet
        is learned first, from one of its texts, so the others are looked up
        like every known one (not one by one after a miss). The one-window answer
        needs no lookup per text: texts of one shape sort as their instants
        do, so when the earliest and the latest share their minute (and their
        window), so does every text between them (whose seconds are digits).
        """
        try:
            shape = _fraction_shape(texts[0])
            if shape is None or not _all_shaped(texts, *shape):
                return None
        except (TypeError, AttributeError):  # a text that is not one
            return None
        zone = shape[1]
        first, last = min(texts), max(texts)
        if first[:_MINUTE_CHARS] == last[:_MINUTE_CHARS]:
            window = self._known_second(first, zone)
            if window is not None and window == self._known_second(last, zone):
                return window
        heads = list(map(_head_of, texts))
        table = self.by_zone.setdefault(zone, {})
        if not table.keys() >= set(heads):  # a second not seen yet: learned from one text of it
            for head, text in dict(zip(heads, texts, strict=True)).items():
                if head not in table:
                    self._second_miss(text, head, zone)
        windows: list[int | None] = list(map(table.get, heads))
        if None in windows:
            for i, window in enumerate(windows):
                if window is None:
                    windows[i] = self._known_second(texts[i], zone)
        return windows

    def _known_second(self, text: str, zone: str) -> int | None:
        head = text[:_HEAD_CHARS]
        window = self.by_zone.get(zone, {}).get(head)
        return self._second_miss(text, head, zone) if window is None else window

    def _exact_miss(self, text: str) -> int | None:
        moment = self._parsed(text)
        if moment is None or not self.bounds.oldest <= moment <= self.bounds.latest:
            return None
        bucket = self.exact[text] = math.floor(moment.timestamp() / self._window_s)
        return bucket

    def _second_miss(self, text: str, head: str, zone: str) -> int | None:
        """Parse ``text``; remember its second's window if every fraction shares it."""
        if not self._whole_window or _SECOND_HEAD.fullmatch(head) is None:
            return None
        moment, second = self._parsed(text), self._parsed(head + zone)
        if moment is None or second is None or second.microsecond:
            return None
        if not timedelta(0) <= moment - second < _ONE_SECOND:
            return None
        bounds = self.bounds
        if second < bounds.oldest or second + _ONE_SECOND > bounds.latest:
            return None
        bucket = math.floor(second.timestamp() / self._window_s)
        self.by_zone.setdefault(zone, {})[head] = bucket
        return bucket

    def _parsed(self, text: str) -> datetime | None:
        try:
            return self._timestamp(text)
        except FieldError:
            return None


def _fraction_shape(text: str) -> tuple[int, str] | None:
    """(digits in the fraction, zone suffix) of ``head.digits zone``, or None."""
    head, dot, rest = text.partition(".")
    zone = rest.lstrip(_DIGITS)
    if not dot or len(head) != _HEAD_CHARS or len(zone) == len(rest):
        return None
    return len(rest) - len(zone), zone


def _all_shaped(texts: Sequence[str], digits: int, zone: str) -> bool:
    """Whether every text is a head with digits for seconds, a dot, ``digits`` ASCII digits and
    ``zone`` (False too if a text holds the separator or any other character that is not
    ASCII: its lines are then parsed in full).

    Checked column by column over the texts joined by a separator: if the
    separator occurs only ``len(texts) - 1`` times, every one of them was
    joined in, and if those all lie ``width + 1`` apart (the joined text as
    long as that makes it) every text is ``width`` long, so
    ``joined[j::width + 1]`` is the j-th character of every text. Counting
    the separator costs half as much as taking every text's length, and
    ``bytes.isdigit`` a seventh of ``str.isdigit``.
    """
    width = _HEAD_CHARS + 1 + digits + len(zone)
    n, stride = len(texts), width + 1
    joined = _SEPARATOR.join(texts)
    if not joined.isascii() or len(joined) != stride * n - 1:
        return False
    if joined.count(_SEPARATOR) != n - 1:
        return False
    data = joined.encode()
    if data[width::stride] != _SEPARATOR_BYTE * (n - 1) or data[_HEAD_CHARS::stride] != b"." * n:
        return False
    # the seconds and the fraction: ASCII digits (the rest of the head is vetted by parsing)
    for j in (
        *range(_MINUTE_CHARS, _HEAD_CHARS),
        *range(_HEAD_CHARS + 1, _HEAD_CHARS + 1 + digits),
    ):
        if not data[j::stride].isdigit():
            return False
    start = _HEAD_CHARS + 1 + digits
    return all(data[start + k :: stride] == char.encode() * n for k, char in enumerate(zone))
