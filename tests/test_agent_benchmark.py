"""The agent benchmark's code paths, small and fast: behaviour only, never speed.

The same functions ``benchmarks/agent.py`` times run here on a real SQLite
data directory and real log files: an idle tick must open no log file and run
no beat, a tick over new lines must store windows that account for every
line, and the benchmark must write its figures as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import structlog

from agent import engine
from benchmarks import agent as bench


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()  # the benchmark's main() quiets logging process-wide


def test_idle_ticks_open_no_log_file_and_run_no_beat() -> None:
    result = bench.idle_ticks(20, lines=200)

    assert result["setup_tick_final_state"] == "idle"
    assert result["ticks"] == result["n"] == 20
    assert result["log_file_opens"] == 0, result["log_file_opened"]
    assert result["beats_run"] == 0
    assert result["beat_runs_stored_delta"] == 0
    assert result["transitions_stored_delta"] == 0
    assert result["ticks_that_polled"] == 0
    assert result["ticks_not_ending_idle"] == 0


def test_the_open_counter_sees_a_tick_that_does_read(tmp_path: Path) -> None:
    # Guards the idle assertion above against a counter that never counts.
    logs = tmp_path / "logs"
    bench.write_log(logs / "app.log", 50, datetime.now(UTC))
    counter = bench.open_counter()
    with bench.runtime(tmp_path) as rt, counter.watching(logs):
        report = engine.tick(rt)

    assert report.polled
    assert counter.under_watched > 0
    assert all(path.endswith("app.log") for path in counter.paths)


def test_a_tick_over_new_lines_stores_windows_that_count_every_line() -> None:
    lines = 1000
    result = bench.ingest_once(lines)

    assert result["polled"]
    assert result["final_state"] == "idle"
    assert "ran:ingesting:read-sources" in result["steps"]
    assert result["rejected"] == 0
    assert result["cursor_lines"] == lines
    assert result["count_all_instances"] == lines
    assert result["count_per_instance"] == lines  # every generated line names its instance
    assert result["windows_closed"] > 0  # the lines span minutes, older windows close at once


def test_log_lines_are_the_default_json_shape() -> None:
    end = datetime.now(UTC)
    rows = [json.loads(line) for line in bench.log_lines(30, end)]

    assert {tuple(sorted(r)) for r in rows} == {
        tuple(
            sorted(
                (
                    "ts",
                    "component",
                    "operation",
                    "duration_ms",
                    "status",
                    "level",
                    "message",
                    "version",
                    "instance",
                )
            )
        )
    }
    stamps = [datetime.fromisoformat(r["ts"]) for r in rows]
    assert all(s.tzinfo is not None and s <= end for s in stamps)
    assert stamps == sorted(stamps)
    assert len({r["component"] for r in rows}) > 1
    assert len({r["instance"] for r in rows}) > 1


def test_the_benchmark_writes_its_figures_as_json(tmp_path: Path) -> None:
    out = tmp_path / "agent.json"
    argv = ["--lines", "300", "--ingest-repeats", "1", "--idle-ticks", "5", "--rss-ticks", "20"]

    assert bench.main([*argv, "--out", str(out)]) == 0

    results = json.loads(out.read_text())
    assert {"machine", "idle_tick", "ingest_tick", "ingest_stages", "rss"} <= set(results)
    idle, ingest, rss = results["idle_tick"], results["ingest_tick"], results["rss"]
    assert {"ticks", "median_ms", "p95_ms", "cpu_median_ms", "log_file_opens", "beats_run"} <= set(
        idle
    )
    assert {"lines", "repeats", "median_s", "lines_per_s", "beat_median_s"} <= set(ingest)
    assert ingest["lines"] == ingest["count_all_instances"] == 300
    stages = results["ingest_stages"]["median_s"]
    assert {"read_file", "parse", "fold", "store_windows", "close_windows"} <= set(stages)
    assert {"samples", "growth_kib_per_100_ticks", "rss_kib_at"} <= set(rss)
    assert [s["tick"] for s in rss["samples"]] == [0, 20]
    assert all(s["rss_kib"] > 0 for s in rss["samples"])


def test_steady_ticks_with_and_without_kept_memory_close_the_same_windows() -> None:
    result = bench.steady_ticks(3, 200, warmup_lines=500)

    assert result["ticks"] == 3
    assert result["windows_closed"]["kept"] == result["windows_closed"]["new"] > 0
    assert result["cpu_median_ms_kept"] > 0 and result["cpu_median_ms_new"] > 0
