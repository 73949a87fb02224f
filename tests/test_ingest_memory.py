"""What ingestion keeps in memory between polls changes nothing that is stored.

A daemon passes one ``IngestMemory`` to every poll and close: JSON block
shapes (keys, literal category values, vetted categories) are kept per
source, and the latencies a poll stored are used to close the window. Each
test runs the same polls and closes over real files and a real SQLite data
directory twice, with one memory throughout and with none, and requires the
same windows (statistics, samples, sketches), cursors and hourly budget
sums; and it checks that the memory did its work (no decoder rebuilt for
known lines, no latencies read back) and stays bounded.
"""

from __future__ import annotations

import gc
import json
import random
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from states.settings import Settings
from states.telemetry import ingest, json_blocks, json_structs, line_folding
from states.telemetry.folding import WindowFolder
from states.telemetry.formats import FormatSpec, make_parser
from states.telemetry.ingest_memory import QUANTILES, IngestMemory, StoredLatencies, StoredWindow
from states.telemetry.json_blocks import KeptShapes
from states.telemetry.json_structs import BlockShape
from states.telemetry.sketches import sketch_of, window_quantiles
from storage import window_store
from storage.budget_hours import BudgetHourRow
from storage.db import Database, open_database
from storage.tables import CursorRow, WindowRow
from tests.support.json_paths import BOUNDS, NOW, comparable, general_path, line, reference

Step = Callable[[Path, Database, IngestMemory | None], None]


def lines_at(
    n: int, seconds_ago: float, *, seed: int, spread_s: float = 100.0, **fields: Any
) -> list[bytes]:
    """``n`` plain lines spread over ``spread_s`` seconds ending ``seconds_ago`` before NOW."""
    rng = random.Random(seed)
    return [
        line(
            **{
                "ts": (NOW - timedelta(seconds=seconds_ago + spread_s * (1 - i / n))).isoformat(),
                "component": rng.choice(("catalog", "cart")),
                "instance": f"web-{rng.randrange(3)}",
                "operation": rng.choice(("GET /x", "POST /y", f"GET /z/{rng.randrange(40)}")),
                "version": rng.choice(("abc1234", "def5678")),
                "duration_ms": round(rng.lognormvariate(2.5, 0.6), 3),
                "status": rng.choice((200, 200, 200, 404, 503)),
                "level": rng.choice(("info", "info", "debug")),
                **fields,
            }
        )
        for i in range(n)
    ]


def settings_for(root: Path, log: Path) -> Settings:
    return Settings.model_validate(
        {
            "agent": {"data_dir": str(root)},
            "telemetry": {"sources": [{"name": "app", "paths": [str(log)]}], "retention_s": 3600},
            "deploy": {
                "kind": "command",
                "command": {"targets": ["t1"], "deploy": ["true"], "version": ["true"]},
            },
        }
    )


def append(log: Path, lines: list[bytes]) -> None:
    with log.open("ab") as handle:
        handle.write(b"".join(raw + b"\n" for raw in lines))


def stored(db: Database) -> dict[str, Any]:
    """Everything ingestion stores, in a comparable form."""

    def read(session: Any) -> dict[str, Any]:
        windows = sorted(
            tuple(v for k, v in sorted(w.model_dump().items()) if k != "id")
            for w in session.exec(select(WindowRow))
        )
        cursors = sorted(
            (c.source, c.offset, c.lines, c.rejected) for c in session.exec(select(CursorRow))
        )
        hours = sorted(
            tuple(sorted(h.model_dump().items())) for h in session.exec(select(BudgetHourRow))
        )
        return {"windows": windows, "cursors": cursors, "budget_hours": hours}

    return db.query(read)


def run_twice(root: Path, steps: list[Step]) -> IngestMemory:
    """Run ``steps`` with one memory and with none; what they store must be the same."""
    found, memory = [], IngestMemory()
    for name, kept in (("kept", memory), ("none", None)):
        folder = root / name
        folder.mkdir()
        log = folder / "app.log"
        log.touch()
        db = open_database(folder / "selfheal.db")
        try:
            for step in steps:
                step(log, db, kept)
            found.append(stored(db))
        finally:
            db.dispose()
    assert found[0] == found[1]
    assert any(w[1] for w in found[0]["windows"])  # some windows were closed
    return memory


def poll(lines: list[bytes], at: datetime = NOW) -> Step:
    def step(log: Path, db: Database, memory: IngestMemory | None) -> None:
        append(log, lines)
        ingest.poll_sources(settings_for(log.parent, log), db, at, memory)

    return step


def close(at: datetime) -> Step:
    def step(log: Path, db: Database, memory: IngestMemory | None) -> None:
        latencies = None if memory is None else memory.latencies
        config = settings_for(log.parent, log)
        db.transact(lambda s: ingest.close_due_windows(s, config, at, latencies))

    return step


@contextmanager
def counted_calls(module: Any, name: str, measure: Callable[..., int]) -> Iterator[list[int]]:
    """``module.name`` still called, and ``measure`` of each call's arguments noted in order."""
    counted: list[int] = []
    real = getattr(module, name)

    def counting(*args: Any) -> Any:
        counted.append(measure(*args))
        return real(*args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(module, name, counting)
        yield counted


@pytest.fixture
def latencies_read_back() -> Iterator[list[int]]:
    """How many windows' latencies closing read from the database, per close."""
    with counted_calls(window_store, "window_latencies", lambda session, ids: len(ids)) as counted:
        yield counted


@pytest.fixture
def decoders_built() -> Iterator[list[int]]:
    """How many block decoders were built (a new shape, key or literal value each)."""
    with counted_calls(json_structs, "_decoder", lambda keys, types: 1) as built:
        yield built


# --- closing from the latencies stored ---------------------------------------------------------


def test_windows_closed_from_remembered_latencies_store_what_reading_them_back_stores(
    tmp_path: Path, latencies_read_back: list[int]
) -> None:
    busy = lines_at(3000, 200, seed=1, spread_s=30)  # windows past 1,024 samples: sketched
    run_twice(
        tmp_path,
        [
            poll(lines_at(2000, 0, seed=2) + busy),
            close(NOW - timedelta(seconds=40)),
            poll(lines_at(1500, 0, seed=3)),  # into open windows, and late into closed ones
            poll(lines_at(900, 0, seed=4, spread_s=30)),
            close(NOW + timedelta(minutes=5)),
        ],
    )
    kept_run = latencies_read_back[: len(latencies_read_back) // 2]
    assert kept_run and all(count == 0 for count in kept_run)
    assert all(count > 0 for count in latencies_read_back[len(kept_run) :])


def test_a_window_changed_by_a_poll_without_the_memory_is_read_back(
    tmp_path: Path, latencies_read_back: list[int]
) -> None:
    def poll_forgetting(lines: list[bytes]) -> Step:  # as a beat given no memory polls
        def step(log: Path, db: Database, memory: IngestMemory | None) -> None:
            poll(lines)(log, db, None)

        return step

    run_twice(
        tmp_path,
        [
            poll(lines_at(800, 0, seed=5)),
            poll_forgetting(lines_at(300, 0, seed=6, spread_s=50)),
            close(NOW + timedelta(minutes=5)),
        ],
    )
    assert 0 < latencies_read_back[0] <= latencies_read_back[1]


def test_a_poll_whose_transaction_fails_leaves_nothing_remembered(tmp_path: Path) -> None:
    def failing_poll(lines: list[bytes]) -> Step:
        def step(log: Path, db: Database, memory: IngestMemory | None) -> None:
            real = window_store.insert_windows

            def insert_then_fail(session: Any, rows: Any) -> None:
                real(session, rows)
                raise RuntimeError("disk full")

            remembered = None if memory is None else dict(memory.latencies._windows)
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(window_store, "insert_windows", insert_then_fail)
                with pytest.raises(RuntimeError, match="disk full"):
                    poll(lines)(log, db, memory)
            assert memory is None or remembered == memory.latencies._windows

        return step

    later = lines_at(600, 0, seed=8, spread_s=40)
    run_twice(
        tmp_path,
        [
            poll(lines_at(500, 60, seed=7)),
            failing_poll(later),
            close(NOW + timedelta(minutes=5)),
            poll([]),  # the same lines again, read from the cursor that did not move
            close(NOW + timedelta(minutes=10)),
        ],
    )


def test_stored_latencies_are_given_only_for_the_count_and_errors_remembered() -> None:
    latencies = StoredLatencies()
    key = ("catalog", "", NOW)
    latencies.remember([StoredWindow(key, 3, 1, [1.0, 2.0, 30.0], {})])
    assert latencies.take(key, 4, 1) is None
    assert latencies.take(key, 3, 1) is None  # taken: forgotten
    latencies.remember([StoredWindow(key, 3, 1, [1.0, 2.0, 30.0], {})])
    assert latencies.take(key, 3, 1) == [2.0, 30.0, 30.0]


def test_stored_latencies_stay_bounded_and_reduced_ones_keep_their_quantiles() -> None:
    latencies = StoredLatencies(max_windows=50, max_values=2000)
    rng = random.Random(3)
    windows = []
    for i in range(80):
        samples = sorted(rng.lognormvariate(2, 1) for _ in range(rng.randrange(1, 300)))
        sketch = sketch_of(samples).to_state() if i % 4 == 0 else {}
        kept = [] if sketch else samples
        windows.append(StoredWindow(("c", "", NOW + timedelta(minutes=i)), i, 0, kept, sketch))
        latencies.remember([windows[-1]])
        assert len(latencies) <= 50
        assert latencies.held <= 2000
    assert [w.key for w in windows[30:]] == list(latencies._windows)
    for w in windows[30:]:
        samples, sketch = json.loads(json.dumps([w.samples, w.sketch]))  # as stored, read back
        expected = window_quantiles(samples, sketch, QUANTILES)
        assert latencies.take(w.key, w.count, w.errors) == expected


# --- block shapes kept from poll to poll ------------------------------------------------------


def test_a_steady_source_builds_no_decoder_after_its_first_poll(
    tmp_path: Path, decoders_built: list[int]
) -> None:
    log = tmp_path / "app.log"
    db = open_database(tmp_path / "selfheal.db")
    memory = IngestMemory()
    built = []
    try:
        for seed in (21, 22, 23):
            append(log, lines_at(2000, 0, seed=seed, spread_s=30))
            ingest.poll_sources(settings_for(tmp_path, log), db, NOW, memory)
            built.append(len(decoders_built))
    finally:
        db.dispose()
    assert built[0] > 1  # the shape, then category values as they came
    assert built[1] == built[2] == built[0]


def test_polls_with_kept_shapes_store_what_polls_learning_afresh_store(tmp_path: Path) -> None:
    run_twice(
        tmp_path,
        [
            poll(lines_at(1500, 60, seed=31)),
            poll(lines_at(900, 30, seed=32, request_id="r1")),  # a key learned
            poll(lines_at(700, 0, seed=33, operation="GET /new")),  # a value learned
            poll(lines_at(400, 0, seed=34, level="warning", region="eu")),
            close(NOW + timedelta(minutes=5)),
        ],
    )


def test_what_an_unfinished_poll_grouped_is_dropped_when_the_next_begins() -> None:
    spec, kept = FormatSpec(), KeptShapes()
    broken = line_folding.LineFolding(
        spec, make_parser(spec), WindowFolder(60.0), BOUNDS, None, kept
    )
    broken.feed(lines_at(1200, 60, seed=41))  # never finished: its file could not be read
    later = lines_at(1200, 0, seed=42)
    folder = WindowFolder(60.0)
    folding = line_folding.LineFolding(spec, make_parser(spec), folder, BOUNDS, None, kept)
    folding.feed(later)
    folding.finish()
    parts, rejected, records = general_path(spec, later, 60.0)
    assert (folding.rejected, folder.records) == (rejected, records)
    assert {k: comparable(p) for k, p in folder.partials().items()} == {
        k: reference(p) for k, p in parts.items()
    }


def test_a_finished_poll_is_freed_as_soon_as_it_is_dropped_without_the_collector() -> None:
    spec = FormatSpec()
    folder = WindowFolder(60.0)
    folding = line_folding.LineFolding(spec, make_parser(spec), folder, BOUNDS, None)
    folding.feed(lines_at(1200, 0, seed=43, level="error"))  # some through the general path
    folding.feed(lines_at(1200, 0, seed=44))
    folding.finish()
    gone: list[weakref.ref[Any]] = [weakref.ref(folder), weakref.ref(folding)]
    collecting = gc.isenabled()
    gc.disable()
    try:
        del folder, folding
        assert [ref() for ref in gone] == [None, None]
    finally:
        if collecting:
            gc.enable()


def test_kept_shapes_stay_bounded_and_spent_ones_are_built_afresh(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(json_blocks, "MAX_SHAPES", 3)
    monkeypatch.setattr(json_structs, "MAX_EXTRAS", 1)
    spec, kept = FormatSpec(), KeptShapes()
    chunk = json_blocks.CHUNK_LINES
    spent: list[list[BlockShape]] = []  # after each poll: shapes that may learn no more keys
    for poll_number in range(2):
        lines = []
        for i in range(6):  # six first lines with their own keys: six shapes
            lines += lines_at(chunk, 60 - 10 * i, seed=50 + i, spread_s=10, **{f"k{i}": 1})
        lines[-5:] = lines_at(5, 0, seed=60, spread_s=1, extra_a=1, extra_b=2)  # 2 keys to learn
        folder = WindowFolder(60.0)
        folding = line_folding.LineFolding(spec, make_parser(spec), folder, BOUNDS, None, kept)
        folding.feed(lines)
        folding.finish()
        assert len(kept.shapes) <= 3
        spent.append([s for s in kept.shapes.values() if s is not None and not s.learnable])
        parts, rejected, records = general_path(spec, lines, 60.0)
        assert (folding.rejected, folder.records) == (rejected, records), poll_number
        assert {k: comparable(p) for k, p in folder.partials().items()} == {
            k: reference(p) for k, p in parts.items()
        }
    assert len(spent[0]) == len(spent[1]) == 1  # one spent by each poll ...
    assert spent[0][0] is not spent[1][0]  # ... the second on a shape it built afresh
    assert all(shape.learnable for shape in kept.begin_poll())


def test_a_source_the_decoder_gives_up_on_starts_afresh_at_its_next_poll() -> None:
    spec, kept = FormatSpec(), KeptShapes()
    odd = [line(duration_ms=f"{i}ms") for i in range(40)]  # every one refused by the decoder
    folding = line_folding.LineFolding(
        spec, make_parser(spec), WindowFolder(60.0), BOUNDS, None, kept
    )
    folding.feed(lines_at(100, 60, seed=71) + odd + lines_at(900, 0, seed=72))
    folding.finish()
    assert kept.shapes == {} and kept.last is None


def test_a_source_read_another_way_gets_new_shapes() -> None:
    memory = IngestMemory()
    plain = memory.shapes("app", FormatSpec(), mine_severe=False)
    assert memory.shapes("app", FormatSpec(), mine_severe=False) is plain
    assert memory.shapes("app", FormatSpec(), mine_severe=True) is not plain
    other = FormatSpec(fields={"duration": ["took_ms"]})
    assert memory.shapes("app", other, mine_severe=True) is not plain
    assert memory.shapes("web", FormatSpec(), mine_severe=False) is not plain
