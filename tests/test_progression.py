"""Walking a phase's beats on a real database: checkpoints, restarts, waits, retries, errors.

Every test drives ``progression.advance`` against a SQLite file in tmp_path
with a clock the test moves. Beats are test handlers registered under
``test.progression.*`` names; what each beat does is scripted per test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sequences.schema import BeatSpec, SequenceSpec
from states import machine, steering
from states.context import ArtifactWriter, BeatContext, BeatResult, PermanentError, TemporaryError
from states.deploy.command import CommandDeployer
from states.deploy.settings import CommandDeployerSettings, DeploySettings
from states.progression import Runtime, Step, advance
from states.registry import beat
from states.settings import AgentSettings, Settings
from storage import repository as repo
from storage.db import Database, open_database
from storage.tables import AnomalyRow, BeatRunRow, CycleRow, TransitionRow

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Crash(BaseException):
    """Stands in for the agent process dying while a beat runs (no checkpoint is written)."""


class ManualClock:
    """A clock only the test moves."""

    def __init__(self) -> None:
        self._now = START
        self._mono = 1000.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
        self._mono += seconds


@dataclass
class Call:
    """What one beat call saw."""

    beat_id: str
    attempt: int
    waited: bool
    previous_output: dict[str, Any]
    outputs: dict[str, dict[str, Any]]


@dataclass
class Script:
    """Per beat id, what the scripted handler does on each call (the last entry repeats)."""

    steps: dict[str, list[Callable[[BeatContext], BeatResult | None]]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)

    def called(self, beat_id: str) -> list[Call]:
        return [c for c in self.calls if c.beat_id == beat_id]


SCRIPT = Script()


@beat("test.progression.scripted")
def scripted(ctx: BeatContext) -> BeatResult | None:
    SCRIPT.calls.append(
        Call(ctx.beat_id, ctx.attempt, ctx.waited, dict(ctx.previous_output), dict(ctx.outputs))
    )
    steps = SCRIPT.steps.get(ctx.beat_id, [])
    index = min(len(SCRIPT.called(ctx.beat_id)), len(steps)) - 1
    return steps[index](ctx) if steps else BeatResult(output={"done": ctx.beat_id})


@pytest.fixture(autouse=True)
def fresh_script() -> Iterator[Script]:
    SCRIPT.steps.clear()
    SCRIPT.calls.clear()
    yield SCRIPT


def beat_spec(beat_id: str, **policy: Any) -> BeatSpec:
    return BeatSpec(id=beat_id, handler="test.progression.scripted", **policy)


def sequence(phase: str, *beats: BeatSpec) -> dict[str, SequenceSpec]:
    return {phase: SequenceSpec(id="test-" + phase.replace("_", "-"), phase=phase, beats=beats)}


def make_settings(data_dir: Path) -> Settings:
    return Settings(
        agent=AgentSettings(data_dir=data_dir, autonomy="auto"),
        deploy=DeploySettings(
            kind="command",
            command=CommandDeployerSettings(targets=["t1"], deploy=["true"], version=["true"]),
        ),
    )


class Agent:
    """Runtimes on one database file; ``restart`` throws the running one away."""

    def __init__(self, tmp_path: Path, sequences: dict[str, SequenceSpec]) -> None:
        self.settings = make_settings(tmp_path / "data")
        self.clock = ManualClock()
        self.path = tmp_path / "data" / "selfheal.db"
        self.sequences = sequences
        self.rt = self._runtime()

    def _runtime(self) -> Runtime:
        db = open_database(self.path)
        settings = self.settings
        command = settings.deploy.command
        assert command is not None
        return Runtime(
            settings=settings,
            db=db,
            clock=self.clock,
            sequences=self.sequences,
            artifacts=ArtifactWriter(db, settings.agent.data_dir, self.clock),
            deployer_factory=lambda: CommandDeployer(command),
            stop_requested=lambda: False,
        )

    @property
    def db(self) -> Database:
        return self.rt.db

    def restart(self) -> None:
        self.rt.db.dispose()
        self.rt = self._runtime()

    def advance(self) -> Step:
        return advance(self.rt)

    def fire(self, trigger: str, actor: str = "agent", reason: str = "") -> TransitionRow:
        return steering.fire(
            self.db, self.settings, self.clock, trigger, actor=actor, reason=reason
        )

    def state(self) -> str:
        return self.db.query(lambda s: repo.agent_state(s, self.clock.now()).state)

    def runs(self) -> dict[str, BeatRunRow]:
        def read(s: repo.Session) -> dict[str, BeatRunRow]:
            return repo.beat_runs(s, repo.agent_state(s, self.clock.now()).entry_id)

        return self.db.query(read)

    def cycle(self) -> CycleRow:
        def read(s: repo.Session) -> CycleRow:
            cycle_id = repo.agent_state(s, self.clock.now()).cycle_id
            assert cycle_id is not None
            return repo.cycle(s, cycle_id)

        return self.db.query(read)

    def transitions(self) -> list[TransitionRow]:
        return self.db.query(lambda s: repo.recent_transitions(s, 100))[::-1]

    def open_cycle(self) -> None:
        """An actionable anomaly, then idle → ingesting → detecting → diagnosing."""
        now = self.clock.now()
        anomaly = AnomalyRow(
            fingerprint="api:p95_ms",
            component="api",
            metric="p95_ms",
            detector="slo",
            category="latency",
            severity="major",
            actionable=True,
            onset=now,
            last_seen=now,
        )
        self.db.transact(lambda s: s.add(anomaly))
        for trigger in ("poll", "ingested", "detected"):
            self.fire(trigger)
        assert self.state() == machine.DIAGNOSING


@pytest.fixture
def make_agent(tmp_path: Path) -> Iterator[Callable[[dict[str, SequenceSpec]], Agent]]:
    made: list[Agent] = []

    def build(sequences: dict[str, SequenceSpec]) -> Agent:
        agent = Agent(tmp_path, sequences)
        made.append(agent)
        return agent

    yield build
    for agent in made:
        agent.db.dispose()


def ingesting_agent(
    make_agent: Callable[[dict[str, SequenceSpec]], Agent], *beats: BeatSpec
) -> Agent:
    agent = make_agent(sequence(machine.INGESTING, *beats))
    agent.fire("poll")
    return agent


def crash(_ctx: BeatContext) -> BeatResult:
    raise Crash


# --- checkpoints across restarts -------------------------------------------------------------


def test_a_finished_beat_is_never_run_again_after_a_restart(make_agent: Any) -> None:
    agent = ingesting_agent(make_agent, beat_spec("first"), beat_spec("second"))
    assert agent.advance() == Step("ran", machine.INGESTING, "first", detail="finished")

    agent.restart()
    assert agent.advance().beat == "second"

    assert [c.beat_id for c in SCRIPT.calls] == ["first", "second"]
    assert SCRIPT.called("second")[0].outputs == {"first": {"done": "first"}}


def test_a_beat_interrupted_mid_run_counts_an_attempt_and_runs_again(make_agent: Any) -> None:
    agent = ingesting_agent(make_agent, beat_spec("flaky", retries=1))
    SCRIPT.steps["flaky"] = [crash, lambda ctx: BeatResult(output={"ok": True})]
    with pytest.raises(Crash):
        agent.advance()
    assert agent.runs()["flaky"].status == "running"

    agent.restart()
    step = agent.advance()

    assert step.detail == "finished"
    assert [c.attempt for c in SCRIPT.called("flaky")] == [1, 2]
    run = agent.runs()["flaky"]
    assert (run.status, run.attempts, run.output) == ("finished", 2, {"ok": True})


def test_a_beat_interrupted_more_often_than_its_retries_allow_fails(make_agent: Any) -> None:
    agent = ingesting_agent(make_agent, beat_spec("fragile", retries=0, on_error="fail"))
    SCRIPT.steps["fragile"] = [crash]
    with pytest.raises(Crash):
        agent.advance()

    agent.restart()
    agent.advance()

    assert len(SCRIPT.called("fragile")) == 1
    assert agent.state() == machine.FAILED
    last = agent.transitions()[-1]
    assert last.trigger == "fail"
    assert "interrupted 1 times" in last.reason


# --- durable waits --------------------------------------------------------------------------------


def test_a_waiting_beat_is_not_called_before_its_time(make_agent: Any) -> None:
    agent = ingesting_agent(make_agent, beat_spec("bake"))
    until = START + timedelta(seconds=60)
    SCRIPT.steps["bake"] = [
        lambda ctx: BeatResult(output={"polls": 1}, wait_until=until, wait_reason="baking"),
        lambda ctx: BeatResult(output={"polls": ctx.previous_output["polls"] + 1}),
    ]

    assert agent.advance() == Step("ran", machine.INGESTING, "bake", "waiting", until)
    agent.clock.advance(59)
    assert agent.advance() == Step("waiting", machine.INGESTING, "bake", "baking", until)
    agent.restart()
    assert agent.advance().kind == "waiting"
    assert len(SCRIPT.called("bake")) == 1

    agent.clock.advance(1)
    assert agent.advance().detail == "finished"

    resumed = SCRIPT.called("bake")[1]
    assert resumed.waited
    assert resumed.previous_output == {"polls": 1, "wait_reason": "baking"}
    assert agent.runs()["bake"].output == {"polls": 2}


def test_a_beat_resumed_after_a_wait_is_a_first_attempt(make_agent: Any) -> None:
    agent = ingesting_agent(make_agent, beat_spec("bake", retries=0, on_error="fail"))

    def then_break(ctx: BeatContext) -> BeatResult:
        raise TemporaryError("target not answering", delay_s=5)

    SCRIPT.steps["bake"] = [
        lambda ctx: BeatResult(wait_until=START + timedelta(seconds=10)),
        then_break,
    ]
    agent.advance()
    agent.clock.advance(10)
    agent.advance()

    assert SCRIPT.called("bake")[1].attempt == 1
    assert agent.state() == machine.FAILED, "retries=0 allows no second attempt after the wait"


# --- errors and their policies -----------------------------------------------------------------


def test_a_temporary_error_retries_after_its_delay_then_on_error_applies(make_agent: Any) -> None:
    agent = ingesting_agent(make_agent, beat_spec("lock", retries=1, on_error="fail"))

    def busy(ctx: BeatContext) -> BeatResult:
        raise TemporaryError("lock held by deployer", delay_s=30)

    SCRIPT.steps["lock"] = [busy]

    step = agent.advance()
    assert (step.detail, step.until) == ("retry", START + timedelta(seconds=30))
    agent.clock.advance(29)
    waiting = agent.advance()
    assert waiting.kind == "waiting"
    assert "lock held by deployer" in waiting.detail
    assert len(SCRIPT.called("lock")) == 1

    agent.clock.advance(1)
    agent.advance()

    assert [c.attempt for c in SCRIPT.called("lock")] == [1, 2]
    assert agent.state() == machine.FAILED
    assert "after 2 attempts" in agent.transitions()[-1].reason


def test_an_unexpected_exception_retries_after_the_beats_own_delay(make_agent: Any) -> None:
    agent = ingesting_agent(make_agent, beat_spec("parse", retries=1, retry_delay_s=7))

    def broken(ctx: BeatContext) -> BeatResult:
        raise KeyError("missing")

    SCRIPT.steps["parse"] = [broken, lambda ctx: BeatResult()]

    step = agent.advance()

    assert (step.detail, step.until) == ("retry", START + timedelta(seconds=7))
    assert "KeyError" in agent.runs()["parse"].error


def test_an_attempt_that_overruns_its_timeout_is_retried(make_agent: Any) -> None:
    agent = ingesting_agent(make_agent, beat_spec("slow", timeout_s=5, retries=1))

    def overrun(ctx: BeatContext) -> BeatResult:
        agent.clock.advance(6)
        return BeatResult(output={"late": True})

    SCRIPT.steps["slow"] = [overrun, lambda ctx: BeatResult()]

    assert agent.advance().detail == "retry"
    run = agent.runs()["slow"]
    assert "timed out" in run.error
    assert run.output == {}, "the late result must not be checkpointed"


def test_a_permanent_error_with_on_error_fail_stops_in_failed_at_once(make_agent: Any) -> None:
    agent = ingesting_agent(make_agent, beat_spec("bad", retries=3, on_error="fail"))

    def permanent(ctx: BeatContext) -> BeatResult:
        raise PermanentError("config names no sources")

    SCRIPT.steps["bad"] = [permanent]

    agent.advance()

    assert len(SCRIPT.called("bad")) == 1
    assert agent.state() == machine.FAILED
    last = agent.transitions()[-1]
    assert (last.trigger, last.actor) == ("fail", "agent")
    assert "beat 'bad' failed" in last.reason
    assert "config names no sources" in last.reason


def test_a_permanent_error_with_on_error_escalate_ends_the_cycle_escalated(
    make_agent: Any,
) -> None:
    agent = make_agent(sequence(machine.DIAGNOSING, beat_spec("blame", on_error="escalate")))
    agent.open_cycle()

    def permanent(ctx: BeatContext) -> BeatResult:
        raise PermanentError("no repository history")

    SCRIPT.steps["blame"] = [permanent]

    agent.advance()

    assert agent.state() == machine.LEARNING
    cycle = agent.cycle()
    assert cycle.escalated
    assert "beat 'blame' failed" in cycle.escalation_reason
    assert "no repository history" in cycle.escalation_reason
    assert agent.transitions()[-1].trigger == "escalate"


def test_a_permanent_error_with_on_error_continue_runs_the_next_beat(make_agent: Any) -> None:
    agent = ingesting_agent(
        make_agent, beat_spec("optional", retries=2, on_error="continue"), beat_spec("next")
    )

    def permanent(ctx: BeatContext) -> BeatResult:
        raise PermanentError("source missing")

    SCRIPT.steps["optional"] = [permanent]

    agent.advance()
    assert agent.runs()["optional"].status == "skipped"
    assert agent.advance().beat == "next"
    assert agent.advance().kind == "transitioned"

    assert [c.beat_id for c in SCRIPT.calls] == ["optional", "next"]
    assert agent.state() == machine.DETECTING


# --- cycle updates -----------------------------------------------------------------------------------


def test_cycle_updates_are_applied_with_the_checkpoint_and_drive_the_guard(
    make_agent: Any,
) -> None:
    agent = make_agent(sequence(machine.DIAGNOSING, beat_spec("rank")))
    agent.open_cycle()
    seen_during_run: list[bool] = []

    def rank(ctx: BeatContext) -> BeatResult:
        seen_during_run.append(agent.cycle().cause_found)
        return BeatResult(
            output={"suspect": "abc123"},
            cycle_updates={"cause_found": True, "confidence": 0.8, "summary": {"suspect": "abc"}},
        )

    SCRIPT.steps["rank"] = [rank]

    agent.advance()

    assert seen_during_run == [False]
    cycle = agent.cycle()
    assert (cycle.cause_found, cycle.confidence) == (True, 0.8)
    assert cycle.summary["suspect"] == "abc"
    assert cycle.summary["opened_by_anomaly"] == "api:p95_ms", "summary updates merge"
    assert agent.advance() == Step("transitioned", machine.FIXING, detail="diagnosing complete")


def test_cycle_updates_are_never_applied_twice_across_a_restart(make_agent: Any) -> None:
    agent = make_agent(sequence(machine.DIAGNOSING, beat_spec("count"), beat_spec("after")))
    agent.open_cycle()
    SCRIPT.steps["count"] = [
        lambda ctx: BeatResult(
            cycle_updates={"candidate_index": len(SCRIPT.called("count"))},
        )
    ]

    agent.advance()
    agent.restart()
    agent.advance()
    agent.advance()

    assert len(SCRIPT.called("count")) == 1
    assert agent.state() == machine.LEARNING
    cycle_id = agent.transitions()[-1].cycle_id
    assert cycle_id is not None
    assert agent.db.query(lambda s: repo.cycle(s, cycle_id)).candidate_index == 1


def test_cycle_updates_and_the_checkpoint_commit_together_or_not_at_all(make_agent: Any) -> None:
    agent = make_agent(sequence(machine.DIAGNOSING, beat_spec("typo")))
    agent.open_cycle()
    SCRIPT.steps["typo"] = [
        lambda ctx: BeatResult(cycle_updates={"confidence": 0.9, "confidance": 0.9})
    ]

    with pytest.raises(ValueError, match="cycle has no fact column 'confidance'"):
        agent.advance()

    assert agent.cycle().confidence == 0.0
    assert agent.runs()["typo"].status == "running"


def test_a_result_is_dropped_when_an_operator_moved_the_machine_meanwhile(
    make_agent: Any,
) -> None:
    agent = ingesting_agent(make_agent, beat_spec("read"))

    def paused_meanwhile(ctx: BeatContext) -> BeatResult:
        agent.fire("pause", actor="operator", reason="maintenance")
        return BeatResult(output={"read": 10})

    SCRIPT.steps["read"] = [paused_meanwhile]

    agent.advance()

    assert agent.state() == machine.PAUSED
    entry = agent.transitions()[-2].id
    stored = agent.db.query(lambda s: repo.beat_runs(s, entry or 0))
    assert stored["read"].status == "running"
    assert stored["read"].output == {}


# --- transitions ------------------------------------------------------------------------------------


def test_a_transition_row_and_the_new_state_are_stored_together(make_agent: Any) -> None:
    agent = make_agent({})

    row = agent.fire("pause", actor="alice", reason="deploy freeze")

    stored = agent.transitions()[-1]
    assert (stored.source, stored.dest, stored.trigger) == ("idle", "paused", "pause")
    assert (stored.actor, stored.reason, stored.at) == ("alice", "deploy freeze", START)
    state = agent.db.query(lambda s: repo.agent_state(s, START))
    assert (state.state, state.paused_from, state.entry_id) == ("paused", "idle", row.id)


def test_a_transition_whose_transaction_fails_leaves_neither_row_nor_state(
    make_agent: Any,
) -> None:
    agent = make_agent({})

    def fire_then_fail(session: repo.Session) -> None:
        steering.fire_in(session, agent.settings, START, "poll", actor="agent", reason="")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        agent.db.transact(fire_then_fail)

    assert agent.transitions() == []
    assert agent.state() == machine.IDLE


def test_an_illegal_trigger_changes_nothing(make_agent: Any) -> None:
    agent = make_agent({})

    with pytest.raises(machine.IllegalTransition, match="allowed: fail, pause, poll"):
        agent.fire("approve", actor="operator")

    assert agent.transitions() == []


# --- completing a phase -----------------------------------------------------------------------------


def test_the_completion_trigger_fires_only_when_every_beat_finished(make_agent: Any) -> None:
    agent = ingesting_agent(make_agent, beat_spec("one"), beat_spec("two"))

    agent.advance()
    assert agent.state() == machine.INGESTING
    agent.advance()
    assert agent.state() == machine.INGESTING
    step = agent.advance()

    assert step == Step("transitioned", machine.DETECTING, detail="ingesting complete")
    last = agent.transitions()[-1]
    assert (last.trigger, last.actor, last.reason) == ("ingested", "agent", "phase complete")


def test_a_new_visit_of_a_phase_runs_its_beats_again(make_agent: Any) -> None:
    sequences = {
        **sequence(machine.INGESTING, beat_spec("read")),
        **sequence(machine.DETECTING, beat_spec("judge")),
    }
    agent = make_agent(sequences)
    agent.fire("poll")
    for _ in range(4):
        agent.advance()
    assert agent.state() == machine.IDLE
    assert agent.advance() == Step("idle", machine.IDLE)

    agent.fire("poll")
    agent.advance()

    assert [c.beat_id for c in SCRIPT.calls] == ["read", "judge", "read"]


def test_a_phase_without_a_sequence_waits_for_an_operator(make_agent: Any) -> None:
    agent = make_agent({})
    agent.fire("poll")

    assert agent.advance() == Step("blocked", machine.INGESTING, detail="waiting for an operator")
