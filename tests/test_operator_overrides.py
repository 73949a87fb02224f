"""Operator commands through the real command line: queued by ``override``, applied by ``tick``.

Every command here is a subprocess of ``python -m agent.cli`` against a real
configuration and a real SQLite file in the test's directory. The CLI runs
without ``$USER``, so ``--actor`` takes its documented default, ``operator``.

The machine is only ever moved by the CLI, with one exception: to have a
cycle waiting for approval, the test writes the cycle row and the agent's
``validating -> awaiting_approval`` transition with ``storage.repository``
(the project's own adapter), because reaching that state for real needs a
whole diagnosis and a sandbox validation, which other tests cover. The
pattern that ``patterns --json`` lists is written the same way.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from storage import deployment_store
from storage import repository as repo
from storage.db import open_database
from storage.tables import CommandRow, CycleRow, PatternRow, TransitionRow
from tests.operator_support import (
    PY,
    append,
    log_line,
    ok_json,
    run_cli,
    run_cli_together,
    write_config,
)

CYCLE_ID = "20260301-120000-catalog-beef"
OLD_VERSION = "abc1234"
NEW_VERSION = "def5678"
ARTIFACTS = ("telemetry", "anomalies", "diagnosis", "patch", "validation", "deployment", "patterns")


def stored(config: Path) -> tuple[list[CommandRow], list[TransitionRow]]:
    """Every command and transition in the agent's database, oldest first."""
    db = open_database(config.parent / "data" / "selfheal.db")
    try:
        commands = db.query(lambda s: list(s.exec(select(CommandRow).order_by(col(CommandRow.id)))))
        transitions = db.query(lambda s: repo.recent_transitions(s, 1000))[::-1]
    finally:
        db.dispose()
    return commands, transitions


def override(config: Path, verb: str, *rest: str) -> subprocess.CompletedProcess[str]:
    result = run_cli(config, "override", verb, *rest)
    assert result.returncode == 0, result.stderr
    return result


def tick(config: Path) -> dict[str, Any]:
    data: dict[str, Any] = ok_json(run_cli(config, "tick", "--json"))
    return data


# --- commands in idle: pause, resume, refused verbs, exactly once ----------------------------


@dataclass
class IdleSession:
    """An agent in idle that an operator pauses and resumes, with verbs that do not apply."""

    config: Path
    first_tick: dict[str, Any]
    second_tick: dict[str, Any]
    resume_tick: dict[str, Any]
    commands: list[CommandRow]
    transitions: list[TransitionRow]


@pytest.fixture(scope="module")
def idle_session(tmp_path_factory: pytest.TempPathFactory) -> IdleSession:
    config = write_config(tmp_path_factory.mktemp("idle"))
    queued = run_cli_together(
        [
            (config, ["override", "approve", "--reason", "ship it"]),
            (config, ["override", "reject", "--reason", "not this one"]),
        ]
    )
    assert [r.returncode for r in queued] == [0, 0], [r.stderr for r in queued]
    override(config, "pause", "--reason", "maintenance window")
    first = tick(config)
    second = tick(config)
    override(config, "resume", "--reason", "maintenance over")
    resumed = tick(config)
    commands, transitions = stored(config)
    return IdleSession(config, first, second, resumed, commands, transitions)


class TestPauseAndResume:
    def test_pause_from_idle_parks_the_machine_until_resume_returns_it_to_idle(
        self, idle_session: IdleSession
    ) -> None:
        assert idle_session.first_tick["state"] == "paused"
        assert "pause: applied: idle -> paused" in idle_session.first_tick["commands"]
        assert idle_session.first_tick["steps"][-1]["kind"] == "blocked"
        assert idle_session.resume_tick["state"] == "idle"
        assert idle_session.resume_tick["commands"] == ["resume: applied: paused -> idle"]

    def test_each_move_is_stored_as_a_transition_by_the_operator_with_the_reason(
        self, idle_session: IdleSession
    ) -> None:
        moves = [(t.source, t.dest, t.trigger, t.actor, t.reason) for t in idle_session.transitions]
        assert moves == [
            ("idle", "paused", "pause", "operator", "maintenance window"),
            ("paused", "idle", "resume", "operator", "maintenance over"),
        ]
        assert all(t.cycle_id is None for t in idle_session.transitions)


class TestRefusedCommands:
    def test_approve_and_reject_in_idle_are_refused_naming_the_allowed_triggers(
        self, idle_session: IdleSession
    ) -> None:
        by_verb = {c.verb: c for c in idle_session.commands}
        for verb in ("approve", "reject"):
            command = by_verb[verb]
            assert command.status == "refused"
            assert f"'{verb}' is not allowed in state 'idle'" in command.result
            assert "allowed: fail, pause, poll" in command.result
            assert command.applied_at is not None
            assert f"{verb}: refused: {command.result}" in idle_session.first_tick["commands"]
        assert not [t for t in idle_session.transitions if t.trigger in ("approve", "reject")]


class TestExactlyOnce:
    def test_a_command_is_applied_once_even_when_tick_runs_twice(
        self, idle_session: IdleSession
    ) -> None:
        assert idle_session.second_tick["commands"] == []
        assert idle_session.second_tick["state"] == "paused"
        pauses = [c for c in idle_session.commands if c.verb == "pause"]
        assert len(pauses) == 1
        assert (pauses[0].status, pauses[0].result) == ("applied", "idle -> paused")
        assert [t.trigger for t in idle_session.transitions].count("pause") == 1
        assert all(c.status != "queued" for c in idle_session.commands)


class TestSetState:
    def test_set_state_is_refused_by_the_cli_without_force_and_applied_with_it(
        self, tmp_path: Path
    ) -> None:
        config = write_config(tmp_path)
        bare, no_cycle, forced = run_cli_together(
            [
                (config, ["override", "set-state", "failed", "--reason", "by hand"]),
                (
                    config,
                    ["override", "set-state", "awaiting_approval", "--force", "--reason", "skip"],
                ),
                (config, ["override", "set-state", "failed", "--force", "--reason", "stop it"]),
            ]
        )
        assert bare.returncode == 2
        assert "--force" in bare.stderr
        assert bare.stdout == ""
        assert no_cycle.returncode == 0, no_cycle.stderr
        assert forced.returncode == 0, forced.stderr

        report = tick(config)

        assert report["state"] == "failed"
        commands, transitions = stored(config)
        assert [c.force for c in commands] == [True, True]  # the bare one was never queued
        by_state = {c.target_state: c for c in commands}
        assert by_state["failed"].status == "applied"
        assert by_state["awaiting_approval"].status == "refused"
        assert "no open cycle" in by_state["awaiting_approval"].result
        assert [(t.source, t.dest, t.trigger, t.actor, t.reason) for t in transitions] == [
            ("idle", "failed", "set_state", "operator", "stop it")
        ]


# --- a cycle waiting for approval ------------------------------------------------------------


def deployer_config(directory: Path) -> tuple[Path, Path]:
    """A config whose command deployer keeps each target's version in a file."""
    versions = directory / "versions"
    versions.mkdir(parents=True)
    (versions / "t1").write_text(OLD_VERSION + "\n")
    writer = "import pathlib, sys; pathlib.Path(sys.argv[1]).write_text(sys.argv[2] + '\\n')"
    config = write_config(
        directory,
        deploy_command={
            "targets": ["t1"],
            "deploy": [PY, "-c", writer, f"{versions}/{{target}}", "{version}"],
            "version": ["cat", f"{versions}/{{target}}"],
        },
    )
    return config, versions / "t1"


def seed_cycle_awaiting_approval(config: Path) -> None:
    """Stand-in for diagnosis, fixing and validation: a validated cycle that needs approval."""
    db = open_database(config.parent / "data" / "selfheal.db")
    now = datetime.now(UTC)

    def write(session: repo.Session) -> None:
        assert repo.agent_state(session, now).state == "idle"
        session.add(
            CycleRow(
                id=CYCLE_ID,
                opened_at=now,
                component="catalog",
                category="latency",
                metric="p95",
                cause_found=True,
                confidence=0.9,
                candidate_ready=True,
                validation_passed=True,
                validated_version=NEW_VERSION,
            )
        )
        session.flush()
        repo.record_transition(
            session,
            source="validating",
            dest="awaiting_approval",
            trigger="validated",
            actor="agent",
            reason="validation passed; autonomy requires approval",
            cycle_id=CYCLE_ID,
            state_cycle_id=CYCLE_ID,
            paused_from=None,
            now=now,
        )

    try:
        db.transact(write)
    finally:
        db.dispose()


def healthy_traffic(config: Path, lines: int = 30) -> None:
    """Requests from a few minutes ago, so their windows are already closed."""
    start = datetime.now(UTC) - timedelta(minutes=5)
    append(
        config.parent / "logs" / "app.log",
        "".join(log_line(start + timedelta(seconds=i)) + "\n" for i in range(lines)),
    )


@dataclass
class Approved:
    config: Path
    version_file: Path
    ingest_tick: dict[str, Any]
    approve_tick: dict[str, Any]
    approve_log: list[dict[str, Any]]
    status: dict[str, Any]


@pytest.fixture(scope="module")
def approved(tmp_path_factory: pytest.TempPathFactory) -> Approved:
    config, version_file = deployer_config(tmp_path_factory.mktemp("approve"))
    healthy_traffic(config)
    ingest = tick(config)
    seed_cycle_awaiting_approval(config)
    override(config, "approve", "--reason", "diff reviewed")
    ticked = run_cli(config, "tick", "--json")
    approve = ok_json(ticked)
    log = [json.loads(line) for line in ticked.stderr.splitlines()]
    status = ok_json(run_cli(config, "status", "--json"))
    return Approved(config, version_file, ingest, approve, log, status)


class TestApproval:
    def test_approve_moves_the_cycle_into_deploying_and_the_rollout_starts(
        self, approved: Approved
    ) -> None:
        assert approved.approve_tick["commands"] == [
            "approve: applied: awaiting_approval -> deploying"
        ]
        assert approved.version_file.read_text().strip() == NEW_VERSION
        last = approved.approve_tick["steps"][-1]
        assert (last["kind"], last["state"], last["beat"]) == ("waiting", "deploying", "roll-out")
        db = open_database(approved.config.parent / "data" / "selfheal.db")
        try:
            cycle = db.query(lambda s: repo.cycle(s, CYCLE_ID))
            actions = db.query(lambda s: deployment_store.deploy_actions(s, CYCLE_ID, "deploy"))
        finally:
            db.dispose()
        assert cycle.approved_by == "operator"
        assert [(a.target, a.from_version, a.to_version, a.status) for a in actions] == [
            ("t1", OLD_VERSION, NEW_VERSION, "done")
        ]

    def test_the_json_log_of_the_tick_names_the_beat_and_when_it_resumes(
        self, approved: Approved
    ) -> None:
        assert all(line.get("event") for line in approved.approve_log)
        waiting = next(line for line in approved.approve_log if line["event"] == "beat waiting")
        assert (waiting["phase"], waiting["beat"], waiting["cycle_id"]) == (
            "deploying",
            "roll-out",
            CYCLE_ID,
        )
        resumes = datetime.fromisoformat(waiting["not_before"])
        assert resumes.isoformat() == approved.status["current_beat"]["not_before"]

    def test_status_json_shows_state_cycle_current_beat_components_and_transitions(
        self, approved: Approved
    ) -> None:
        assert (approved.ingest_tick["polled"], approved.ingest_tick["state"]) == (True, "idle")
        status = approved.status
        assert (status["state"], status["paused"]) == ("deploying", False)
        assert status["cycle"]["id"] == CYCLE_ID
        assert status["cycle"]["component"] == "catalog"
        beat = status["current_beat"]
        assert (beat["beat"], beat["status"]) == ("roll-out", "waiting")
        assert beat["wait_reason"] == "baking wave 1/1"
        assert datetime.fromisoformat(beat["not_before"]) > datetime.now(UTC)
        catalog = status["components"]["catalog"]
        assert catalog["health"] == 100.0
        assert catalog["count"] > 0
        assert catalog["error_rate"] == 0.0
        (source,) = status["sources"].values()
        assert (source["lines"], source["rejected"]) == (30, {})
        newest = status["transitions"][0]
        assert (newest["source"], newest["dest"], newest["trigger"]) == (
            "awaiting_approval",
            "deploying",
            "approve",
        )
        assert (newest["actor"], newest["reason"], newest["cycle_id"]) == (
            "operator",
            "diff reviewed",
            CYCLE_ID,
        )
        assert [t["trigger"] for t in status["transitions"]][1:] == [
            "validated",
            "detected",
            "ingested",
            "poll",
        ]


@dataclass
class Rejected:
    config: Path
    reject_tick: dict[str, Any]
    history: list[dict[str, Any]]
    patterns: list[dict[str, Any]]
    check: dict[str, Any]
    schema: dict[str, Any]


@pytest.fixture(scope="module")
def rejected(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rejected]:
    config, version_file = deployer_config(tmp_path_factory.mktemp("reject"))
    seed_cycle_awaiting_approval(config)
    db = open_database(config.parent / "data" / "selfheal.db")
    db.transact(
        lambda s: s.add(
            PatternRow(
                signature="catalog:latency:p95",
                component="catalog",
                category="latency",
                metric="p95",
                strategy="revert",
                successes=3,
                failures=1,
                confidence=0.7,
                last_cycle_id="an-earlier-cycle",
                updated_at=datetime.now(UTC),
            )
        )
    )
    db.dispose()
    override(config, "reject", "--reason", "touches billing")
    reject = tick(config)
    history, patterns, check, schema = (
        ok_json(r)
        for r in run_cli_together(
            [
                (config, ["history", "--json"]),
                (config, ["patterns", "--json"]),
                (config, ["check", "--json"]),
                (config, ["schema"]),
            ]
        )
    )
    assert version_file.read_text().strip() == OLD_VERSION
    yield Rejected(config, reject, history, patterns, check, schema)


class TestRejection:
    def test_reject_ends_the_cycle_through_learning_without_deploying(
        self, rejected: Rejected
    ) -> None:
        assert rejected.reject_tick["commands"] == [
            "reject: applied: awaiting_approval -> learning"
        ]
        assert rejected.reject_tick["state"] == "idle"
        beats = [s["beat"] for s in rejected.reject_tick["steps"] if s["kind"] == "ran"]
        assert beats == ["record-pattern", "export", "close-cycle"]
        _, transitions = stored(rejected.config)
        reject = next(t for t in transitions if t.trigger == "reject")
        assert (reject.actor, reject.reason, reject.cycle_id) == (
            "operator",
            "touches billing",
            CYCLE_ID,
        )

    def test_history_json_lists_the_closed_cycle_with_its_outcome(self, rejected: Rejected) -> None:
        (cycle,) = rejected.history
        assert cycle["id"] == CYCLE_ID
        assert cycle["outcome"] == "rejected"
        assert cycle["closed_at"] is not None

    def test_patterns_json_lists_the_pattern_library(self, rejected: Rejected) -> None:
        known = {p["signature"]: p for p in rejected.patterns}
        pattern = known["catalog:latency:p95"]
        assert (pattern["strategy"], pattern["successes"], pattern["failures"]) == (
            "revert",
            3,
            1,
        )
        assert pattern["confidence"] == 0.7

    def test_check_json_reports_the_config_and_every_phase(self, rejected: Rejected) -> None:
        check = rejected.check
        assert check["ok"] is True
        assert check["config"] == str(rejected.config)
        assert check["data_dir"] == str(rejected.config.parent / "data")
        assert check["deployer"] == "command"
        assert check["phases"]["ingesting"] == ["read-sources", "close-windows", "retention"]
        assert set(check["phases"]) == {
            "ingesting",
            "detecting",
            "diagnosing",
            "fixing",
            "validating",
            "deploying",
            "rolling_back",
            "learning",
        }


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


JSON_TYPES = {"object", "array", "string", "number", "integer", "boolean", "null"}


def _types(node: Any) -> Iterator[Any]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "type":
                yield value
            elif key not in ("properties", "$defs", "default", "examples", "const", "enum"):
                yield from _types(value)
            elif key in ("properties", "$defs"):
                for child in value.values():
                    yield from _types(child)
    elif isinstance(node, list):
        for item in node:
            yield from _types(item)


class TestSchema:
    def test_schema_prints_a_json_schema_for_each_of_the_seven_artifacts(
        self, rejected: Rejected
    ) -> None:
        schemas = rejected.schema  # printed in the same batch as history, patterns and check
        assert set(ARTIFACTS) <= set(schemas)
        for kind in ARTIFACTS:
            schema = schemas[kind]
            assert schema["type"] == "object", kind
            assert schema["properties"], kind
            assert set(schema.get("required", [])) <= set(schema["properties"]), kind
            for ref in _refs(schema):
                assert ref.startswith("#/$defs/"), (kind, ref)
                assert ref.removeprefix("#/$defs/") in schema["$defs"], (kind, ref)
            for declared in _types(schema):
                names = declared if isinstance(declared, list) else [declared]
                assert set(names) <= JSON_TYPES, (kind, declared)
        assert "cycle_id" in schemas["deployment"]["properties"]
