"""Batches of JSON lines folded by columns give exactly what the general path gives.

Lines the block decoder refuses (``json_blocks``), and every line within
``blocks_off()``, are folded ``json_columns.BATCH_LINES`` at a time, column by
column, when a batch's objects share their keys; ``assert_same`` runs both
routes. Each test builds batches of
that shape and spoils them in one way (a line that does not decode, a blank
line, a line ending in CR, a line over the limit, a category the fast path
must refuse, an object with a key too many or too few, timestamps across a
minute, an hour or zones), then requires the same windows, counts, samples,
versions, operations and rejections as records folded one by one. Mining goes
through both paths too: the fast path hands warnings and errors to the parser,
so the templates and the miner's state come out the same.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from states.telemetry import json_columns, line_folding
from states.telemetry.folding import WindowFolder
from states.telemetry.formats import FormatSpec, make_parser
from states.telemetry.json_ingest import JsonFastPath
from states.telemetry.window_templates import SourceTemplates
from tests.support.json_paths import BOUNDS, DROP, NOW, assert_same, blocks_off, line

BATCH = json_columns.BATCH_LINES
RETENTION_EDGE = NOW - BOUNDS.oldest
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def uniform(n: int, start: int = 0, **fields: Any) -> list[bytes]:
    """``n`` lines of one shape, a few milliseconds apart, varied in their category values."""
    return [
        line(
            **{
                "ts": (NOW - timedelta(seconds=40, milliseconds=-7 * (start + i))).isoformat(),
                "component": ("catalog", "cart")[i % 2],
                "instance": f"web-{i % 3}",
                "operation": ("GET /x", "POST /y", "GET /z")[i % 3],
                "duration_ms": 0.5 + (start + i) % 97 * 1.25,
                **fields,
            }
        )
        for i in range(n)
    ]


def spoiled(bad: bytes | list[bytes], at: int = BATCH // 2, n: int = 3 * BATCH) -> list[bytes]:
    lines = uniform(n)
    lines[at : at + 1] = bad if isinstance(bad, list) else [bad]
    return lines


# --- one batch, spoiled one way ----------------------------------------------------------------


def test_uniform_batches_are_folded_by_columns() -> None:
    lines = uniform(3 * BATCH)
    folder = WindowFolder(60.0)
    columns_used = Counter[bool]()
    real = json_columns.JsonColumns.fold

    def counting(self: json_columns.JsonColumns, *args: Any) -> bool:
        folded = real(self, *args)
        columns_used[folded] += 1
        return folded

    with blocks_off(), pytest.MonkeyPatch.context() as patch:
        patch.setattr(json_columns.JsonColumns, "fold", counting)
        line_folding.fold_lines(
            FormatSpec(), make_parser(FormatSpec()), lines, folder, BOUNDS, None
        )
    assert columns_used == {True: 3}
    assert folder.records == 3 * BATCH
    assert_same(FormatSpec(), lines)


@pytest.mark.parametrize(
    "bad",
    [
        b"{not json",
        b"",
        b"   ",
        b"[1, 2]",
        b'"text"',
        b"\xff\xfe",
        b"{}",
        line(version=DROP),
        line(extra=1),
        line(stack='  File "a.py", line 1, in f'),
        line(exc_info=None),
        line(instance=["web-1"]),
        line(component={"name": "x"}),
        line(status=True),
        line(status=1),
        line(status=500),
        line(level="warn"),
        line(level="ERROR"),
        line(duration_ms="12ms"),
        line(duration_ms=-1.0),
        line(duration_ms=None),
        line(duration_ms=7),
        line(ts=None, timestamp=(NOW - timedelta(seconds=5)).isoformat()),
        line(ts=1_772_366_370),
        line(ts="yesterday"),
        line(ts=(NOW + timedelta(hours=1)).isoformat()),
        line(ts=(NOW - timedelta(hours=1)).isoformat()),
        line(ts=(NOW + timedelta(hours=1)).isoformat(), component=""),
        line(component=None, service="cart"),
        line(operation=None, op="GET /q"),
    ],
    ids=repr,
)
def test_a_batch_with_one_odd_line_folds_as_the_general_path(bad: bytes) -> None:
    assert_same(FormatSpec(), spoiled(bad))


def test_lines_ending_in_cr_fold_as_the_general_path() -> None:
    assert_same(FormatSpec(), [raw + b"\r" for raw in uniform(2 * BATCH)])


def test_a_line_over_the_parsers_limit_in_a_batch_is_counted_as_too_long() -> None:
    spec = FormatSpec(max_line_bytes=400)
    lines = spoiled(line(message="m" * 500))
    assert_same(spec, lines)
    _, rejected = _fold(spec, lines)
    assert rejected == {"too_long": 1}


def test_a_malformed_line_is_counted_once_and_its_batch_still_folded() -> None:
    lines = spoiled(b'{"ts": ')
    folder, rejected = _fold(FormatSpec(), lines)
    assert rejected == {"not_json": 1}
    assert folder.records == len(lines) - 1


def test_every_line_of_a_batch_with_an_unhashable_category_is_folded_once() -> None:
    lines = spoiled(line(version=["v1"]), at=BATCH + BATCH // 2)
    folder, rejected = _fold(FormatSpec(), lines)
    assert rejected == {"bad_field": 1}
    assert folder.records == len(lines) - 1
    assert_same(FormatSpec(), lines)


@pytest.mark.parametrize("window_s", [60.0, 1.0, 0.5, 90.0, 3600.0])
def test_batches_across_seconds_minutes_and_windows_fold_as_the_general_path(
    window_s: float,
) -> None:
    # 4 ms apart over 30 s: batches across second, minute and window boundaries
    lines = [
        line(
            ts=(NOW - timedelta(seconds=45, milliseconds=-4 * i)).isoformat(),
            instance=f"web-{i % 2}",
            operation=("GET /x", "GET /y")[i % 2],
        )
        for i in range(8 * BATCH)
    ]
    assert_same(FormatSpec(), lines, window_s)


@pytest.mark.parametrize(
    "stamp",
    [
        lambda i: (NOW - timedelta(seconds=20, microseconds=-997 * i)).isoformat(),
        lambda i: (NOW - timedelta(seconds=20, microseconds=-997 * i)).isoformat(
            timespec="milliseconds"
        ),
        lambda i: (NOW - timedelta(seconds=20 - i)).replace(microsecond=0).isoformat(),
        lambda i: (
            (NOW - timedelta(seconds=20, milliseconds=-9 * i)).replace(tzinfo=None).isoformat()
        ),
        lambda i: (NOW - timedelta(seconds=20, milliseconds=-9 * i)).isoformat()[:-6] + "Z",
        lambda i: (
            (NOW - timedelta(minutes=2, milliseconds=-9 * i)).isoformat()[:-6]
            + ("+00:00", "+01:00")[i % 2]
        ),
        lambda i: (NOW - RETENTION_EDGE + timedelta(milliseconds=9 * i)).isoformat(),
        lambda i: (NOW + timedelta(minutes=5, milliseconds=-9 * i)).isoformat(),
    ],
    ids=["micro", "milli", "whole", "naive", "Z", "two zones", "oldest edge", "future edge"],
)
def test_timestamp_columns_of_every_shape_fold_as_the_general_path(
    stamp: Callable[[int], str],
) -> None:
    lines = [line(ts=stamp(i)) for i in range(2 * BATCH)]
    for spec in (FormatSpec(), FormatSpec(timezone="Europe/Paris")):
        assert_same(spec, lines)


@pytest.mark.parametrize(
    "spec",
    [
        FormatSpec(duration_unit="s"),
        FormatSpec(duration_unit="ns"),
        FormatSpec(fields={"duration": ["duration_ms", "latency"]}),
        FormatSpec(fields={"timestamp": ["when", "ts"]}),
        FormatSpec(component="shop", fields={"component": []}),
        FormatSpec(fields={"level": []}),
    ],
    ids=lambda spec: repr(spec.model_dump(exclude_defaults=True)),
)
def test_columns_under_other_mappings_fold_as_the_general_path(spec: FormatSpec) -> None:
    lines = uniform(2 * BATCH)
    lines += uniform(BATCH, start=2 * BATCH, duration_ms=DROP)
    lines += [line(duration_ms=i) for i in range(BATCH)]
    lines += [line(duration_ms=(i, float(i))[i % 2], status=None) for i in range(BATCH)]
    lines += [line(latency=3.5, duration_ms=None) for _ in range(BATCH)]
    assert_same(spec, lines)


def test_warnings_and_errors_are_mined_through_the_parser_as_before() -> None:
    lines = uniform(3 * BATCH)
    for i in range(5, len(lines), 37):
        lines[i] = line(level=("warn", "error")[i % 2], message=f"Disk {i} failed after {i} ms")
    lines[40] = line(status=503, message="Upstream db-1.internal:5432 marked unhealthy")
    fast, fast_rejected, fast_miner = _mined(lines, fast=True)
    slow, slow_rejected, slow_miner = _mined(lines, fast=False)
    assert fast_rejected == slow_rejected
    assert fast_miner.miner.to_state() == slow_miner.miner.to_state()
    assert {
        k: (p.count, p.errors, dict(p.templates), p.new_templates, p.operations)
        for k, p in fast.items()
    } == {
        k: (p.count, p.errors, dict(p.templates), p.new_templates, p.operations)
        for k, p in slow.items()
    }
    mined = len(range(5, len(lines), 37)) + 1
    assert sum(sum(p.templates.values()) for k, p in fast.items() if k[1] == "") == mined


# --- generated batches ---------------------------------------------------------------------------

_odd: dict[str, st.SearchStrategy[Any]] = {
    "ts": st.one_of(
        st.none(),
        st.integers(1_772_360_000, 1_772_370_000),
        st.sampled_from(["2026-03-01T11:59:30Z", "2026-03-01T11:59:30.5", "x"]),
    ),
    "component": st.one_of(st.sampled_from(["cart", ""]), st.none(), st.integers(0, 1)),
    "operation": st.one_of(st.sampled_from(["GET /x", ""]), st.none(), st.booleans()),
    "duration_ms": st.one_of(st.floats(allow_nan=False), st.integers(-5, 10**12), st.none()),
    "status": st.one_of(st.integers(-2, 1002), st.none(), st.booleans(), st.just(200.0)),
    "level": st.one_of(st.sampled_from(["INFO", "warn", "error", "weird"]), st.none()),
    "version": st.one_of(st.sampled_from(["v2", ""]), st.none(), st.just(["v"])),
    "instance": st.one_of(st.sampled_from(["web-2", ""]), st.none(), st.integers(0, 2)),
    "stack": st.one_of(st.none(), st.just('  File "a.py", line 1, in f')),
    "extra": st.just(1),
}


@st.composite
def spoiled_batches(draw: Callable[..., Any]) -> list[bytes]:
    lines = uniform(draw(st.integers(BATCH, 3 * BATCH)), start=draw(st.integers(0, 5000)))
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(lines) - 1))
        key = draw(st.sampled_from(sorted(_odd)))
        value = draw(_odd[key]) if draw(st.integers(0, 5)) else DROP
        lines[at] = line(**{key: value}) if draw(st.integers(0, 9)) else draw(st.binary(max_size=9))
    return lines


@PROPERTY
@given(lines=spoiled_batches(), window_s=st.sampled_from([60.0, 1.0, 2.5]))
def test_generated_batches_fold_as_the_general_path(lines: list[bytes], window_s: float) -> None:
    assert_same(FormatSpec(), lines, window_s)


# --- helpers ---------------------------------------------------------------------------------------


def _fold(spec: FormatSpec, lines: list[bytes]) -> tuple[WindowFolder, Counter[str]]:
    folder = WindowFolder(60.0)
    rejected = line_folding.fold_lines(spec, make_parser(spec), lines, folder, BOUNDS, None)
    return folder, rejected


def _mined(
    lines: list[bytes], *, fast: bool
) -> tuple[dict[Any, Any], Counter[str], SourceTemplates]:
    spec = FormatSpec()
    mining = SourceTemplates.restored("app", "json", None)
    folder = WindowFolder(60.0)
    with pytest.MonkeyPatch.context() as patch:
        if not fast:
            patch.setattr(JsonFastPath, "for_parser", classmethod(lambda cls, parser: None))
        rejected = line_folding.fold_lines(spec, make_parser(spec), lines, folder, BOUNDS, mining)
    return folder.partials(), rejected, mining
