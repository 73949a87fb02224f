"""Which route JSON lines take through ingestion, on the benchmark's lines and on a realistic mix.

JSON lines are folded by the typed block decoder (``json_blocks``) unless it
refuses them; refused lines go to the batch path (``json_columns`` and the
line loop), and lines neither can vouch for to the general parser. This
counts, for a log, the share of lines each route folded, by feeding it
through ``LineFolding`` as a poll does (no database), so the benchmark can
say how much of the input its figures speak for.

``mixed_json_line`` writes lines as services write them, varied: events
without a duration (20%), an extra ``request_id`` key (10%), a nested
``http`` object (2%), explicit nulls (5%), integer durations (3%), warnings
(1%, mined), errors with a Python stack (0.5%), and truncated lines (0.05%).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from states.telemetry.folding import TimeBounds, WindowFolder
from states.telemetry.formats import FormatSpec, make_parser
from states.telemetry.json_blocks import JsonBlocks
from states.telemetry.json_ingest import JsonPoll
from states.telemetry.line_folding import LineFolding
from states.telemetry.tailing import NewLines
from states.telemetry.window_templates import SourceTemplates

COMPONENTS = ("catalog", "checkout", "search", "auth", "cart")
STACK = (
    "Traceback (most recent call last):\n"
    '  File "shop/catalog.py", line 42, in lookup\n'
    "    raise LookupError(key)\n"
    "LookupError: item"
)


def mixed_json_line(at: datetime, i: int, rng: random.Random) -> str:
    """One line of a realistic, varied JSON log (see the module)."""
    record: dict[str, Any] = {
        "ts": at.isoformat(timespec="milliseconds"),
        "level": "info",
        "component": COMPONENTS[i % len(COMPONENTS)],
        "operation": ("GET /items", "POST /cart", "GET /search")[i % 3],
        "duration_ms": round(rng.lognormvariate(2.5, 0.5), 3),
        "status": 200,
        "message": "served",
        "version": "1.4.2",
        "instance": f"web-{i % 4 + 1}",
    }
    draw = rng.random()
    if draw < 0.005:
        record.update(level="error", status=500, message="lookup failed", stack=STACK)
    elif draw < 0.015:
        record.update(level="warn", message=f"slow upstream after {rng.randint(100, 900)} ms")
    if rng.random() < 0.2:
        del record["duration_ms"], record["status"]
        record["message"] = "cache refreshed"
    elif rng.random() < 0.03:
        record["duration_ms"] = rng.randint(1, 400)
    if rng.random() < 0.1:
        record["request_id"] = f"{rng.getrandbits(64):016x}"
    if rng.random() < 0.02:
        record["http"] = {"method": "GET", "path": f"/items/{rng.randint(1, 999)}"}
    if rng.random() < 0.05:
        record["user"] = None
    line = json.dumps(record)
    return line[: len(line) // 2] if rng.random() < 0.0005 else line


def write_mixed_log(path: Path, n: int, end: datetime, seed: int = 11) -> None:
    """``n`` mixed lines over the hour up to ``end``."""
    rng = random.Random(seed)
    step = 3600.0 / max(n, 1)
    start = end - timedelta(hours=1)
    with path.open("w") as handle:
        for i in range(n):
            handle.write(mixed_json_line(start + timedelta(seconds=i * step), i, rng) + "\n")


@contextmanager
def _counting(routes: Counter[str]) -> Iterator[None]:
    """Count the lines the block decoder is fed, hands to the batches, and the parser gets."""
    feed_blocks, feed_batches = JsonBlocks.feed, JsonPoll.feed_batches
    general = LineFolding._general

    def blocks(self: JsonBlocks, lines: Sequence[bytes], *args: Any) -> None:
        routes["all"] += len(lines)
        feed_blocks(self, lines, *args)

    def batches(self: JsonPoll, lines: Sequence[bytes]) -> None:
        routes["batches"] += len(lines)
        routes["inside"] += 1
        try:
            feed_batches(self, lines)
        finally:
            routes["inside"] -= 1

    def parser(self: LineFolding, raw: bytes) -> None:
        routes["parser from batches" if routes["inside"] else "parser from blocks"] += 1
        general(self, raw)

    JsonBlocks.feed, JsonPoll.feed_batches = blocks, batches  # type: ignore[method-assign,assignment]
    LineFolding._general = parser  # type: ignore[method-assign]
    try:
        yield
    finally:
        JsonBlocks.feed, JsonPoll.feed_batches = feed_blocks, feed_batches  # type: ignore[method-assign]
        LineFolding._general = general  # type: ignore[method-assign]


def route_shares(log: Path, now: datetime) -> dict[str, float]:
    """The share of ``log``'s lines folded by the block decoder, by the batch path (without the
    parser) and by the general parser, as one poll folds them."""
    spec = FormatSpec()
    bounds = TimeBounds(oldest=now - timedelta(days=7), latest=now + timedelta(minutes=5))
    routes: Counter[str] = Counter()
    with _counting(routes):
        folding = LineFolding(
            spec,
            make_parser(spec),
            WindowFolder(60.0),
            bounds,
            SourceTemplates.restored("app", "json", None),
        )
        for block in NewLines(log, None, max_bytes=1 << 40, max_line=1 << 20):
            folding.feed(block)
        folding.finish()
    total = routes["all"] or 1
    from_blocks, from_batches = routes["parser from blocks"], routes["parser from batches"]
    return {
        "block_decoder": round((total - routes["batches"] - from_blocks) / total, 4),
        "batches": round((routes["batches"] - from_batches) / total, 4),
        "general_parser": round((from_blocks + from_batches) / total, 4),
    }
