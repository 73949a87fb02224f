"""A block of lines kept as read reads exactly as the list of its lines, in every use.

The JSON path's reader hands over ``LineBlock`` objects instead of lists: the
lines must be the ones ``bytes.split`` gives (blank lines, carriage returns,
bytes that are not UTF-8 included), indexing, slicing, iterating and joining
must agree with the list's, and reading a real file must give the same lines,
cursor and too-long counts either way, whatever the block size.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from states.telemetry import tailing
from states.telemetry.line_blocks import LineBlock, joined, longest
from states.telemetry.tailing import FileCursor, NewLines, ReadResult

TEXTS = (b"", b"{}", b'{"a": 1}\r', b"x" * 300, b"\xff\xfe not utf-8", b"  ", b"\t{}")


def random_lines(rng: random.Random, count: int) -> list[bytes]:
    return [
        rng.choice(TEXTS) + str(rng.randint(0, 99)).encode() * rng.randint(0, 3)
        for _ in range(count)
    ]


def block_of(lines: list[bytes], tail: bytes = b"") -> LineBlock:
    data = b"\n".join(lines) + b"\n" + tail
    return LineBlock.of(data, len(data) - len(tail) - 1)


@pytest.mark.parametrize("seed", range(5))
def test_a_block_reads_as_the_list_of_its_lines(seed: int) -> None:
    rng = random.Random(seed)
    lines = random_lines(rng, rng.randint(1, 700))
    block = block_of(lines, tail=b'{"partial"')

    assert len(block) == len(lines)
    assert list(block) == lines
    assert [block[i] for i in range(-len(lines), len(lines))] == lines + lines
    assert bytes(joined(block)) == b"\n".join(lines)
    assert longest(block) == max(map(len, lines))
    for _ in range(20):
        start, stop = sorted(rng.randint(-len(lines) - 2, len(lines) + 2) for _ in range(2))
        part = block[start:stop]
        assert list(part) == lines[start:stop]
        assert len(part) == len(lines[start:stop])
        if part:
            assert bytes(joined(part)) == b"\n".join(lines[start:stop])
            assert longest(part) == max(map(len, lines[start:stop]))
    assert list(block[::3]) == lines[::3]


@pytest.mark.parametrize("newlines", [b"\n", b"ab\n", b"abcdefghijklmnopqrstuvwxyz\n"])
def test_lines_are_found_wherever_newlines_lie_in_their_words(newlines: bytes) -> None:
    rng = random.Random(len(newlines))
    for size in [*range(1, 80), 1000, 4099]:
        data = bytes(rng.choice(newlines) for _ in range(size - 1)) + b"\n"
        block = LineBlock.of(data + b"tail", size - 1)
        assert [block[i] for i in range(len(block))] == data[:-1].split(b"\n")
        assert longest(block) == max(map(len, data[:-1].split(b"\n")))


def test_flags_kept_from_block_to_block_find_the_same_lines() -> None:
    rng = random.Random(7)
    scratch = np.ones(40_000, dtype=np.bool_)  # stale flags everywhere
    for count in (600, 20, 1, 300):  # longer blocks, then shorter ones over their flags
        lines = random_lines(rng, count)
        data = b"\n".join(lines) + b"\n" + b'{"partial"'
        end = len(data) - len(b'{"partial"') - 1
        block = LineBlock.of(data, end, scratch)
        assert list(block) == lines == list(LineBlock.of(data, end))
        assert [block[i] for i in range(len(block))] == lines
        assert scratch[: end + 1].sum() == count  # the flags compared into were these


def test_flags_too_few_for_a_block_are_left_aside() -> None:
    lines = [b"x" * 50] * 10
    data = b"\n".join(lines) + b"\n"
    scratch = np.ones(100, dtype=np.bool_)

    assert list(LineBlock.of(data, len(data) - 1, scratch)) == lines
    assert scratch.all()  # untouched


def test_an_empty_slice_has_no_lines_and_joins_to_nothing() -> None:
    block = block_of([b"a", b"b"])[1:1]

    assert len(block) == 0
    assert list(block) == []
    assert bytes(joined(block)) == b""
    assert longest(block) == 0


def test_a_line_past_the_block_is_an_index_error() -> None:
    with pytest.raises(IndexError):
        block_of([b"a", b"b"])[2]


def read(path: Path, cursor: FileCursor | None, *, whole: bool) -> tuple[list[bytes], ReadResult]:
    reading = NewLines(path, cursor, max_bytes=1 << 30, max_line=400, whole=whole)
    blocks: list[Sequence[bytes]] = list(reading)
    assert all(isinstance(b, LineBlock | list) for b in blocks)
    return [line for block in blocks for line in block], reading.result


@pytest.mark.parametrize("block_bytes", [64, 1000, 1 << 20])
def test_the_reader_hands_over_the_same_lines_as_blocks_or_as_lists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block_bytes: int
) -> None:
    monkeypatch.setattr(tailing, "BLOCK", block_bytes)
    rng = random.Random(block_bytes)
    lines = [*random_lines(rng, 3000), b"y" * 401, *random_lines(rng, 500)]
    path = tmp_path / "app.log"
    path.write_bytes(b"\n".join(lines) + b"\n" + b'{"being": "written"')

    as_blocks, by_blocks = read(path, None, whole=True)
    as_lists, by_lists = read(path, None, whole=False)

    assert as_blocks == as_lists == [line for line in lines if len(line) <= 400]
    assert by_blocks == by_lists
    assert by_blocks.too_long == 1
    path.write_bytes(path.read_bytes() + b"}\n")
    assert read(path, by_blocks.cursor, whole=True)[0] == [b'{"being": "written"}']


@pytest.mark.parametrize(("block_bytes", "max_bytes"), [(64, 1000), (1000, 4096), (4096, 700)])
def test_polls_bounded_by_max_bytes_read_every_line_once_and_stop_at_the_last_newline_within(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block_bytes: int, max_bytes: int
) -> None:
    monkeypatch.setattr(tailing, "BLOCK", block_bytes)
    rng = random.Random(block_bytes + max_bytes)
    lines = [*random_lines(rng, 2000), b"z" * 500, *random_lines(rng, 300)]
    data = b"\n".join(lines) + b"\n"
    path = tmp_path / "app.log"
    path.write_bytes(data + b'{"being": "written"')
    for whole in (True, False):
        read_back: list[bytes] = []
        cursor: FileCursor | None = None
        while True:
            offset = 0 if cursor is None else cursor.offset
            reading = NewLines(path, cursor, max_bytes=max_bytes, max_line=600, whole=whole)
            read_back += [line for block in reading for line in block]
            cursor = reading.result.cursor
            assert cursor.offset == data.rfind(b"\n", 0, offset + max_bytes) + 1
            assert reading.result.bytes_read == cursor.offset - offset
            if cursor.offset == offset:
                break
        assert read_back == lines
        assert cursor.offset == len(data)
