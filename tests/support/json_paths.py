"""The JSON-lines fast paths beside the path they replaced, for tests that compare the two.

``general_path`` is what ingestion did before any fast path (records from
the parser, then ``windows.fold``); ``fast_path`` is what it does now
(``line_folding.fold_lines``): blocks decoded whole (``json_blocks``), or,
within ``blocks_off()``, batches only (the route refused lines take).
``assert_same`` requires, on both routes, the same windows, counts, samples
(in the same, ascending, order; sketched as the fold would sketch them),
versions, frames, operations and rejections.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from states.telemetry import ingest, line_folding
from states.telemetry.folding import TimeBounds, WindowFolder
from states.telemetry.formats import FormatSpec, make_parser
from states.telemetry.json_blocks import JsonBlocks
from states.telemetry.sketches import sketch_of
from states.telemetry.windows import PartialWindow, fold

NOW = datetime(2026, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC)
RETENTION = timedelta(minutes=10)
BOUNDS = TimeBounds(oldest=NOW - RETENTION, latest=NOW + ingest.FUTURE_TOLERANCE)


def general_path(
    spec: FormatSpec, lines: list[bytes], window_s: float
) -> tuple[dict[Any, PartialWindow], Counter[str], int]:
    """What ingestion did before the fast path: records first, then ``windows.fold``."""
    parser = make_parser(spec)
    records, rejected = line_folding.parse_lines(spec, parser, lines, BOUNDS.latest, BOUNDS.oldest)
    return fold(records, window_s), rejected, len(records)


@contextmanager
def blocks_off() -> Iterator[None]:
    """JSON lines folded by batches and line by line only, as lines the decoder refuses are."""

    def existing_path(
        self: JsonBlocks, lines: Any, rejected: Any, general: Any, fallback: Any
    ) -> None:
        fallback(lines)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(JsonBlocks, "feed", existing_path)
        yield


def fast_path(
    spec: FormatSpec, lines: list[bytes], window_s: float, *, blocks: bool = True
) -> tuple[dict[Any, PartialWindow], Counter[str], int]:
    folder = WindowFolder(window_s)
    with nullcontext() if blocks else blocks_off():
        rejected = line_folding.fold_lines(spec, make_parser(spec), lines, folder, BOUNDS, None)
    return folder.partials(), rejected, folder.records


def comparable(part: PartialWindow) -> dict[str, Any]:
    """A window's content; samples as stored, sketched as the fold would sketch them."""
    samples = list(part.samples)
    sketch = part.sketch.to_state() if part.sketch is not None else None
    return {
        "count": part.count,
        "errors": part.errors,
        "samples": samples if sketch is None else sketch,
        "versions": dict(part.versions),
        "frames": part.frames,
        "operations": part.operations,
    }


def reference(part: PartialWindow, threshold: int = 1024) -> dict[str, Any]:
    found = comparable(part)
    if len(part.samples) > threshold:
        found["samples"] = sketch_of(part.samples).to_state()
    return found


def assert_same(spec: FormatSpec, lines: list[bytes], window_s: float = 60.0) -> None:
    slow_parts, slow_rejected, slow_records = general_path(spec, lines, window_s)
    expected = {k: reference(p) for k, p in slow_parts.items()}
    for blocks in (True, False):
        fast_parts, fast_rejected, fast_records = fast_path(spec, lines, window_s, blocks=blocks)
        assert fast_rejected == slow_rejected
        assert fast_records == slow_records
        assert {k: comparable(p) for k, p in fast_parts.items()} == expected


def line(**fields: Any) -> bytes:
    record: dict[str, Any] = {
        "ts": (NOW - timedelta(seconds=30)).isoformat(),
        "component": "catalog",
        "operation": "GET /x",
        "duration_ms": 12.5,
        "status": 200,
        "level": "info",
        "message": "served",
        "version": "abc1234",
        "instance": "web-1",
    }
    record.update(fields)
    return json.dumps({k: v for k, v in record.items() if v is not DROP}).encode()


DROP = object()
