"""``selfheal demo``: the whole loop, for real, on a bundled service.

It builds a git repository of a small HTTP shop, starts four instances on
127.0.0.1 with a load generator, lets them run healthy, then deploys a
release whose middle commit makes catalog lookups slow. The agent's real
daemon (a subprocess, on the workspace's own config) must detect it, name the
commit and file, revert it, validate the revert in a worktree, roll it out in
waves and learn the pattern. ``--scenario bad-fix`` launches a feature with
the release that only the culprit supports, so the revert passes the sandbox
but fails the canary's gate and is rolled back.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.demo.config import TARGETS, DemoOptions, free_ports, write_config
from agent.demo.load import LoadGenerator, RequestMix
from agent.demo.workspace import build_demo_repository, commit_regression
from agent.settings import load_settings
from states.deploy.fleet_instances import stop_fleet
from states.deploy.local_fleet import LocalFleet, LocalFleetSettings
from storage import deployment_store, window_store
from storage import repository as repo
from storage.db import Database, open_database


@dataclass
class DemoResult:
    """What happened, for the summary and for ``--json``."""

    outcome: str
    cycle_id: str | None
    suspect_commit: str | None
    culprit_commit: str
    suspect_file: str | None
    detected_after_s: float | None
    mttr_s: float | None
    artifacts_dir: str | None
    workspace: str
    load: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Progress:
    """Prints what changed since the last look: state, beat, waves, catalog health."""

    def __init__(self, out: Callable[[str], None]) -> None:
        self._out = out
        self._seen: set[str] = set()

    def show(self, key: str, line: str) -> None:
        if key not in self._seen:
            self._seen.add(key)
            self._out(line)

    def look(self, db: Database, t0: float) -> None:
        now = datetime.now(UTC)

        def read(session: Any) -> tuple[Any, list[Any], list[Any], Any]:
            state = repo.agent_state(session, now)
            waves = deployment_store.waves(session, state.cycle_id) if state.cycle_id else []
            return (
                state,
                repo.recent_transitions(session, 8),
                waves,
                window_store.latest_windows(session).get("catalog"),
            )

        _state, transitions, waves, catalog = db.query(read)
        stamp = f"[{time.monotonic() - t0:6.1f}s]"
        for t in reversed(transitions):
            if t.cycle_id or t.dest not in ("ingesting", "detecting", "idle"):
                self.show(f"t{t.id}", f"{stamp} {t.source} -> {t.dest}  ({t.trigger}: {t.reason})")
        for w in waves:
            self.show(
                f"w{w.index}{w.status}",
                f"{stamp}   wave {w.index + 1}/{len(waves)} {', '.join(w.targets)}: {w.status}"
                + (
                    f" ({'; '.join(w.gate.get('reasons', []))})"
                    if w.status in ("passed", "failed") and w.gate.get("reasons")
                    else ""
                ),
            )
        if catalog is not None and catalog.p95 is not None:
            self.show(
                f"h{catalog.start.timestamp() // 5}",
                f"{stamp}   catalog p95 {catalog.p95:.1f} ms, health {catalog.health}",
            )


def _wait(
    predicate: Callable[[], bool], timeout_s: float, what: str, tick: Callable[[], None]
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        tick()
        time.sleep(0.25)
    raise TimeoutError(f"demo: timed out after {timeout_s:.0f}s waiting for {what}")


def _closed_windows(db: Database, component: str) -> int:
    return len(db.query(lambda s: window_store.component_windows(s, component)))


def _start_daemon(config: Path, ws: Path) -> subprocess.Popen[bytes]:
    log = (ws / "daemon.log").open("ab")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("NOTIFY_SOCKET", None)
    return subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "--config", str(config), "run"],
        stdout=log,
        stderr=log,
        env=env,
        start_new_session=True,
    )


def _stop_daemon(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def run_demo(ws: Path, opts: DemoOptions, out: Callable[[str], None]) -> DemoResult:
    """Run one scenario in workspace ``ws``; everything started is stopped before returning."""
    out(f"workspace: {ws}")
    demo_repo = build_demo_repository(ws / "repo")
    config = write_config(ws, demo_repo, free_ports(len(TARGETS)), opts)
    settings = load_settings(config)
    fleet_settings: LocalFleetSettings = settings.deploy.local_fleet  # type: ignore[assignment]
    fleet = LocalFleet(fleet_settings)
    with ExitStack() as stack:
        if not opts.keep_fleet:
            stack.callback(stop_fleet, fleet_settings.fleet_dir)
        for target in TARGETS:
            fleet.deploy(target, demo_repo.healthy_sha, timeout_s=30)
        out(
            f"fleet of {len(TARGETS)} running {demo_repo.healthy_sha[:12]} on 127.0.0.1 ports "
            + ", ".join(map(str, fleet_settings.targets.values()))
        )
        load = LoadGenerator(list(fleet_settings.targets.values()), rate_per_s=opts.rate_per_s)
        load.start()
        stack.callback(load.stop)
        daemon = _start_daemon(config, ws)
        stack.callback(_stop_daemon, daemon)
        _wait_for_db(settings.agent.data_dir)
        db = open_database(settings.agent.data_dir / "selfheal.db")
        stack.callback(db.dispose)
        t0 = time.monotonic()
        progress = Progress(out)

        def look() -> None:
            progress.look(db, t0)

        out("healthy traffic; the agent learns the baseline ...")
        _wait(
            lambda: _closed_windows(db, "catalog") >= opts.healthy_windows,
            60,
            "a healthy baseline",
            look,
        )
        release = commit_regression(demo_repo)
        out(
            f"deploying release {release.head_sha[:12]} ({len(release.commits)} commits) to every target"
        )
        for target in TARGETS:
            fleet.deploy(target, release.head_sha, timeout_s=30)
        regressed_at = datetime.now(UTC)
        if opts.scenario == "bad-fix":
            load.set_mix(RequestMix(legacy_bundle=2))
            out("the release also launches legacy bundle pages in production")
        _wait(lambda: _cycle_closed(db, regressed_at), opts.timeout_s, "the cycle to finish", look)
        look()
        result = _result(db, ws, settings.agent.data_dir, regressed_at, release.culprit_sha)
        result.load = load.stats().__dict__ | {"server_errors": load.stats().server_errors}
        return result
    raise AssertionError("unreachable")


def _wait_for_db(data_dir: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if (data_dir / "selfheal.db").exists():
            time.sleep(0.2)
            return
        time.sleep(0.1)
    raise TimeoutError(f"the daemon did not create {data_dir / 'selfheal.db'}; see daemon.log")


def _cycle_closed(db: Database, since: datetime) -> bool:
    cycles = db.query(lambda s: repo.cycles(s, 5))
    return any(c.closed_at is not None and c.opened_at >= since for c in cycles)


def _result(
    db: Database, ws: Path, data_dir: Path, regressed_at: datetime, culprit: str
) -> DemoResult:
    cycle = next(
        c
        for c in db.query(lambda s: repo.cycles(s, 5))
        if c.opened_at >= regressed_at and c.closed_at
    )
    closed = cycle.closed_at or regressed_at
    return DemoResult(
        outcome=str(cycle.outcome),
        cycle_id=cycle.id,
        suspect_commit=cycle.summary.get("suspect_commit"),
        culprit_commit=culprit,
        suspect_file=cycle.summary.get("file"),
        detected_after_s=round((cycle.opened_at - regressed_at).total_seconds(), 1),
        mttr_s=round((closed - regressed_at).total_seconds(), 1),
        artifacts_dir=str(data_dir / "cycles" / cycle.id),
        workspace=str(ws),
    )


def summary(result: DemoResult) -> str:
    """The closing lines a person reads."""
    named = (
        "the culprit"
        if result.suspect_commit == result.culprit_commit
        else f"NOT the culprit {result.culprit_commit[:12]}"
    )
    return "\n".join(
        [
            "",
            f"outcome:          {result.outcome}",
            f"cycle:            {result.cycle_id}",
            f"suspect:          {str(result.suspect_commit)[:12]} in {result.suspect_file} ({named})",
            f"detected after:   {result.detected_after_s} s",
            f"time to recover:  {result.mttr_s} s",
            f"artifacts:        {result.artifacts_dir}",
            f"load:             {result.load.get('sent')} requests, {result.load.get('server_errors')} server errors",
        ]
    )


def main(*, scenario: str, as_json: bool, workspace: Path | None) -> int:
    """Run the demo from the command line."""

    def out(line: str) -> None:
        print(line, file=sys.stderr if as_json else sys.stdout, flush=True)

    ws = workspace.resolve() if workspace else Path(tempfile.mkdtemp(prefix="selfheal-demo-"))
    try:
        result = run_demo(ws, DemoOptions(scenario=scenario), out)
    except (TimeoutError, OSError, RuntimeError) as exc:
        out(f"demo failed: {exc} (workspace kept at {ws}; see {ws / 'daemon.log'})")
        return 1
    if as_json:
        print(json.dumps(result.as_dict()))
    else:
        out(summary(result))
    return 0
