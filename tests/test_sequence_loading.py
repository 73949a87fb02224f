"""Phase definitions load early and precisely, and an operator's own folder really drives the engine.

Broken sequences are real files in tmp_path (the bundled ones, copied and
edited); loading goes through ``sequences.loading`` with the handlers the
agent registers. The last tests run ``python -m agent.cli`` against a config
whose ``sequences_dir`` reorders and removes beats.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent import engine
from agent.settings import load_settings
from sequences.loading import SequenceError, bundled_folder, load_sequences
from states import handlers, machine
from tests.operator_support import append, log_line, ok_json, run_cli_together, write_config

TELEMETRY = "phase-1-telemetry.json"


def load(folder: Path) -> dict[str, Any]:
    return dict(
        load_sequences(
            folder,
            handlers=handlers.handler_names(),
            phases=machine.STATES,
            required=machine.PHASES_WITH_BEATS,
        )
    )


def copy_bundled(target: Path) -> Path:
    target.mkdir(parents=True)
    for path in bundled_folder().glob("phase-*.json"):
        shutil.copy(path, target / path.name)
    return target


def edit(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=1))


def failure(folder: Path) -> str:
    with pytest.raises(SequenceError) as raised:
        load(folder)
    return str(raised.value)


class TestBundledSequences:
    def test_every_phase_with_beats_loads_from_the_bundled_folder(self) -> None:
        loaded = load(bundled_folder())
        assert set(loaded) == set(machine.PHASES_WITH_BEATS)
        registered = handlers.handler_names()
        for phase, spec in loaded.items():
            assert spec.phase == phase
            assert spec.beats
            assert {b.handler for b in spec.beats} <= registered

    def test_the_telemetry_phase_reads_closes_then_applies_retention(self) -> None:
        spec = load(bundled_folder())["ingesting"]
        assert [b.id for b in spec.beats] == ["read-sources", "close-windows", "retention"]


class TestBrokenSequences:
    def test_a_missing_handler_is_named_with_its_file_and_beat(self, tmp_path: Path) -> None:
        folder = copy_bundled(tmp_path / "seq")
        edit(
            folder / TELEMETRY,
            lambda d: d["beats"][1].update(handler="telemetry.close_windows_fast"),
        )
        message = failure(folder)
        assert message.startswith(f"{folder / TELEMETRY}: ")
        assert "beat 'close-windows'" in message
        assert "'telemetry.close_windows_fast', which does not exist" in message
        assert "telemetry.close_windows" in message  # the known handlers are listed

    def test_a_phase_that_is_not_a_state_is_refused(self, tmp_path: Path) -> None:
        folder = copy_bundled(tmp_path / "seq")
        edit(folder / TELEMETRY, lambda d: d.update(phase="hoovering"))
        message = failure(folder)
        assert message.startswith(f"{folder / TELEMETRY}: ")
        assert "phase 'hoovering' is not a state of the machine" in message
        assert "ingesting" in message

    def test_a_beat_id_used_twice_is_refused(self, tmp_path: Path) -> None:
        folder = copy_bundled(tmp_path / "seq")
        edit(folder / TELEMETRY, lambda d: d["beats"].append(dict(d["beats"][0])))
        message = failure(folder)
        assert message.startswith(f"{folder / TELEMETRY}: ")
        assert "beat 'read-sources' appears twice" in message

    def test_invalid_json_is_reported_with_its_line(self, tmp_path: Path) -> None:
        folder = copy_bundled(tmp_path / "seq")
        (folder / TELEMETRY).write_text(
            '{"id": "telemetry", "phase": "ingesting",\n'
            ' "beats": [\n'
            '   {"id": "read-sources", "handler": "telemetry.read_sources",}\n'
            " ]}\n"
        )
        message = failure(folder)
        assert message.startswith(f"{folder / TELEMETRY}: line 3: not valid JSON")

    def test_a_missing_required_phase_is_named(self, tmp_path: Path) -> None:
        folder = copy_bundled(tmp_path / "seq")
        (folder / "phase-7-learning.json").unlink()
        message = failure(folder)
        assert message.startswith(f"{folder}: ")
        assert "no sequence defines the phase(s) learning" in message

    def test_a_policy_outside_the_schema_names_the_field(self, tmp_path: Path) -> None:
        folder = copy_bundled(tmp_path / "seq")
        edit(folder / TELEMETRY, lambda d: d["beats"][0].update(retries=1000))
        message = failure(folder)
        assert message.startswith(f"{folder / TELEMETRY}: beats.0.retries: ")

    def test_two_files_for_one_phase_are_refused(self, tmp_path: Path) -> None:
        folder = copy_bundled(tmp_path / "seq")
        shutil.copy(folder / TELEMETRY, folder / "phase-9-telemetry-again.json")
        message = failure(folder)
        assert "phase 'ingesting' is already defined by phase-1-telemetry.json" in message


# --- an operator's own folder ------------------------------------------------------------


@pytest.fixture(scope="module")
def own_sequences(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One config with a reordered, shortened telemetry phase; one whose folder is broken."""
    root = tmp_path_factory.mktemp("own")
    folder = copy_bundled(root / "good" / "my-sequences")

    def reorder_and_drop(data: dict[str, Any]) -> None:
        by_id = {b["id"]: b for b in data["beats"]}
        data["beats"] = [by_id["close-windows"], by_id["read-sources"]]

    edit(folder / TELEMETRY, reorder_and_drop)
    good = write_config(root / "good", agent='sequences_dir = "my-sequences"')
    start = datetime.now(UTC) - timedelta(minutes=3)
    append(root / "good" / "logs" / "app.log", log_line(start) + "\n")

    broken_folder = copy_bundled(root / "broken" / "my-sequences")
    edit(broken_folder / TELEMETRY, lambda d: d["beats"][0].update(handler="nope.nothing"))
    broken = write_config(root / "broken", agent='sequences_dir = "my-sequences"')

    check, tick, refused = run_cli_together(
        [(good, ["check", "--json"]), (good, ["tick", "--json"]), (broken, ["check"])]
    )
    return {
        "folder": folder,
        "good": good,
        "check": ok_json(check),
        "tick": ok_json(tick),
        "refused": refused,
        "broken_file": broken_folder / TELEMETRY,
        "broken_data": root / "broken" / "data",
    }


class TestOperatorsOwnFolder:
    def test_check_json_shows_the_folders_order_without_the_removed_beat(
        self, own_sequences: dict[str, Any]
    ) -> None:
        phases = own_sequences["check"]["phases"]
        assert phases["ingesting"] == ["close-windows", "read-sources"]
        assert phases["detecting"] == ["evaluate-windows", "select-incident"]

    def test_the_engine_runs_the_beats_in_the_folders_order(
        self, own_sequences: dict[str, Any]
    ) -> None:
        ran = [
            s["beat"]
            for s in own_sequences["tick"]["steps"]
            if s["kind"] == "ran" and s["state"] == "ingesting"
        ]
        assert ran == ["close-windows", "read-sources"]
        assert own_sequences["tick"]["polled"] is True

    def test_the_engine_loads_the_folder_named_by_the_config(
        self, own_sequences: dict[str, Any]
    ) -> None:
        settings = load_settings(own_sequences["good"])
        assert settings.agent.sequences_dir == own_sequences["folder"]
        loaded = engine.load_phase_sequences(settings)
        assert [b.id for b in loaded["ingesting"].beats] == ["close-windows", "read-sources"]

    def test_a_broken_folder_stops_the_cli_with_exit_2_naming_file_and_beat(
        self, own_sequences: dict[str, Any]
    ) -> None:
        refused = own_sequences["refused"]
        assert refused.returncode == 2
        assert refused.stderr.startswith(f"selfheal: {own_sequences['broken_file']}: ")
        assert "beat 'read-sources' names handler 'nope.nothing'" in refused.stderr
        assert not own_sequences["broken_data"].exists()
