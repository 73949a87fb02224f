"""logfmt lines (``ts=... level=info component=catalog duration=230ms msg="..."``).

Go and Heroku-style services log ``key=value`` pairs; values may be quoted
with backslash escapes, and a bare key means ``true``. The pairs are mapped to
a record by the same builder as JSON lines, with flat (undotted) keys.
"""

from __future__ import annotations

import re

from states.telemetry import fields
from states.telemetry.fields import Rejection
from states.telemetry.mapping import RecordBuilder
from states.telemetry.records import Record

BAD_LOGFMT = "bad_logfmt"

_PAIR = re.compile(r'\s*([^\s="]+)(?:=(?:"((?:[^"\\]|\\.)*)"|([^\s"]*)))?(?=\s|$)')
_ESCAPE = re.compile(r"\\(.)")
_ESCAPED = {"n": "\n", "t": "\t", "r": "\r"}


def split_pairs(text: str) -> dict[str, str] | None:
    """Key/value pairs of one logfmt line, or None when the line is not logfmt."""
    pairs: dict[str, str] = {}
    position, end = 0, len(text.rstrip())
    while position < end:
        match = _PAIR.match(text, position)
        if match is None:
            return None
        key, quoted, plain = match.groups()
        if quoted is not None:
            pairs[key] = _ESCAPE.sub(lambda m: _ESCAPED.get(m.group(1), m.group(1)), quoted)
        else:
            pairs[key] = "true" if plain is None else plain
        position = match.end()
    return pairs


class LogfmtParser:
    """Parses one logfmt line into a record."""

    def __init__(self, builder: RecordBuilder, max_bytes: int) -> None:
        self._builder = builder
        self._max_bytes = max_bytes

    def parse(self, raw: bytes) -> Record | Rejection:
        """One record, or the reason this line is not one."""
        text = fields.decode_line(raw, self._max_bytes)
        if isinstance(text, Rejection):
            return text
        pairs = split_pairs(text)
        if not pairs:
            return Rejection(BAD_LOGFMT, "not a sequence of key=value pairs")
        return self._builder.build(pairs)
