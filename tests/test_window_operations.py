"""Each window keeps figures per operation, bounded, on every path, across polls and restarts.

Diagnosis must name the operation that got slow or started failing, so a
window stores, per operation name, its count, errors, the sum of its
durations and the longest one. Real log files are polled into a real SQLite
database; the busiest operations keep their names and the rest are summed
under ``other``; polls and instances add up; records without an operation
are not counted; and a data directory written before this column gains it
when opened.
"""

from __future__ import annotations

import math
import random
import sqlite3
import struct
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import cast

import numpy as np
import pytest

from states.telemetry import operations
from states.telemetry.folding import WindowFolder
from states.telemetry.operations import OTHER, TOP_OPERATIONS
from states.telemetry.records import Record
from states.telemetry.sketches import EXACT_LIMIT, sketch_of
from states.telemetry.windows import fold
from storage import window_store
from storage.migrations import WINDOW_COLUMNS_ADDED
from storage.tables import WindowRow
from tests.operator_support import append
from tests.operator_support import log_line as json_line
from tests.test_window_templates import Feed, syslog_line

T0 = datetime(2026, 3, 1, 11, 50, tzinfo=UTC)


@pytest.fixture
def json_feed(tmp_path: Path) -> Iterator[Feed]:
    feed = Feed(tmp_path, "json")
    yield feed
    feed.db.dispose()


def record(operation: str, duration: float | None = 10.0, status: int = 200) -> Record:
    return Record(T0, "catalog", operation, duration, status)


def log_line(ts: datetime, /, **fields: object) -> str:
    return json_line(ts, **fields) + "\n"


def all_windows(feed: Feed) -> list[WindowRow]:
    return feed.db.query(
        lambda s: window_store.component_windows(s, "catalog", instance=None, closed_only=False)
    )


# --- the figures ------------------------------------------------------------------------------


def test_a_window_counts_each_operation_with_its_errors_total_and_longest() -> None:
    [part] = fold(
        [
            record("GET /x", 10.0),
            record("GET /x", 30.5, status=503),
            record("GET /x", None),
            record("POST /cart", 0.25),
            record("", 99.0),
        ],
        60,
    ).values()
    assert part.operations == {
        "GET /x": {"count": 3, "errors": 1, "total_ms": 40.5, "max_ms": 30.5},
        "POST /cart": {"count": 1, "errors": 0, "total_ms": 0.25, "max_ms": 0.25},
    }
    assert part.count == 5


def test_totals_are_exact_sums_whatever_the_order() -> None:
    values = [0.1] * 10 + [1e-3 * i for i in range(1, 500)] + [1e9]
    forward = fold([record("GET /x", v) for v in values], 60)
    backward = fold([record("GET /x", v) for v in reversed(values)], 60)
    [a], [b] = forward.values(), backward.values()
    assert a.operations == b.operations
    assert a.operations["GET /x"]["total_ms"] == math.fsum(values)


def test_the_folder_finds_each_longest_once_per_instance_as_the_reference_fold_does() -> None:
    durations = [0.0, -0.0, 2.5, -0.0, 2.5, 0.0, 1e-300, 7.25, 7.25, 3.0]
    records = [
        Record(T0, "catalog", ("GET /x", "POST /cart")[i % 2], d, 200, instance=f"web-{i % 3}")
        for i, d in enumerate(durations)
    ] + [
        Record(T0, "catalog", "GET /zero", z, 200, instance=f"web-{i}")
        for i, z in enumerate((-0.0, 0.0))
    ]
    folder = WindowFolder(60)
    for r in records:
        folder.add_record(r)

    folded, reference = folder.partials(), fold(records, 60)

    assert folded.keys() == reference.keys()
    for key, part in reference.items():
        assert folded[key].operations == part.operations
        signs = {n: math.copysign(1, f["max_ms"]) for n, f in part.operations.items()}
        assert {
            n: math.copysign(1, f["max_ms"]) for n, f in folded[key].operations.items()
        } == signs
    assert reference[("catalog", "", T0)].operations["GET /zero"]["max_ms"] == 0.0


def signed(value: object) -> object:
    """A value with every float written by ``repr``, so that ``-0.0`` differs from ``0.0``."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return {k: signed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [signed(v) for v in value]
    return value


def test_the_folder_keeps_samples_sketches_and_longest_as_the_reference_fold_does() -> None:
    rng = random.Random(11)
    zeros = [0.0, -0.0] * 150
    durations = zeros + [round(rng.lognormvariate(2, 1), 3) for _ in range(2400)] + [7.25] * 40
    rng.shuffle(durations)
    records = [
        Record(
            T0 + timedelta(seconds=i % 120),
            "catalog",
            ("GET /x", "POST /cart", "GET /zero", "")[i % 4],
            (0.0, -0.0)[i * 2 >= len(durations)] if i % 4 == 2 else d,
            200 if i % 7 else 503,
            version=("v1", "v2", None)[i % 3],
            instance=("web-0", "web-1", "web-2", None)[i % 5 % 4],
        )
        for i, d in enumerate(durations)
    ]
    folder = WindowFolder(60)
    for r in records:
        folder.add_record(r)

    folded, reference = folder.partials(), fold(records, 60)

    # equal durations (0.0 and -0.0) keep their folding order: each tally's durations in
    # record order, tallies in the order they were first seen (as main's folder stores them)
    by_tally: dict[tuple[object, ...], list[float]] = {}
    for r in records:
        tally = (r.timestamp.minute, r.instance or "", r.version or "", r.operation)
        by_tally.setdefault(tally, []).append(cast(float, r.duration_ms))
    assert folded.keys() == reference.keys()
    assert any(len(part.samples) > EXACT_LIMIT for part in reference.values())
    for key, part in reference.items():
        mine = folded[key]
        assert signed(mine.operations) == signed(part.operations)
        in_order = [
            d
            for t, ds in by_tally.items()
            if t[0] == key[2].minute and key[1] in ("", t[1])
            for d in ds
        ]
        if len(in_order) <= EXACT_LIMIT:
            assert mine.sketch is None
            assert signed(mine.samples) == signed(sorted(in_order))
        else:
            assert mine.samples == [] and mine.sketch is not None
            assert signed(mine.sketch.to_state()) == signed(sketch_of(in_order).to_state())


def finite_floats(rng: random.Random, n: int) -> list[float]:
    """Durations and any other finite floats: subnormals, huge exponents, signed zeros."""
    special = [0.0, -0.0, 5e-324, 2.2250738585072014e-308, 1e-300, 1e9, 3.16e10, 1e300]
    found: list[float] = []
    while len(found) < n:
        pick = rng.random()
        if pick < 0.4:
            found.append(round(rng.lognormvariate(3, 1), 3))
        elif pick < 0.5:
            found.append(rng.choice(special))
        else:
            value = struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0]
            if math.isfinite(value) and abs(value) < 1e300:
                found.append(value)
    return found


def test_segment_sums_round_to_what_fsum_gives_for_any_finite_floats() -> None:
    rng = random.Random(5)
    for _ in range(400):
        lengths = [rng.randint(0, 60) for _ in range(rng.randint(1, 9))]
        values = finite_floats(rng, sum(lengths))
        summed = operations.segment_sums(np.asarray(values, dtype=np.float64), lengths)
        assert summed is not None
        sums, scale = summed
        start = 0
        for length, total in zip(lengths, sums, strict=True):
            run = values[start : start + length]
            start += length
            assert total == sum(Fraction(v) for v in run) / Fraction(2) ** scale
            if total:
                assert operations.scaled_float(total, scale) == math.fsum(run)


def test_the_folder_sums_extreme_durations_as_the_reference_fold_does() -> None:
    rng = random.Random(8)
    durations = [abs(v) for v in finite_floats(rng, 3000)]
    records = [
        Record(
            T0 + timedelta(seconds=i % 60),
            "catalog",
            ("GET /x", "POST /cart", "GET /zero")[i % 3],
            0.0 if i % 3 == 2 else d,
            200,
            instance=("web-0", "web-1", None)[i % 4 % 3],
        )
        for i, d in enumerate(durations)
    ]
    folder = WindowFolder(60)
    for r in records:
        folder.add_record(r)

    folded, reference = folder.partials(), fold(records, 60)

    assert any(len(part.samples) > EXACT_LIMIT for part in reference.values())
    for key, part in reference.items():
        assert signed(folded[key].operations) == signed(part.operations)


def test_only_the_busiest_operations_keep_their_names() -> None:
    records = [
        record(f"GET /item/{i}", 1.0 + i) for i in range(TOP_OPERATIONS + 20) for _ in range(i + 1)
    ]
    [part] = fold(records, 60).values()
    assert len(part.operations) == TOP_OPERATIONS + 1
    assert (
        "GET /item/0" not in part.operations
        and f"GET /item/{TOP_OPERATIONS + 19}" in part.operations
    )
    other = part.operations[OTHER]
    assert other["count"] == sum(i + 1 for i in range(20))
    assert other["max_ms"] == 20.0
    assert sum(entry["count"] for entry in part.operations.values()) == len(records)


def test_merging_adds_figures_and_bounds_them_again() -> None:
    stored = {"a": {"count": 2, "errors": 1, "total_ms": 3.0, "max_ms": 2.0}}
    new = {
        "a": {"count": 1, "errors": 0, "total_ms": 5.0, "max_ms": 5.0},
        "b": {"count": 4, "errors": 4, "total_ms": 1.0, "max_ms": 0.5},
    }
    assert operations.merge(stored, new) == {
        "a": {"count": 3, "errors": 1, "total_ms": 8.0, "max_ms": 5.0},
        "b": {"count": 4, "errors": 4, "total_ms": 1.0, "max_ms": 0.5},
    }
    many = {
        f"op{i}": {"count": i, "errors": 0, "total_ms": 1.0, "max_ms": 1.0} for i in range(1, 60)
    }
    merged = operations.merge(
        many, {OTHER: {"count": 7, "errors": 1, "total_ms": 2.0, "max_ms": 9.0}}
    )
    assert len(merged) == TOP_OPERATIONS + 1
    assert merged[OTHER] == {
        "count": 7 + sum(range(1, 10)),
        "errors": 1,
        "total_ms": 11.0,
        "max_ms": 9.0,
    }


# --- stored windows ---------------------------------------------------------------------------


def test_polls_and_instances_add_up_in_the_stored_windows(json_feed: Feed) -> None:
    append(
        json_feed.log,
        log_line(T0, operation="GET /x", duration_ms=10.0, instance="web-1")
        + log_line(
            T0 + timedelta(seconds=1), operation="GET /x", duration_ms=20.0, instance="web-2"
        )
        + log_line(T0 + timedelta(seconds=2), operation="POST /y", status=500, instance="web-2"),
    )
    json_feed.poll()
    append(json_feed.log, log_line(T0 + timedelta(seconds=3), operation="GET /x", duration_ms=40.0))
    json_feed.poll()
    json_feed.restart()

    windows = {w.instance: w.operations for w in all_windows(json_feed)}
    assert windows[""] == {
        "GET /x": {"count": 3, "errors": 0, "total_ms": 70.0, "max_ms": 40.0},
        "POST /y": {"count": 1, "errors": 1, "total_ms": 12.3, "max_ms": 12.3},
    }
    assert windows["web-2"]["GET /x"] == {"count": 1, "errors": 0, "total_ms": 20.0, "max_ms": 20.0}
    assert windows["web-1"]["GET /x"]["count"] == 2


def test_records_without_an_operation_are_not_counted(tmp_path: Path) -> None:
    feed = Feed(tmp_path, "syslog")
    append(feed.log, syslog_line(T0, "Worker 3 started"))
    feed.poll()
    [window] = feed.windows()
    assert (window.count, window.operations) == (1, {})
    feed.db.dispose()


def test_a_data_directory_from_before_operations_gains_the_column(tmp_path: Path) -> None:
    path = tmp_path / "data" / "selfheal.db"
    feed = Feed(tmp_path, "json")
    append(feed.log, log_line(T0))
    feed.poll()
    feed.db.dispose()
    with sqlite3.connect(path) as conn:  # the file as the release before operations wrote it
        conn.execute("ALTER TABLE metric_window DROP COLUMN operations")
    conn.close()
    assert [name for name, _ in WINDOW_COLUMNS_ADDED][-1] == "operations"

    feed.restart()
    append(feed.log, log_line(T0 + timedelta(minutes=2), operation="GET /z"))
    feed.poll()

    old, new = feed.windows()
    assert (old.start, old.operations) == (T0, {})
    assert new.operations == {"GET /z": {"count": 1, "errors": 0, "total_ms": 12.3, "max_ms": 12.3}}
    feed.db.dispose()
