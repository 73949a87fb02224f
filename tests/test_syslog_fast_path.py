"""Syslog lines folded by the hot path give exactly what the joiner and the parser give.

In a block whose lines all start with a priority, every line but the last is
a whole record, parsed by one regular expression for the common RFC 3164
shape with an ISO timestamp and folded without a ``Record``. These tests feed
the same lines, cut into blocks in different places, to the hot path and to
the general one (``MultilineParser``, the parser, ``add_record``), with
template mining on, and require the same windows, counts, templates (new and
counted), frames, rejections and miner state: lines of other shapes, stack
traces after a line (also at the start of the next block), BSD and RFC 5424
lines, odd priorities and app names, bad bytes and times out of range.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.ingest import log_lines
from states.telemetry import line_folding
from states.telemetry.folding import TimeBounds, WindowFolder
from states.telemetry.formats import FormatSpec, make_parser
from states.telemetry.window_templates import SourceTemplates
from tests.support.json_paths import NOW

BOUNDS = TimeBounds(oldest=NOW - timedelta(hours=2), latest=NOW + timedelta(minutes=5))
ODD_LINES = [
    b"",
    b"   ",
    b"not syslog at all",
    b"<14>1 2026-03-01T11:59:30.5Z web-1 catalog 42 GET - Accepted connection",
    b"<14>Mar  1 11:59:30 web-1 catalog[42]: Accepted connection from 10.0.0.1:443",
    b"2026-03-01T11:59:31.25Z web-1 catalog[42]: no priority here",
    b"<192>2026-03-01T11:59:31.25Z web-1 catalog[42]: priority over 191",
    b"<14>2026-03-01T11:59:31.25Z web-1 -: nil app name",
    b"<14>2026-03-01T11:59:31.25Z - catalog: nil host, no pid",
    b"<14>2026-03-01T11:59:31.25Z web-1 catalog[42]:",
    b"<14>2026-03-01T11:59:31.25Z web-1 catalog[42]:no space",
    b"<14>2026-13-01T11:59:31.25Z web-1 catalog[42]: month 13",
    b"<14>2026-03-01T11:59:31.25Z\tweb-1 catalog[42]: a tab",
    b"<14>2026-03-01T13:59:31.25Z web-1 catalog[42]: from the future",
    b"<14>2026-03-01T09:59:31.25Z web-1 catalog[42]: too old",
    b"<14>2026-03-01T11:59:31Z web-1 catalog[42]: whole second",
    b"<14>2026-03-01T11:59:31.25+01:00 web-1 catalog[42]: another zone",
    b"<11>2026-03-01T11:59:31.25Z web-2 cart[7]: Payment 8d2f declined",
    b"<14>2026-03-01T11:59:31.25Z web-1 catalog[42]: caf\xc3\xa9 ok",
    b"<14>2026-03-01T11:59:31.25Z web-1 catalog[42]: bad \xff byte",
    b"<14>2026-03-01T11:59:31.25Z web-1 catalog[42]: ends in CR\r",
    b"<\xd9\xa1\xd9\xa4>2026-03-01T11:59:31.25Z web-1 catalog[42]: arabic digits",
    b"<14>2026-03-01T11:59:31.25Z web-1 catalog[42]: " + b"x" * 400,
]
TRACE = [
    b"<11>2026-03-01T11:59:32.5Z web-1 catalog[42]: request failed",
    b"Traceback (most recent call last):",
    b'  File "shop/catalog.py", line 12, in search',
    b"    return index[key]",
    b"KeyError: 'id'",
]


def generated(n: int) -> list[bytes]:
    end = NOW - timedelta(minutes=1)
    return [raw.encode() for raw in log_lines("syslog", n, end)]


def fold(lines: list[bytes], cuts: list[int], *, fast: bool) -> tuple[Any, Counter[str], Any]:
    spec = FormatSpec(kind="syslog", max_line_bytes=300)
    mining = SourceTemplates.restored("app", "syslog", None)
    folder = WindowFolder(60.0)
    with pytest.MonkeyPatch.context() as patch:
        if not fast:  # no parser is a SyslogParser to the folding: the general path only
            patch.setattr(line_folding, "SyslogParser", type("Nothing", (), {}))
        folding = line_folding.LineFolding(spec, make_parser(spec), folder, BOUNDS, mining)
        for start, end in zip([0, *cuts], [*cuts, len(lines)], strict=True):
            folding.feed(lines[start:end])
        folding.finish()
    parts = {
        key: (p.count, p.errors, dict(p.templates), p.new_templates, p.frames, dict(p.versions))
        for key, p in folder.partials().items()
    }
    return parts, folding.rejected, (folder.records, mining.miner.to_state())


def assert_same(lines: list[bytes], cuts: list[int]) -> None:
    assert fold(lines, cuts, fast=True) == fold(lines, cuts, fast=False)


def test_generated_syslog_folds_as_the_general_path() -> None:
    lines = generated(3000)
    assert_same(lines, [1000, 2000])
    _, rejected, (records, state) = fold(lines, [1000, 2000], fast=True)
    assert records == 3000 and rejected == {} and state["templates"]


@pytest.mark.parametrize("odd", range(len(ODD_LINES)))
def test_a_block_with_one_odd_line_folds_as_the_general_path(odd: int) -> None:
    lines = generated(300)
    lines[150:150] = [ODD_LINES[odd]]
    assert_same(lines, [100, 200])


def test_a_trace_after_the_last_line_of_a_block_joins_it_from_the_next_block() -> None:
    lines = generated(200) + TRACE + generated(50)
    for cut in (199, 200, 201, 203):
        assert_same(lines, [cut])
    parts, _, _ = fold(lines, [201], fast=True)
    assert any(frames for *_, frames, _ in parts.values())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), n=st.integers(1, 400))
def test_generated_blocks_with_odd_lines_fold_as_the_general_path(seed: int, n: int) -> None:
    rng = random.Random(seed)
    lines = generated(n)
    for _ in range(rng.randint(0, 6)):
        extra = rng.choice([[rng.choice(ODD_LINES)], TRACE])
        at = rng.randint(0, len(lines))
        lines[at:at] = extra
    cuts = (
        sorted(rng.sample(range(1, len(lines)), min(3, len(lines) - 1))) if len(lines) > 1 else []
    )
    assert_same(lines, cuts)
