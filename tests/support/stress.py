"""Storage under stress: the daemon writing non-stop while operators hammer the command line.

The daemon (a real subprocess) polls every 0.2 s a log that a writer thread
grows every 20 ms, so nearly every tick ingests, closes windows, detects and
records transitions. Meanwhile ``workers`` threads run ``selfheal status``,
``history`` and ``override pause|resume`` back to back for ``seconds``, each
a new process opening the same SQLite file. Every call's exit status and
output are kept, so the report can say whether a lock error ever reached a
user, and every queued command carries a unique reason, so the database can
say whether each was applied (or refused) exactly once.
"""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from sqlmodel import select

from storage import window_store
from storage.db import open_database
from storage.tables import CommandRow, TransitionRow
from tests.support.cli import run_cli
from tests.support.daemon import Daemon
from tests.support.polling import wait_for
from tests.support.processes import kill_leftovers

LOCKED = "database is locked"
CONFIG = """[agent]
data_dir = "data"
poll_interval_s = 0.2
autonomy = "observe"

[telemetry]
window_s = 1.0
lateness_s = 0.2

[[telemetry.sources]]
name = "svc"
paths = ["logs/*.log"]
format = "json"

[deploy]
kind = "command"

[deploy.command]
targets = ["t1"]
deploy = ["true"]
version = ["true"]
"""


@dataclass(frozen=True)
class Call:
    """One command-line invocation and what it showed the user."""

    verb: str
    exit_code: int
    seconds: float
    output: str
    queued: int | None = None
    reason: str = ""

    @property
    def saw_lock_error(self) -> bool:
        return LOCKED in self.output.lower()


@dataclass
class StressReport:
    """Every call, and what the database recorded for the queued ones."""

    seconds: float
    workers: int
    calls: list[Call] = field(default_factory=list)
    commands: list[dict[str, Any]] = field(default_factory=list)
    operator_transitions: list[dict[str, Any]] = field(default_factory=list)
    daemon_lock_errors: int = 0
    daemon_ticks_failed: int = 0
    daemon_exit: int | None = None
    lines_written: int = 0
    windows: int = 0

    def failed_calls(self) -> list[Call]:
        return [c for c in self.calls if c.exit_code != 0]

    def lock_errors_seen_by_users(self) -> int:
        return sum(c.saw_lock_error for c in self.calls)

    def commands_not_applied_once(self) -> list[str]:
        """Queued commands that are still queued, vanished, or moved the machine other than once."""
        problems = []
        by_reason = Counter(t["reason"] for t in self.operator_transitions)
        rows = {c["reason"]: c for c in self.commands}
        for call in (c for c in self.calls if c.queued is not None):
            row = rows.get(call.reason)
            moved = sum(
                n for reason, n in by_reason.items() if reason.startswith(call.reason + " ")
            )
            if row is None:
                problems.append(f"#{call.queued} ({call.reason}) is not in the database")
            elif row["status"] not in ("applied", "refused"):
                problems.append(f"#{call.queued} ({call.reason}) is still {row['status']}")
            elif moved != (1 if row["status"] == "applied" else 0):
                problems.append(
                    f"#{call.queued} ({call.reason}) {row['status']} but moved {moved}x"
                )
        return problems

    def as_dict(self) -> dict[str, Any]:
        verbs = Counter(c.verb for c in self.calls)
        statuses = Counter(c["status"] for c in self.commands)
        durations = sorted(c.seconds for c in self.calls) or [0.0]
        return {
            "seconds": self.seconds,
            "workers": self.workers,
            "cli_calls": len(self.calls),
            "calls_by_verb": dict(verbs),
            "failed_calls": len(self.failed_calls()),
            "lock_errors_seen_by_users": self.lock_errors_seen_by_users(),
            "commands_queued": sum(c.queued is not None for c in self.calls),
            "commands_applied": statuses.get("applied", 0),
            "commands_refused": statuses.get("refused", 0),
            "commands_not_applied_once": len(self.commands_not_applied_once()),
            "cli_call_s": {"median": durations[len(durations) // 2], "max": durations[-1]},
            "daemon_ticks_failed": self.daemon_ticks_failed,
            "daemon_lock_errors": self.daemon_lock_errors,
            "log_lines_written": self.lines_written,
            "windows_closed": self.windows,
        }


class LogWriter(threading.Thread):
    """Appends a few requests to the service log every 20 ms until stopped."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.stop = threading.Event()
        self.lines = 0

    def run(self) -> None:
        rng = random.Random(3)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while not self.stop.wait(0.02):
            now = datetime.now(UTC).isoformat()
            batch = [
                json.dumps(
                    {
                        "ts": now,
                        "component": rng.choice(("catalog", "cart")),
                        "operation": "GET /items",
                        "duration_ms": round(rng.uniform(2, 8), 2),
                        "status": 200,
                        "level": "info",
                        "message": "served",
                        "version": "abc1234",
                        "instance": rng.choice(("web-1", "web-2")),
                    }
                )
                for _ in range(3)
            ]
            with self.path.open("a") as log:
                log.write("\n".join(batch) + "\n")
            self.lines += len(batch)


def _one_call(config: Path, verb: str, number: int) -> Call:
    started = time.monotonic()
    reason = ""
    if verb in ("pause", "resume"):
        reason = f"stress call {number}"
        done = run_cli(config, "override", verb, "--reason", reason, "--by", "stress", "--json")
    else:
        done = run_cli(config, verb, "--json")
    output = done.stdout + done.stderr
    queued = None
    if verb in ("pause", "resume") and done.returncode == 0:
        queued = int(json.loads(done.stdout)["queued"])
    return Call(verb, done.returncode, time.monotonic() - started, output, queued, reason)


# Worker i starts at verb i, so however slow the machine, the first call of
# each of four workers covers status, pause, history and resume.
VERB_CYCLE = ("status", "pause", "history", "resume", "status")


def _worker(
    config: Path, until: float, numbers: itertools.count[int], calls: list[Call], first: int
) -> None:
    verbs = itertools.islice(itertools.cycle(VERB_CYCLE), first, None)
    while time.monotonic() < until:
        number = next(numbers)
        try:
            calls.append(_one_call(config, next(verbs), number))
        except subprocess.TimeoutExpired as exc:
            calls.append(Call("timeout", -1, float(exc.timeout), str(exc)))


def _read_back(data: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    db = open_database(data / "selfheal.db")
    try:
        commands = [
            {"id": c.id, "verb": c.verb, "status": c.status, "reason": c.reason}
            for c in db.query(lambda s: list(s.exec(select(CommandRow))))
        ]
        moves = [
            {"id": t.id, "trigger": t.trigger, "reason": t.reason}
            for t in db.query(
                lambda s: list(
                    s.exec(select(TransitionRow).where(TransitionRow.actor == "operator"))
                )
            )
        ]
        windows = sum(
            len(db.query(partial(window_store.component_windows, component=c)))
            for c in ("catalog", "cart")
        )
    finally:
        db.dispose()
    return commands, moves, windows


def run_stress(root: Path, *, seconds: float, workers: int) -> StressReport:
    """Run the daemon and ``workers`` CLI loops for ``seconds`` in ``root``; stop everything."""
    root.mkdir(parents=True, exist_ok=True)
    config = root / "config.toml"
    config.write_text(CONFIG)
    writer = LogWriter(root / "logs" / "svc.log")
    daemon = Daemon(config, root / "daemon.log")
    report = StressReport(seconds=seconds, workers=workers)
    try:
        writer.start()
        daemon.start()
        wait_for(
            (root / "data" / "selfheal.db").exists,
            timeout_s=60,
            what="the daemon to create its database",
        )
        until = time.monotonic() + seconds
        numbers = itertools.count(1)
        threads = [
            threading.Thread(target=_worker, args=(config, until, numbers, report.calls, i))
            for i in range(workers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        def settled() -> bool:
            commands, _, _ = _read_back(root / "data")
            return all(c["status"] != "queued" for c in commands)

        wait_for(settled, timeout_s=60, what="every queued command to be applied")
    finally:
        writer.stop.set()
        writer.join(timeout=10)
        report.daemon_exit = daemon.stop()
        kill_leftovers(root)
    report.lines_written = writer.lines
    report.commands, report.operator_transitions, report.windows = _read_back(root / "data")
    events = daemon.events()
    report.daemon_ticks_failed = sum(e.get("event", "").startswith("tick failed") for e in events)
    report.daemon_lock_errors = sum(LOCKED in json.dumps(e).lower() for e in events)
    return report
