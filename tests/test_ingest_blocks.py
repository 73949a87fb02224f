"""Blocks of JSON lines decoded whole by the typed decoder give exactly what the general path gives.

``json_blocks`` decodes up to ``CHUNK_LINES`` lines at a time with one
msgspec decoder and folds the rows by columns; whatever it refuses goes,
in order, to the batch path. Each test feeds blocks of several chunks,
spoiled in the ways real logs are (malformed, blank and over-long lines,
CRLF, wrong types, duplicated keys, unicode, numbers orjson refuses, new
keys and values, stacks, timestamps on window and range edges, mixed
offsets, lines out of order), and requires the same windows, samples,
sketches, operations, frames, templates and rejections as the general
path and as the batch path (``assert_same`` runs both routes). A last test
compares what two real polls store in SQLite, cursors included.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import select

from states.settings import Settings
from states.telemetry import ingest, json_blocks, json_structs, line_folding
from states.telemetry.folding import WindowFolder
from states.telemetry.formats import FormatSpec, make_parser
from states.telemetry.json_ingest import JsonPoll
from states.telemetry.json_lines import JsonLinesParser
from states.telemetry.mapping import single_names
from states.telemetry.window_templates import SourceTemplates
from storage.db import open_database
from storage.tables import CursorRow, TemplateStateRow, WindowRow
from tests.support.json_paths import (
    BOUNDS,
    DROP,
    NOW,
    assert_same,
    blocks_off,
    fast_path,
    general_path,
    line,
)

CHUNK = json_blocks.CHUNK_LINES
PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def uniform(n: int, start: int = 0, **fields: Any) -> list[bytes]:
    """``n`` plain lines, 3 ms apart, varied in their category values and durations."""
    return [
        line(
            **{
                "ts": (NOW - timedelta(seconds=50, milliseconds=-3 * (start + i))).isoformat(),
                "component": ("catalog", "cart")[i % 2],
                "instance": f"web-{i % 3}",
                "operation": ("GET /x", "POST /y", "GET /z")[i % 3],
                "duration_ms": 0.25 + (start + i) % 89 * 1.5,
                **fields,
            }
        )
        for i in range(n)
    ]


def spoiled(odd: list[bytes], n: int = 3 * CHUNK + 100, seed: int = 5) -> list[bytes]:
    """Plain lines with ``odd`` ones put at spread positions, first and last included."""
    lines = uniform(n)
    rng = random.Random(seed)
    spots = sorted({0, n - 1, *rng.sample(range(1, n - 1), len(odd) - 2)})[: len(odd)]
    for spot, raw in zip(spots, odd, strict=False):
        lines[spot] = raw
    return lines


def _names() -> dict[str, tuple[str, ...]]:
    parser = make_parser(FormatSpec())
    assert isinstance(parser, JsonLinesParser)
    names = single_names(parser.builder.rules)
    assert names is not None
    return names


def _routes(lines: list[bytes]) -> Counter[str]:
    """How many lines the block decoder was fed, the batches got, and the parser parsed."""
    routes: Counter[str] = Counter()
    feed_batches, general = JsonPoll.feed_batches, line_folding.LineFolding._general

    def batches(self: JsonPoll, batch: Any) -> None:
        routes["batches"] += len(batch)
        feed_batches(self, batch)

    def parser(self: Any, raw: bytes) -> None:
        routes["parser"] += 1
        general(self, raw)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(JsonPoll, "feed_batches", batches)
        patch.setattr(line_folding.LineFolding, "_general", parser)
        fast_path(FormatSpec(), lines, 60.0)
    return routes


# --- the route lines take ------------------------------------------------------------------------


def test_plain_lines_are_folded_by_the_block_decoder_alone() -> None:
    lines = uniform(4 * CHUNK + 7)
    assert _routes(lines) == {}
    assert_same(FormatSpec(), lines)


def test_a_line_the_decoder_refuses_goes_alone_to_the_batches_in_its_place() -> None:
    lines = spoiled([b'{"ts": ', line(duration_ms="12ms"), line(status=True)])
    assert _routes(lines)["batches"] == 3
    assert_same(FormatSpec(), lines)


def test_new_keys_and_category_values_are_learned_not_refused() -> None:
    lines = uniform(2 * CHUNK)
    lines += uniform(CHUNK, request_id="a1", operation="GET /new")
    lines += uniform(CHUNK, http={"method": "GET", "path": "/x/1"}, level="debug")
    assert _routes(lines) == {}
    assert_same(FormatSpec(), lines)


def test_a_target_past_the_literal_limit_is_read_as_any_text() -> None:
    n = json_structs.MAX_LITERALS + 40
    lines = [line(operation=f"GET /items/{i}", duration_ms=float(i)) for i in range(n)]
    assert _routes(lines)["batches"] == 0
    assert_same(FormatSpec(), lines)


def test_a_status_past_the_literal_limit_is_read_as_any_integer() -> None:
    n = json_structs.MAX_LITERALS + 40
    lines = [line(status=100 + i, level="info", duration_ms=float(i)) for i in range(n)]
    assert _routes(lines)["batches"] == 0
    assert_same(FormatSpec(), lines)


@pytest.mark.parametrize(
    "statuses",
    [
        [200, 500, 2**63 - 1, 2**63, 2**70, -(2**63), -(2**63) - 1, 200],
        [200, True, 1, 0, False, 999, 1000, -5, 200.0, "500", None, 500],
    ],
)
def test_statuses_msgspec_cannot_take_as_literals_fold_as_the_general_path(
    statuses: list[Any],
) -> None:
    odd = [line(status=status, operation=f"GET /{i}") for i, status in enumerate(statuses)]
    assert_same(FormatSpec(), spoiled(odd))
    assert_same(FormatSpec(), odd * 3)


def test_a_status_is_one_object_per_value_in_a_decoded_block() -> None:
    lines = uniform(CHUNK)
    shape = json_structs.shape_of(json.loads(lines[0]), _names())
    assert shape is not None
    shape.learn_values(json.loads(line(status=503)))
    records = shape.decoder.decode_lines(b"\n".join([line(status=503)] * 3))
    statuses = [row[shape.keys.index("status")] for row in json_structs.rows_of(records)]
    assert statuses == [503] * 3
    assert statuses[0] is statuses[1] is statuses[2]


def test_a_source_the_decoder_refuses_throughout_is_folded_by_batches_alike() -> None:
    lines = uniform(4 * CHUNK, duration_ms="12ms")
    routes = _routes(lines)
    assert routes["batches"] == len(lines)
    assert_same(FormatSpec(), lines)


# --- odd lines among plain ones ---------------------------------------------------------------------

DEEP = {"a": {"b": {"c": [1, 2, {"d": "e"}]}}}
ODD_LINES: dict[str, list[bytes]] = {
    "malformed": [b'{"ts": ', b"{not json", b"[1, 2]", b'"text"', b"null", b"{}", b"}"],
    "blank": [b"", b"   ", b"\t", b"\r", b"\x0b", b"\x0c", b" \r "],
    "crlf": [raw + b"\r" for raw in uniform(7, start=900)],
    "types": [
        line(duration_ms="12ms"),
        line(duration_ms=True),
        line(duration_ms=7),
        line(duration_ms=-0.0),
        line(duration_ms=None),
        line(status="500"),
        line(status=200.0),
        line(status=1),
        line(status=2**70),
        line(component=7),
        line(instance=["web-1"]),
        line(version={"v": 1}),
        line(level=3),
    ],
    "duplicated keys": [
        line()[:-1] + b', "component": "cart"}',
        line()[:-1] + b', "duration_ms": null}',
        line(duration_ms=None)[:-1] + b', "duration_ms": 3.5}',
        line()[:-1] + b', "ts": "2026-03-01T11:58:00Z"}',
        line()[:-1] + b', "status": 503}',
        line()[:-1] + b', "stack": null}',
    ],
    "unicode": [
        line(message="caf\u00e9 \u2603", component="caf\u00e9"),
        json.dumps({**json.loads(line()), "component": "\u00e9t\u00e9"}).encode(),
        line()[:-1] + b', "comp\\u006fnent": "cart"}',
        line()[:-1].replace(b'"component"', b'"\\u0063omponent"') + b"}",
        line()[:-1] + b', "note": "\\ud800"}',
        line()[:-1] + b', "note": "\xff\xfe"}',
        line()[:-1] + b', "note": "\xed\xa0\x80"}',
        line()[:-1] + b', "we\\"ird": 1}',
    ],
    "numbers": [
        line()[:-1] + b', "size": 1e400}',
        line()[:-1] + b', "size": [' + b"1" + b"0" * 400 + b"]}",
        line()[:-1] + b', "size": 1' + b"0" * 308 + b"}",
        line(duration_ms=366 * 24 * 3_600_000.0),
        line(duration_ms=366 * 24 * 3_600_000 + 1),
        line(duration_ms=1e300),
    ],
    "nesting": [
        line(context=DEEP),
        line(context=[[[[[["deep"]]]]]]),
        line()[:-1] + b', "z": ' + b"[" * 1030 + b"]" * 1030 + b"}",
    ],
    "candidates": [
        line(component=None, service="cart"),
        line(component=DROP, service="cart"),
        line(ts=None, timestamp=(NOW - timedelta(seconds=9)).isoformat()),
        line(operation=None, op="GET /q"),
        line(level=None, severity="err"),
        line(stack='  File "shop/a.py", line 3, in f'),
        line(exc_info=None, stack_trace=None),
        line(instance=None, version=None, operation=None),
    ],
    "timestamps": [
        line(ts=(NOW - timedelta(seconds=120)).replace(microsecond=0).isoformat()),
        line(ts=(NOW - timedelta(seconds=60)).replace(second=0, microsecond=0).isoformat()),
        line(ts=(BOUNDS.oldest - timedelta(microseconds=1)).isoformat()),
        line(ts=BOUNDS.oldest.isoformat()),
        line(ts=BOUNDS.latest.isoformat()),
        line(ts=(BOUNDS.latest + timedelta(microseconds=1)).isoformat()),
        line(ts=(NOW - timedelta(seconds=30)).isoformat()[:-6] + "+01:00"),
        line(ts=(NOW - timedelta(seconds=30)).isoformat()[:-6] + "Z"),
        line(ts=(NOW - timedelta(seconds=30)).replace(tzinfo=None).isoformat()),
        line(ts=1_772_366_370.5),
        line(ts="yesterday"),
    ],
}


@pytest.mark.parametrize("kind", sorted(ODD_LINES))
@pytest.mark.parametrize("window_s", [60.0, 1.0, 0.5])
def test_odd_lines_among_plain_ones_fold_as_the_general_path(kind: str, window_s: float) -> None:
    assert_same(FormatSpec(), spoiled(ODD_LINES[kind]), window_s)


@pytest.mark.parametrize("nulls", [1, 2, 7])
def test_null_durations_alone_or_between_refused_lines_fold_as_the_general_path(
    nulls: int,
) -> None:
    refused = line(duration_ms="12ms")
    untimed = [line(duration_ms=None, operation=f"GET /{i}") for i in range(nulls)]
    assert_same(FormatSpec(), untimed)
    assert_same(FormatSpec(), [refused, *untimed, refused, untimed[0], refused])
    assert_same(FormatSpec(), [*uniform(CHUNK - 1), untimed[-1], *untimed, *uniform(5)])


def test_an_over_long_line_is_counted_as_too_long_wherever_it_is() -> None:
    spec = FormatSpec(max_line_bytes=400)
    lines = spoiled([line(message="m" * 500)] * 3)
    assert_same(spec, lines)
    _, rejected, _ = fast_path(spec, lines, 60.0)
    assert rejected == {"too_long": 3}


@pytest.mark.parametrize("at", [0, CHUNK - 1, CHUNK, 2 * CHUNK + 7, 3 * CHUNK - 1])
def test_an_over_long_line_in_one_chunk_of_a_block_is_too_long_there_alone(at: int) -> None:
    spec = FormatSpec(max_line_bytes=400)
    lines = uniform(3 * CHUNK)
    lines[at] = line(message="m" * 500)
    assert_same(spec, lines)
    _, rejected, _ = fast_path(spec, lines, 60.0)
    assert rejected == {"too_long": 1}


@pytest.mark.parametrize("duration", [7.5, None])
def test_refused_lines_among_lines_of_equal_durations_go_alone_to_the_parser(
    duration: float | None,
) -> None:
    lines = uniform(3 * CHUNK, duration_ms=duration)
    failed = [0, 5, 6, 7, 300, CHUNK - 1, CHUNK, 2 * CHUNK + 1, 3 * CHUNK - 1]
    for at in failed:
        odd = {"level": "error", "status": 1000, "message": f"Payment {at} declined"}
        lines[at] = uniform(1, start=at, duration_ms=duration, instance="web-0", **odd)[0]
    assert_same(FormatSpec(), lines)
    assert _routes(lines) == Counter({"parser": len(failed)})


def _repeated(durations: list[float | None]) -> list[bytes]:
    """Lines of these durations, over two operations and three instances, 150 times over."""
    return [
        line(duration_ms=d, operation=f"GET /{i % 2}", instance=f"web-{i % 3}")
        for _ in range(150)
        for i, d in enumerate(durations)
    ]


def test_lines_without_durations_and_equal_durations_are_stored_as_the_general_path_stores_them() -> (
    None
):
    lines = _repeated([0.0, 1.0, None, 2.5, 1.0, 0.0, None, 2.5])
    slow, _, _ = general_path(FormatSpec(), lines, 60.0)
    for blocks in (True, False):
        fast, _, _ = fast_path(FormatSpec(), lines, 60.0, blocks=blocks)
        assert fast.keys() == slow.keys()
        for key, part in slow.items():
            other = fast[key]
            assert json.dumps(other.samples) == json.dumps(part.samples)
            assert json.dumps(other.operations, sort_keys=True) == (
                json.dumps(part.operations, sort_keys=True)
            )
            assert (other.count, other.errors) == (part.count, part.errors)


@pytest.mark.parametrize("blocks", [True, False])
def test_a_negative_zero_duration_is_stored_as_zero_on_every_route(blocks: bool) -> None:
    # ``==`` cannot tell the zeros apart, and a window's order of equal zeros would depend
    # on the route; the stored text can tell them apart.
    lines = _repeated([0.0, -0.0, None, 2.5, -0.0, 0.0, 1.0])
    routes = {
        "general": general_path(FormatSpec(), lines, 60.0)[0],
        "fast": fast_path(FormatSpec(), lines, 60.0, blocks=blocks)[0],
    }
    for parts in routes.values():
        for part in parts.values():
            stored = json.dumps([part.samples, part.operations])
            assert "-0.0" not in stored
            assert "0.0" in stored


def test_lines_out_of_order_and_across_windows_fold_as_the_general_path() -> None:
    lines = uniform(3 * CHUNK)
    lines += [line(ts=(NOW - timedelta(seconds=s * 7.3)).isoformat()) for s in range(300)]
    random.Random(3).shuffle(lines)
    for window_s in (60.0, 10.0, 1.0):
        assert_same(FormatSpec(), lines, window_s)


def test_more_than_1024_samples_in_a_window_are_sketched_identically() -> None:
    lines = uniform(5 * CHUNK, instance="web-1", component="catalog", operation="GET /x")
    assert_same(FormatSpec(), lines)
    parts, _, _ = fast_path(FormatSpec(), lines, 60.0)
    assert all(p.sketch is not None and not p.samples for p in parts.values())


@pytest.mark.parametrize(
    "spec",
    [
        FormatSpec(duration_unit="s"),
        FormatSpec(duration_unit="ns"),
        FormatSpec(timezone="Europe/Paris"),
        FormatSpec(fields={"duration": ["latency", "duration_ms"]}),
        FormatSpec(fields={"level": []}),
        FormatSpec(fields={"stack": []}),
        FormatSpec(fields={"stack": ["stack"]}),
        FormatSpec(component="shop", fields={"component": []}),
        FormatSpec(fields={"instance": ["component"]}),
    ],
    ids=lambda spec: repr(spec.model_dump(exclude_defaults=True)),
)
def test_blocks_under_other_mappings_fold_as_the_general_path(spec: FormatSpec) -> None:
    lines = uniform(2 * CHUNK)
    lines += [line(duration_ms=i * 10**13) for i in range(40)]
    lines += [line(latency=2.5, duration_ms=None), line(duration_ms=3)]
    lines += [line(ts=(NOW - timedelta(seconds=20)).replace(tzinfo=None).isoformat())]
    assert_same(spec, lines)


def test_stack_lines_across_blocks_keep_their_frames_in_record_order() -> None:
    lines = uniform(3 * CHUNK)
    for i in range(0, len(lines), 61):
        lines[i] = line(stack=[f'  File "shop/m{i}.py", line {i}, in f'], instance=f"web-{i % 2}")
    assert_same(FormatSpec(), lines)


def test_warnings_and_errors_are_mined_in_order_on_every_route() -> None:
    lines = uniform(3 * CHUNK)
    for i in range(3, len(lines), 29):
        lines[i] = line(level=("warn", "error")[i % 2], message=f"Disk {i} failed after {i} ms")
    lines[700] = line(status=503, message="Upstream db-1.internal:5432 marked unhealthy")
    results = [_mined(lines, blocks=True), _mined(lines, blocks=False)]
    assert results[0] == results[1]


# --- generated mixes ---------------------------------------------------------------------------

_odd_values: dict[str, st.SearchStrategy[Any]] = {
    "ts": st.one_of(
        st.none(),
        st.integers(1_772_360_000, 1_772_370_000),
        st.sampled_from(["2026-03-01T11:59:30Z", "2026-03-01T11:59:30.5", "x"]),
    ),
    "component": st.one_of(st.sampled_from(["cart", "", "caf\u00e9"]), st.none(), st.integers()),
    "operation": st.one_of(st.text(max_size=6), st.none(), st.booleans()),
    "duration_ms": st.one_of(st.floats(allow_nan=False), st.integers(-5, 10**17), st.none()),
    "status": st.one_of(st.integers(-2, 1002), st.none(), st.booleans(), st.just(200.0)),
    "level": st.one_of(st.sampled_from(["INFO", "warn", "error", "weird", "debug"]), st.none()),
    "version": st.one_of(st.text(max_size=4), st.none(), st.just(["v"])),
    "instance": st.one_of(st.sampled_from(["web-2", ""]), st.none(), st.integers(0, 2)),
    "stack": st.one_of(st.none(), st.just('  File "a.py", line 1, in f'), st.just([])),
    "extra": st.one_of(st.integers(), st.floats(), st.text(max_size=5), st.just({"k": [1]})),
    "service": st.one_of(st.none(), st.just("search")),
}


@st.composite
def spoiled_blocks(draw: Callable[..., Any]) -> list[bytes]:
    lines = uniform(draw(st.integers(CHUNK // 2, 2 * CHUNK + 50)), start=draw(st.integers(0, 999)))
    for _ in range(draw(st.integers(0, 8))):
        at = draw(st.integers(0, len(lines) - 1))
        key = draw(st.sampled_from(sorted(_odd_values)))
        choice = draw(st.integers(0, 11))
        if choice == 0:
            lines[at] = draw(st.binary(max_size=12))
        elif choice == 1:
            lines[at] = (
                lines[at][:-1] + f', "{key}": {json.dumps(draw(_odd_values[key]))}}}'.encode()
            )
        else:
            lines[at] = line(**{key: draw(_odd_values[key]) if choice > 2 else DROP})
    return lines


MAPPINGS = [
    FormatSpec(),
    FormatSpec(duration_unit="us"),
    FormatSpec(timezone="Europe/Paris"),
    FormatSpec(fields={"stack": [], "level": ["severity", "level"]}),
    FormatSpec(fields={"component": ["service", "component"], "instance": []}),
]


@PROPERTY
@given(
    lines=spoiled_blocks(),
    window_s=st.sampled_from([60.0, 1.0, 2.5]),
    spec=st.sampled_from(MAPPINGS),
)
def test_generated_blocks_fold_as_the_general_path(
    lines: list[bytes], window_s: float, spec: FormatSpec
) -> None:
    assert_same(spec, lines, window_s)


# --- what a poll stores ------------------------------------------------------------------------------


def test_polls_store_the_same_windows_cursors_and_templates_on_both_routes(tmp_path: Path) -> None:
    odd = [raw for kind in sorted(ODD_LINES) for raw in ODD_LINES[kind]]
    first = spoiled(odd[:40], n=4 * CHUNK)
    later = spoiled(odd[40:], n=2 * CHUNK, seed=8)
    later[100] = line(level="error", message="Payment 1234 declined", status=502)
    stored = [
        _two_polls(tmp_path / name, first, later, blocks)
        for name, blocks in [("a", True), ("b", False)]
    ]
    assert stored[0] == stored[1]
    assert stored[0]["cursor"][0] == sum(len(raw) + 1 for raw in first + later)


def _two_polls(root: Path, first: list[bytes], later: list[bytes], blocks: bool) -> dict[str, Any]:
    log = root / "app.log"
    root.mkdir()
    log.write_bytes(b"".join(raw + b"\n" for raw in first))
    config = Settings.model_validate(
        {
            "agent": {"data_dir": str(root / "data")},
            "telemetry": {
                "sources": [{"name": "app", "paths": [str(log)]}],
                "retention_s": 600,
            },
            "deploy": {
                "kind": "command",
                "command": {"targets": ["t1"], "deploy": ["true"], "version": ["true"]},
            },
        }
    )
    db = open_database(root / "data" / "selfheal.db")
    with pytest.MonkeyPatch.context() if blocks else blocks_off():
        ingest.poll_sources(config, db, NOW)
        with log.open("ab") as handle:
            handle.write(b"".join(raw + b"\n" for raw in later))
        ingest.poll_sources(config, db, NOW)

    def read(session: Any) -> dict[str, Any]:
        windows = sorted(
            (
                w.component,
                w.instance,
                w.start,
                w.count,
                w.errors,
                w.samples,
                w.sketch,
                w.versions,
                w.frames,
                w.templates,
                w.new_templates,
                w.operations,
            )
            for w in session.exec(select(WindowRow))
        )
        cursor = session.exec(select(CursorRow)).one()
        state = session.get(TemplateStateRow, "app")
        return {
            "windows": windows,
            "cursor": (cursor.offset, cursor.lines, cursor.rejected),
            "templates": None if state is None else state.state,
        }

    try:
        return db.query(read)
    finally:
        db.dispose()


def _mined(lines: list[bytes], *, blocks: bool) -> tuple[Any, ...]:
    spec = FormatSpec()
    mining = SourceTemplates.restored("app", "json", None)
    folder = WindowFolder(60.0)
    with pytest.MonkeyPatch.context() if blocks else blocks_off():
        rejected = line_folding.fold_lines(spec, make_parser(spec), lines, folder, BOUNDS, mining)
    parts = folder.partials()
    return (
        rejected,
        mining.miner.to_state(),
        {k: (p.count, p.errors, dict(p.templates), p.new_templates) for k, p in parts.items()},
    )
