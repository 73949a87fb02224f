"""A demo-like stage built from the demo's own parts, for tests that drive the daemon themselves.

The repository with its history and regression, the config, the fleet of four
shop instances on 127.0.0.1 and the load generator are the demo's
(``agent.demo``); the stage adds what tests need to look from the outside: a
record of every instance start, one log per daemon run, and a ``close`` that
stops everything and reports any process of the workspace that survived.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.demo.config import TARGETS, DemoOptions, free_ports, write_config
from agent.demo.load import LoadGenerator
from agent.demo.workspace import DemoRepository, build_demo_repository
from agent.settings import load_settings
from states.deploy.fleet_instances import stop_fleet
from states.deploy.local_fleet import LocalFleet, LocalFleetSettings
from states.settings import Settings
from storage import window_store
from storage.db import Database, open_database
from tests.support.config import read_starts, record_instance_starts, set_option
from tests.support.daemon import Daemon
from tests.support.polling import wait_for
from tests.support.processes import collect_exited_instances, kill_leftovers, processes_of
from tests.support.records import closed_cycles, transitions


@dataclass
class Stage:
    """One workspace: repository, config, running fleet and load, and the daemons started on it."""

    workspace: Path
    repo: DemoRepository
    config: Path
    settings: Settings
    fleet: LocalFleet
    starts: Path
    load: LoadGenerator
    daemons: list[Daemon] = field(default_factory=list)
    _db: Database | None = None
    _closed: bool = False

    @property
    def data_dir(self) -> Path:
        return self.settings.agent.data_dir

    @property
    def fleet_settings(self) -> LocalFleetSettings:
        return self.fleet.settings

    def start_daemon(self, env: dict[str, str] | None = None) -> Daemon:
        """Start a new run of the daemon (with ``env`` added), logging to ``daemon-<n>.log``."""
        daemon = Daemon(self.config, self.workspace / f"daemon-{len(self.daemons) + 1}.log", env)
        self.daemons.append(daemon.start())
        return daemon

    def db(self) -> Database:
        """The agent's database, opened once the daemon created it."""
        if self._db is None:
            path = self.data_dir / "selfheal.db"
            wait_for(path.exists, timeout_s=60, what=f"the daemon to create {path}")
            self._db = open_database(path)
        return self._db

    def await_baseline(self, windows: int) -> None:
        """Wait until the agent closed ``windows`` healthy catalog windows to learn from."""
        db = self.db()
        wait_for(
            lambda: (
                len(db.query(lambda s: window_store.component_windows(s, "catalog"))) >= windows
            ),
            timeout_s=90,
            what=f"{windows} catalog windows of healthy traffic",
            explain=self.explain,
        )

    def cycle_done(self, opened_since: datetime) -> str | None:
        """The first cycle opened at or after ``opened_since`` once the machine left it for idle.

        Closed is not enough: ``close-cycle`` sets ``closed_at`` one step before the
        transition back to idle, and a daemon stopped in between finishes it on its next start.
        """
        for cycle in closed_cycles(self.db()):
            log = transitions(self.db(), cycle.id) if cycle.opened_at >= opened_since else []
            if log and log[-1].dest == "idle":
                return cycle.id
        return None

    def await_cycle_closed(self, opened_since: datetime, timeout_s: float) -> str:
        """The id of the first cycle opened at or after ``opened_since``, once it is done."""
        return wait_for(
            lambda: self.cycle_done(opened_since),
            timeout_s=timeout_s,
            what="the cycle to close and the machine to return to idle",
            explain=self.explain,
        )

    def deploy_everywhere(self, version: str) -> None:
        """What the team's release does: every target gets ``version``, one after the other."""
        for target in TARGETS:
            self.fleet.deploy(target, version, timeout_s=60)

    def starts_by_target(self) -> dict[str, list[str | None]]:
        """The versions each target's processes were started with, in order (from the instances)."""
        found: dict[str, list[str | None]] = {t: [] for t in TARGETS}
        for record in read_starts(self.starts):
            found.setdefault(record["instance"], []).append(record["version"])
        return found

    def explain(self) -> str:
        """What to print when a wait times out: the last daemon log lines."""
        return self.daemons[-1].log_tail() if self.daemons else "(no daemon started)"

    def close(self) -> dict[int, str]:
        """Stop daemons, load and fleet; return the workspace's processes that survived that."""
        if self._closed:
            return processes_of(self.workspace)
        self._closed = True
        with contextlib.ExitStack() as stack:
            stack.callback(stop_fleet, self.fleet_settings.fleet_dir)
            stack.callback(self.load.stop)
            for daemon in self.daemons:
                stack.callback(daemon.stop)
            if self._db is not None:
                stack.callback(self._db.dispose)
        return processes_of(self.workspace)


def build_stage(workspace: Path, opts: DemoOptions, **agent_options: Any) -> Stage:
    """The demo's workspace with ``[agent]`` options changed, the fleet healthy and load running.

    A fixture calls ``finalize(stage, workspace)`` afterwards, and ``finalize(None, workspace)``
    when this raised half-way, which stops whatever was started by then.
    """
    repo = build_demo_repository(workspace / "repo")
    config = write_config(workspace, repo, free_ports(len(TARGETS)), opts)
    for key, value in agent_options.items():
        set_option(config, "agent", key, value)
    starts = workspace / "instance-starts.jsonl"
    record_instance_starts(config, starts)
    settings = load_settings(config)
    assert settings.deploy.local_fleet is not None
    fleet = LocalFleet(settings.deploy.local_fleet)
    load = LoadGenerator(
        list(settings.deploy.local_fleet.targets.values()), rate_per_s=opts.rate_per_s
    )
    stage = Stage(workspace, repo, config, settings, fleet, starts, load)
    stage.deploy_everywhere(repo.healthy_sha)
    load.start()
    return stage


def finalize(stage: Stage | None, workspace: Path) -> None:
    """Finalizer: close the stage if there is one, then kill anything the workspace still runs."""
    try:
        if stage is not None:
            stage.close()
    finally:
        with contextlib.suppress(Exception):
            stop_fleet(workspace / "fleet")
        kill_leftovers(workspace)
        collect_exited_instances()
