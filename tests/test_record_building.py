"""Building records from named values: the flat reading and the remembered stack frames
change nothing.

``RecordBuilder`` reads every target with one pass of ``dict.get`` when no
candidate path is dotted. These tests hold it to the plain way: the same
builder rules with one dotted candidate added (which no value holds, so the
builder reads each target with ``lookup``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from states.telemetry.fields import Rejection
from states.telemetry.mapping import (
    DEFAULT_FIELDS,
    REMEMBERED_STACK_CHARS,
    REMEMBERED_STACKS,
    BuildRules,
    RecordBuilder,
    compile_paths,
    stack_frames,
)
from states.telemetry.records import Record

NAMES = sorted({name for names in DEFAULT_FIELDS.values() for name in names} | {"note"})
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [
            "",
            "ERROR",
            "warn",
            "cart",
            "2026-03-01T11:59:32.1Z",
            "2026-03-01 11:59:32",
            "1700000000",
            "15ms",
            "503",
            "   ",
            'Traceback (most recent call last):\n  File "a.py", line 3, in f\nValueError: x',
        ]
    ),
    st.lists(st.sampled_from(["x", '  File "a.py", line 3, in f']), max_size=2),
    st.dictionaries(st.sampled_from(["x", "ts"]), st.integers(0, 3), max_size=1),
)
OBJECTS = st.dictionaries(st.sampled_from(NAMES), VALUES, max_size=len(NAMES))
BASE = {
    "ts": "2026-03-01T11:59:32.100+00:00",
    "component": "cart",
    "operation": "GET /x",
    "duration_ms": 12.5,
    "status": 500,
    "level": "error",
    "message": "Sent 9736 bytes to 10.0.3.158:8080",
    "version": "abc1234",
    "instance": "web-1",
}


def builders(**rule_options: Any) -> tuple[RecordBuilder, RecordBuilder]:
    """A builder over the default fields, and one that must walk paths (a dotted candidate)."""
    flat = {target: list(names) for target, names in DEFAULT_FIELDS.items()}
    walked = {**flat, "stack": [*flat["stack"], "error.stack"]}
    return (
        RecordBuilder(BuildRules(compile_paths(flat, dotted=True), **rule_options)),
        RecordBuilder(BuildRules(compile_paths(walked, dotted=True), **rule_options)),
    )


FLAT, WALKED = builders()
DEFAULTED = builders(default_component="app", default_level="warning", duration_unit_ms=1000.0)


def same(left: Record | Rejection, right: Record | Rejection) -> bool:
    return type(left) is type(right) and repr(left) == repr(right) and left == right


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=OBJECTS)
def test_flat_names_build_what_walked_paths_build(values: dict[str, object]) -> None:
    for flat, walked in (builders(), DEFAULTED):
        assert same(flat.build(values), walked.build(values))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(changes=OBJECTS)
def test_a_plain_object_with_odd_values_builds_what_walked_paths_build(
    changes: dict[str, object],
) -> None:
    values = {**BASE, **changes}
    for flat, walked in (builders(), DEFAULTED):
        assert same(flat.build(values), walked.build(values))


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"component": None, "ts": "yesterday"}, "no_component"),
        ({"component": None, "service": "cart", "ts": None}, "no_timestamp"),
        ({"level": ["x"], "version": 2, "instance": {"a": 1}}, "bad_field"),
        ({"duration_ms": "soon", "status": "x"}, "bad_duration"),
    ],
)
def test_the_first_bad_field_names_the_rejection_as_before(
    changes: dict[str, object], reason: str
) -> None:
    values = {**BASE, **changes}
    built = FLAT.build(values)
    assert isinstance(built, Rejection) and built.reason == reason
    assert same(built, WALKED.build(values))


def test_a_later_candidate_is_read_only_when_the_earlier_ones_are_null() -> None:
    values = {**BASE, "component": None, "service": "search", "ts": None, "time": BASE["ts"]}
    built = FLAT.build(values)
    assert isinstance(built, Record) and built.component == "search"
    assert built.timestamp == datetime(2026, 3, 1, 11, 59, 32, 100_000, tzinfo=UTC)


def trace(function: str, depth: int = 1) -> str:
    frames = "".join(
        f'  File "shop/{function}.py", line {i + 1}, in {function}\n' for i in range(depth)
    )
    return f"Traceback (most recent call last):\n{frames}LookupError: item"


def test_a_repeated_stack_text_gives_the_frames_parsing_it_gives() -> None:
    flat, _ = builders()
    texts = [trace(f"f{i % 7}", 1 + i % 3) for i in range(2 * REMEMBERED_STACKS + 40)]
    texts += [trace("long", REMEMBERED_STACK_CHARS // 40)] * 3  # too long to remember
    texts += [[line for line in trace("listed").splitlines()]] * 2  # type: ignore[list-item]
    for text in texts + texts[::-1]:
        built = flat.build({**BASE, "stack": text})
        assert isinstance(built, Record) and built.frames == stack_frames(text)
        assert built.frames


def test_more_distinct_stacks_than_remembered_still_give_their_own_frames() -> None:
    flat, _ = builders()
    for i in range(REMEMBERED_STACKS * 2 + 1):
        built = flat.build({**BASE, "stack": trace(f"fn{i}")})
        assert isinstance(built, Record) and built.frames[0].function == f"fn{i}"
