"""A column of ISO timestamps gets the windows each of its texts gets alone, whatever the texts.

``SecondWindows.windows_of`` vouches for a whole column with a few string
operations over the joined texts (``_all_shaped``) before it looks up one
second per text, or none. These tests check the shape check against a
text-by-text reference on columns spoiled the ways that could fool a
joined check (a separator inside a text, a text one character short next
to one a character long, non-ASCII digits, another zone), and the column's
windows against ``window_of`` for each text.
"""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from states.telemetry.formats import FormatSpec, make_parser
from states.telemetry.json_lines import JsonLinesParser
from states.telemetry.second_windows import SecondWindows, _all_shaped
from tests.support.json_paths import BOUNDS, NOW

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ZONE = "+00:00"
SPOILERS = ("|", ".", "x", "\u0663", "0", "9", "+", ":", "")


def shaped(text: str, digits: int, zone: str) -> bool:
    """The reference: one text checked alone (one holding the separator, or a character that
    is not ASCII, is refused too)."""
    fraction = text[20 : 20 + digits]
    return (
        "|" not in text
        and text.isascii()
        and len(text) == 20 + digits + len(zone)
        and text[19] == "."
        and all(c in "0123456789" for c in text[17:19] + fraction)
        and text[20 + digits :] == zone
    )


def stamps(count: int, step_ms: int = 37) -> list[str]:
    start = NOW - timedelta(minutes=5)
    return [
        (start + timedelta(milliseconds=step_ms * i)).isoformat(timespec="milliseconds")
        for i in range(count)
    ]


@st.composite
def spoiled_columns(draw: st.DrawFn) -> list[str]:
    texts = stamps(draw(st.integers(1, 40)))
    for _ in range(draw(st.integers(0, 3))):
        i = draw(st.integers(0, len(texts) - 1))
        at = draw(st.integers(0, len(texts[i])))
        spoiler = draw(st.sampled_from(SPOILERS))
        cut = draw(st.integers(0, 1))  # replace a character, or insert one
        texts[i] = texts[i][:at] + spoiler + texts[i][at + cut :]
    return texts


@PROPERTY
@given(spoiled_columns())
def test_a_column_is_shaped_exactly_when_every_text_is(texts: list[str]) -> None:
    assert _all_shaped(texts, 3, ZONE) == all(shaped(t, 3, ZONE) for t in texts)


def test_a_short_text_beside_a_long_one_is_not_shaped() -> None:
    texts = stamps(4)
    texts[1], texts[2] = texts[1][:-1], "0" + texts[2]  # the joined lengths still add up
    assert not _all_shaped(texts, 3, ZONE)


def test_a_separator_inside_a_text_is_not_taken_for_a_boundary() -> None:
    texts = stamps(3)
    texts[1] += "|"  # where the next separator would be: every column still lines up
    texts[2] = texts[2][1:]
    assert not _all_shaped(texts, 3, ZONE)


def seconds() -> SecondWindows:
    parser = make_parser(FormatSpec())
    assert isinstance(parser, JsonLinesParser)
    return SecondWindows(parser.builder.timestamp, 60.0, BOUNDS)


@PROPERTY
@given(spoiled_columns(), st.integers(1, 2_000))
def test_a_column_gets_the_windows_its_texts_get_one_by_one(texts: list[str], step: int) -> None:
    texts = [*texts, *stamps(len(texts), step)]
    found = seconds().windows_of(texts)  # None: the caller parses every text in full
    alone = seconds()
    expected = [alone.window_of(text) for text in texts]
    if isinstance(found, int):
        assert expected == [found] * len(texts)
    elif found is not None:  # None in the list: the caller parses that text in full
        assert [w for w in found if w is not None] == [
            e for e, w in zip(expected, found, strict=True) if w is not None
        ]


def test_a_clean_column_within_a_minute_gets_one_window_and_a_longer_one_a_list() -> None:
    short, long = stamps(512), stamps(512, 1_000)
    assert seconds().windows_of(short) == seconds().window_of(short[0])
    windows = seconds().windows_of(long)
    assert isinstance(windows, list)
    assert windows == [seconds().window_of(text) for text in long]
    assert len(set(windows)) > 1
