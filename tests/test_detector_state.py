"""Saved detector state across releases: it carries a version, and a state this release
cannot read starts its series afresh instead of failing detection.

The unit tests restore states directly.  The upgrade test runs the real
``selfheal tick`` on a data directory whose state for one series is the one the
previous release wrote: ``tests/data/detector_state_0824510.json`` is what that
release's ``MetricDetector.to_state`` returned after 40 points (commit
0824510, the predictor-surprise detector).
"""

from __future__ import annotations

import copy
import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from states.detect.streaming import STATE_VERSION, DetectorStateError, MetricDetector
from tests.operator_support import append, log_line, ok_json, run_cli, write_config

PREVIOUS_RELEASE_STATE = Path(__file__).parent / "data" / "detector_state_0824510.json"


def previous_release_state() -> dict[str, Any]:
    state: dict[str, Any] = json.loads(PREVIOUS_RELEASE_STATE.read_text())
    return state


def learned_state(points: int = 400) -> dict[str, Any]:
    """This release's state after ``points`` one-minute points, through JSON as it is stored."""
    detector = MetricDetector()
    for i in range(points):
        detector.update(1_772_000_000.0 + 60.0 * i, 100.0 + (i % 17))
    state: dict[str, Any] = json.loads(json.dumps(detector.to_state()))
    return state


def test_a_state_names_its_version_and_restores() -> None:
    state = learned_state()
    assert state["version"] == STATE_VERSION
    assert MetricDetector.from_state(state).to_state() == state


def test_the_previous_release_state_is_refused_as_an_older_version() -> None:
    with pytest.raises(DetectorStateError, match="version 1 was written by an older release"):
        MetricDetector.from_state(previous_release_state())


def test_a_state_of_an_unknown_version_is_refused() -> None:
    state = {**learned_state(), "version": STATE_VERSION + 1}
    with pytest.raises(DetectorStateError, match=f"version {STATE_VERSION + 1} .* another release"):
        MetricDetector.from_state(state)


def _without_seasons(state: dict[str, Any]) -> None:
    del state["seasons"]


def _without_a_record(state: dict[str, Any]) -> None:
    del state["records"]["week"]


def _unknown_setting(state: dict[str, Any]) -> None:
    state["settings"]["surprise_cap"] = 12.0


def _short_profile(state: dict[str, Any]) -> None:
    del state["seasons"]["weekly"]["offsets"][-1]


def _points_as_text(state: dict[str, Any]) -> None:
    state["points"] = "many"


@pytest.mark.parametrize(
    "damage",
    [_without_seasons, _without_a_record, _unknown_setting, _short_profile, _points_as_text],
)
def test_a_damaged_state_of_this_version_is_refused_as_unreadable(
    damage: Callable[[dict[str, Any]], None],
) -> None:
    state = copy.deepcopy(learned_state())
    damage(state)
    with pytest.raises(DetectorStateError, match="unreadable state"):
        MetricDetector.from_state(state)


@pytest.mark.parametrize("stored", [None, [1, 2], "state"])
def test_a_state_that_is_not_an_object_is_refused_as_unreadable(stored: Any) -> None:
    with pytest.raises(DetectorStateError, match="unreadable state"):
        MetricDetector.from_state(stored)


# --- an upgraded agent on a data directory of the previous release --------------------------


class Agent:
    """A configuration, a log the service writes, and ``selfheal tick`` as cron would run it."""

    def __init__(self, directory: Path) -> None:
        self.config = write_config(directory)
        self.log = directory / "logs" / "app.log"
        self.db = directory / "data" / "selfheal.db"
        self.now = datetime.now(UTC).replace(second=0, microsecond=0)

    def serve(self, minutes_ago: range) -> None:
        """Twenty requests a minute for catalog and for search, in the given past minutes."""
        for minute in minutes_ago:
            start = self.now - timedelta(minutes=minute)
            for i in range(20):
                at = start + timedelta(seconds=2 * i)
                append(self.log, log_line(at, duration_ms=10.0 + i) + "\n")
                append(self.log, log_line(at, component="search", duration_ms=20.0 + i) + "\n")

    def tick(self) -> list[dict[str, Any]]:
        """One tick; the detection beats must finish. Returns the JSON log events."""
        done = run_cli(self.config, "tick", "--json")
        steps = ok_json(done)["steps"]
        detection = [s["detail"] for s in steps if s["state"] == "detecting" and s["beat"]]
        assert detection == ["finished", "finished"], steps
        return [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]

    def states(self) -> dict[str, tuple[int, dict[str, Any]]]:
        """Points and state of every series, as stored."""
        with sqlite3.connect(self.db) as conn:
            rows = conn.execute("SELECT key, points, state FROM detector_state").fetchall()
        conn.close()
        return {key: (points, json.loads(state)) for key, points, state in rows}

    def store_state(self, key: str, points: int, state: Any) -> None:
        """Overwrite one series' row, as an older release (or a damaged disk) left it."""
        with sqlite3.connect(self.db) as conn:
            conn.execute(
                "UPDATE detector_state SET points = ?, state = ? WHERE key = ?",
                (points, json.dumps(state), key),
            )
        conn.close()


def resets(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == "detector state reset"]


def test_an_upgraded_agent_restarts_only_the_series_of_an_old_state_and_says_so_once(
    tmp_path: Path,
) -> None:
    agent = Agent(tmp_path)
    agent.serve(range(30, 20, -1))
    assert resets(agent.tick()) == []
    agent.store_state("catalog:p95_ms", 40, previous_release_state())

    agent.serve(range(20, 10, -1))
    [reset] = resets(agent.tick())
    after_upgrade = agent.states()
    agent.serve(range(10, 2, -1))
    later = agent.tick()

    assert reset["series"] == "catalog:p95_ms"
    assert reset["points_lost"] == 40
    assert "version 1 was written by an older release" in reset["reason"]
    assert reset["level"] == "warning"
    assert after_upgrade["catalog:p95_ms"][0] == 10
    assert after_upgrade["catalog:p95_ms"][1]["version"] == STATE_VERSION
    assert after_upgrade["search:p95_ms"][0] == 20
    assert resets(later) == []
    assert {key: points for key, (points, _) in agent.states().items()} == {
        "catalog:p95_ms": 18,
        "search:p95_ms": 28,
    }


def test_a_damaged_state_restarts_its_series_and_names_the_problem(tmp_path: Path) -> None:
    agent = Agent(tmp_path)
    agent.serve(range(20, 10, -1))
    agent.tick()
    points, state = agent.states()["search:p95_ms"]
    del state["seasons"]
    agent.store_state("search:p95_ms", points, state)

    agent.serve(range(10, 5, -1))
    [reset] = resets(agent.tick())

    assert reset["series"] == "search:p95_ms"
    assert reset["reason"] == "unreadable state (KeyError: 'seasons')"
    assert {key: points for key, (points, _) in agent.states().items()} == {
        "catalog:p95_ms": 15,
        "search:p95_ms": 5,
    }
