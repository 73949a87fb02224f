"""One well-formed line of every log format, shared by the property tests and the fuzz run.

Both start from good input and break it, so they must agree on what good input
is; a format added to the parsers gets its sample here once.
"""

from __future__ import annotations

import json

from states.telemetry.formats import FormatKind

FORMAT_KINDS: tuple[FormatKind, ...] = (
    "json",
    "logfmt",
    "regex",
    "nginx",
    "apache",
    "syslog",
    "serilog",
    "conductor",
)
GOOD_JSON: dict[str, object] = {
    "ts": "2026-11-24T07:30:00Z",
    "component": "catalog",
    "operation": "GET /items/{id}",
    "duration_ms": 12.5,
    "status": 200,
    "level": "info",
    "msg": "served",
    "version": "abc1234",
    "instance": "web-1",
    "stack": 'Traceback (most recent call last):\n  File "/srv/app/shop/catalog.py", line 42, in lookup',
}
GOOD_LINES: dict[str, list[bytes]] = {
    "json": [json.dumps(GOOD_JSON).encode()],
    "logfmt": [
        b'ts=2026-11-24T07:30:00Z level=error component=catalog operation="GET /x" '
        b"duration=12ms status=500 msg=boom version=abc1234 instance=web-1"
    ],
    "regex": [b"2026-11-24T07:30:00Z catalog 12.5 200 served"],
    "nginx": [
        b'10.0.0.1 - - [24/Nov/2026:07:30:00 +0100] "GET /catalog/items/42 HTTP/1.1" 200 512 '
        b'"-" "curl/8" 0.012'
    ],
    "apache": [
        b'10.0.0.1 - - [24/Nov/2026:07:30:00 +0100] "GET /catalog/items/42 HTTP/1.1" 200 512 '
        b'"-" "curl/8" 12000'
    ],
    "syslog": [
        b"<13>1 2026-11-24T07:30:00.123Z web-1 catalog 123 GET - served",
        b"<13>Nov 24 07:30:00 web-1 catalog[123]: served",
    ],
    "serilog": [
        b"[2026-11-24 07:30:00.123 -05:00] [INF] Shop.Catalog: "
        b"HTTP GET /catalog/items/42 responded 200 in 12.3456 ms"
    ],
    "conductor": [
        b'{"event": "beat-started", "request_id": "r-1", "sequence": "checkout", '
        b'"beat": "pay", "ts": "2026-11-24T07:30:00Z"}',
        b"2026-11-24T07:30:01Z beat-completed request_id=r-1 sequence=checkout beat=pay",
        b'2026-11-24T07:30:02Z beat-failed request_id=r-2 sequence=checkout beat=pay error="no"',
    ],
}
# The ``regex`` sample's pattern: named groups for the fields a record needs.
REGEX_PATTERN = (
    r"(?P<timestamp>\S+) (?P<component>\S+) (?P<duration>\S+) (?P<status>\S+) (?P<message>.*)"
)
